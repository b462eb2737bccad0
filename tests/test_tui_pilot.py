"""The Recommendations screen's pilot: real runs in a worker, measured figures beside the quotes, re-rank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pilot import write_answers
from textual.widgets import DataTable, Static
from tui_support import async_test, screen_text, wait_until
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.screens.audit import AuditScreen
from tunewise.advisor.tui.screens.recommendations import PILOT_COLUMN, RecommendationsScreen
from tunewise.plugins import manager


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))


async def _recommendations(pilot, app: TunewiseApp) -> RecommendationsScreen:  # type: ignore[no-untyped-def]
    await pilot.pause()
    await wait_until(pilot, lambda: type(app.screen).__name__ == "InterviewScreen", "the interview")
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen), "the data audit")
    await pilot.app.workers.wait_for_complete()
    await pilot.press("ctrl+n")
    screen = await wait_until(pilot, lambda: isinstance(app.screen, RecommendationsScreen)
                              and app.screen.ranking is not None and app.screen, "the ranking")
    return screen  # type: ignore[no-any-return]


@async_test
async def test_pilot_the_top_two_from_the_recommendations(tmp_path: Path, tiny_model_dir: Path) -> None:
    answers = write_answers(tmp_path, model=tiny_model_dir)
    decisions = tmp_path / "decisions"
    app = TunewiseApp(answers=answers, decisions_dir=decisions, workdir=tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _recommendations(pilot, app)
        runnable = [r.method for r in screen.ranking.recommendations if not r.blockers and not r.error][:2]
        table = screen.query_one(DataTable)
        await pilot.press("p")
        status = screen.query_one("#reco-pilot", Static)
        await wait_until(pilot, lambda: screen.pilot_cancel is not None and "pilot:" in str(status.render()),
                         "the pilot's progress")
        # the app stays responsive while the runs go on: the cursor moves and the details follow
        await pilot.press("down")
        await wait_until(pilot, lambda: table.cursor_row == 1, "the cursor to move during the pilot")
        result = await wait_until(pilot, lambda: screen.pilot, "the pilot to finish", timeout=300)
        assert [c.method for c in result.candidates] == runnable
        assert not result.cancelled and all(m.measured for m in result.measurements), result.measurements
        # measured figures beside the quotes, rows in the re-ranked order
        assert PILOT_COLUMN in [str(c.label) for c in table.columns.values()]
        assert [r.method for r in screen.rows if r.method in runnable] == list(result.order_after)
        for index, rec in enumerate(screen.rows):
            assert str(table.get_row_at(index)[0]).strip(" ★") == rec.title
            measured = str(table.get_row_at(index)[-1])
            assert ("acc " in measured) == (rec.method in runnable), (rec.method, measured)
        await pilot.pause()
        text = screen_text(app)
        assert "Pilot (" in text and f"same {len(result.sample.held_ids)} held-out" in text, text
        held = result.sample.held_ids
        assert all(sorted(m.scores) == sorted(held) for m in result.measurements)
    [log] = list(decisions.glob("*.jsonl"))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    recorded = next(r for r in records if r["kind"] == "pilot")
    assert recorded["order_after"] == list(result.order_after) and recorded["sample"]["held_out_ids"] == list(held)


@async_test
async def test_pilot_can_be_stopped(tmp_path: Path, tiny_model_dir: Path) -> None:
    answers = write_answers(tmp_path, model=tiny_model_dir)
    app = TunewiseApp(answers=answers, decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _recommendations(pilot, app)
        order = [r.method for r in screen.rows]
        await pilot.press("p")
        await wait_until(pilot, lambda: screen.pilot_cancel is not None, "the pilot to start")
        await pilot.press("x")
        result = await wait_until(pilot, lambda: screen.pilot, "the stopped pilot", timeout=120)
        assert result.cancelled
        assert [r.method for r in screen.rows] == order  # a stopped pilot changes nothing
        assert any(m.status in ("cancelled", "not_run") for m in result.measurements)
        assert "Pilot cancelled" in str(screen.query_one("#reco-pilot", Static).render())
        await pilot.press("p")  # and another can start
        await wait_until(pilot, lambda: screen.pilot_cancel is not None, "a second pilot to start")
        await pilot.press("x")
        await wait_until(pilot, lambda: screen.pilot_cancel is None, "the second pilot to stop", timeout=120)


@async_test
async def test_pilot_without_data_says_why(tmp_path: Path) -> None:
    from tunewise.advisor.tui.screens.dialogs import ErrorDialog

    answers = tmp_path / "answers.yaml"
    answers.write_text("use_case: route messages\ngoals: [task]\ndata: {labeled_examples: 500}\n"
                       "hardware: {gpu: cpu}\n")
    app = TunewiseApp(answers=answers, decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "InterviewScreen", "the interview")
        await pilot.press("ctrl+r")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, RecommendationsScreen)
                                  and app.screen.ranking is not None and app.screen, "the ranking")
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog), "the error dialog")
        assert "no data to pilot on" in screen_text(app)
        assert screen.pilot is None and screen.pilot_cancel is None  # p works again once fixed
        assert not list(tmp_path.glob("runs/pilot-*/*"))
