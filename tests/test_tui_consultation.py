"""Pilot tests of a consultation: interview topics, validation, saved answers, recommendations, plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_support import async_test, screen_text
from tunewise.advisor.answers import load_answers
from tunewise.advisor.decision_log import read_decisions
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.plugins import manager

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))


async def _settle(pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _field_input(app: TunewiseApp, question_id: str):  # type: ignore[no-untyped-def]
    return app.screen.query_one(f"#q-{question_id.replace('.', '-')} #input")


@async_test
async def test_interview_validates_inline_and_keeps_answers_both_ways(tmp_path: Path) -> None:
    app = TunewiseApp(decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        await pilot.press("n")
        assert type(app.screen).__name__ == "InterviewScreen"
        assert "Use case & goals" in screen_text(app)
        await pilot.press(*"triage tickets")  # the first question has the focus
        await pilot.press("ctrl+n")
        assert "Knowledge & citations" in screen_text(app)
        await pilot.press("escape")
        assert _field_input(app, "use_case").value == "triage tickets"

        # Jump ahead to the budget topic and type a bad number: an inline error, and no way forward.
        for _ in range(5):
            await pilot.press("ctrl+n")
        assert "Budget" in screen_text(app)
        usd = _field_input(app, "budget.usd")
        usd.value = "-5"
        await pilot.pause()
        assert "must be ≥ 0" in screen_text(app)
        await pilot.press("ctrl+n")
        assert "Budget" in screen_text(app), "an invalid answer keeps you on its topic"
        usd.value = "2500"
        await pilot.pause()
        assert "must be ≥ 0" not in screen_text(app)
        assert app.consultation is not None and app.consultation.answers["budget.usd"] == 2500.0
        assert app.consultation.answers["use_case"] == "triage tickets"


@async_test
async def test_saved_answers_round_trip_through_the_answers_file(tmp_path: Path) -> None:
    source = tmp_path / "in.yaml"
    source.write_text("use_case: classify tickets\ngoals: [task, format]\ndata: {labeled_examples: 3000}\n"
                      "hardware: {gpu: l4, gpus: 2}\nbudget: {usd: 300}\n")
    app = TunewiseApp(answers=source, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        assert type(app.screen).__name__ == "InterviewScreen"
        assert _field_input(app, "use_case").value == "classify tickets"
        await pilot.press("ctrl+s")
        dialog = app.screen
        assert type(dialog).__name__ == "PathDialog"
        target = tmp_path / "saved" / "answers.yaml"
        dialog.query_one("#path").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
    assert load_answers(target) == load_answers(source)
    log = next((tmp_path / "decisions").glob("*.jsonl"))
    assert read_decisions(log)[-1]["saved_answers"] == str(target)


@async_test
async def test_bad_answers_file_opens_an_error_dialog(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("use_case: x\nbudget:\n  usd: -1\n")
    app = TunewiseApp(decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        app.open_answers(bad)
        await _settle(pilot)
        assert type(app.screen).__name__ == "ErrorDialog"
        assert "bad.yaml:3: budget.usd: must be ≥ 0" in str(app.screen.query_one("#error-message").render())
        await pilot.press("escape")
        assert type(app.screen).__name__ == "WelcomeScreen"
