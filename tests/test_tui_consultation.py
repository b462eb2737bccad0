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


async def _walk_to_recommendations(app: TunewiseApp, pilot, answers: Path,  # type: ignore[no-untyped-def]
                                   shortcut: bool = False) -> None:
    """Welcome → 'o' → the answers path → ctrl+n through every topic (or ctrl+r: straight to the ranking)."""
    await _settle(pilot)
    await pilot.press("o")
    assert type(app.screen).__name__ == "PathDialog"
    app.screen.query_one("#path").value = str(answers)  # typing a long tmp path key by key is just slow
    await pilot.press("enter")
    await _settle(pilot)
    for _ in range(12):
        if type(app.screen).__name__ == "RecommendationsScreen":
            break
        await pilot.press("ctrl+r" if shortcut else "ctrl+n")
        await _settle(pilot)
    assert type(app.screen).__name__ == "RecommendationsScreen"


@pytest.mark.parametrize(("example", "expected"), [
    ("support-billing.yaml", "rag"),
    ("invoice-json.yaml", "in_context"),
    ("contract-review.yaml", "full_finetune"),
])
@async_test
async def test_consultation_from_welcome_to_recommendation(tmp_path: Path, example: str, expected: str) -> None:
    from tunewise.advisor.ranking import rank

    answers = REPO / "examples" / "answers" / example
    app = TunewiseApp(decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await _walk_to_recommendations(app, pilot, answers, shortcut=example != "support-billing.yaml")
        screen = app.screen
        table = screen.query_one("#reco-table")
        top_row = [str(cell) for cell in table.get_row_at(0)]
        ranking = rank(load_answers(answers))
        assert ranking.top.method == expected
        assert top_row[0] == f"★ {ranking.top.title}"
        assert table.row_count == len(ranking.recommendations) == 6
        assert f"1. {ranking.top.title}" in screen_text(app)
        # Any method can be planned, not only the best: pick the second row.
        await pilot.press("down", "enter")
        await _settle(pilot)
        assert type(app.screen).__name__ == "PlanScreen"
        assert app.screen.method_id == ranking.recommendations[1].method
    records = read_decisions(next((tmp_path / "decisions").glob("*.jsonl")))
    kinds = [r["kind"] for r in records]
    assert kinds == ["answers", "ranking", "plan"]
    assert records[1]["ranking"]["recommendations"][0]["method"] == expected
    assert records[2]["chosen"] == ranking.recommendations[1].method


@async_test
async def test_a_data_path_is_audited_and_its_counts_feed_the_ranking(tmp_path: Path) -> None:
    data = tmp_path / "chat.jsonl"
    rows = [f'{{"messages": [{{"role": "user", "content": "question {i}"}}, '
            f'{{"role": "assistant", "content": "answer {i}"}}]}}' for i in range(30)]
    data.write_text("\n".join([*rows, rows[0], '{"messages": []}']) + "\n")
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"use_case: answer questions\ngoals: [task]\ndata: {{path: {data}}}\n"
                       "hardware: {gpu: cpu}\nmodel: {params_b: 0.135}\n")
    app = TunewiseApp(decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        await pilot.press("o")
        app.screen.query_one("#path").value = str(answers)
        await pilot.press("enter")
        await _settle(pilot)
        for _ in range(10):
            if type(app.screen).__name__ == "AuditScreen":
                break
            await pilot.press("ctrl+n")
            await _settle(pilot)
        assert type(app.screen).__name__ == "AuditScreen"
        summary = app.screen.query_one("#audit-summary")
        values = {str(summary.get_row_at(i)[0]): str(summary.get_row_at(i)[1]) for i in range(summary.row_count)}
        assert values["shape"] == "messages" and values["duplicates"] == "1"
        assert values["→ labeled examples"] == "30"
        problems = str(app.screen.query_one("#audit-problems").render())
        assert f"{data}:31: duplicate of {data}:1" in problems and f"{data}:32:" in problems
        await pilot.press("ctrl+n")
        await _settle(pilot)
        assert type(app.screen).__name__ == "RecommendationsScreen"
        assert app.consultation is not None and app.consultation.ranking is not None
        assert app.consultation.ranking.profile.data.labeled_examples == 30
    kinds = [r["kind"] for r in read_decisions(next((tmp_path / "decisions").glob("*.jsonl")))]
    assert kinds == ["answers", "audit", "ranking"]
