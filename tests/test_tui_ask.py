"""The Ask screen on a real RAG run (the real embedding model, a tiny random generator), and the RAG plan's
typed questions written to a question file that ``tunewise run`` accepts.

A tiny random model writes no valid citations, so its answers fall back to extractive ones: the tests
check what is on screen either way (the answer, how it was made, the cited passages and their sources).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList, TextArea
from tui_support import async_test, screen_text, wait_until
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.screens.ask import AskScreen
from tunewise.advisor.tui.screens.plan import PlanScreen
from tunewise.advisor.tui.screens.welcome import WelcomeScreen
from tunewise.plugins import manager

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

DOCS = {
    "shipping.txt": "Shipping\nOrders ship from the Oslo warehouse within two days. Express orders ship the same day.",
    "returns.txt": "Returns\nItems can be returned within 30 days for a full refund.",
    "volcano.txt": "Volcanoes\nA volcano is a rupture in the crust where lava, ash and gases escape.",
}


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A folder with the tiny model in ``base``, documents in ``docs`` and a finished RAG run in ``runs/rag``."""
    from tunewise.advisor.cli import main

    root = tmp_path_factory.mktemp("ask")
    shutil.copytree(tiny_model_dir, root / "base")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    (root / "rag.yaml").write_text("method: rag\nmodel: base\ndata: docs\noutput_dir: runs/rag\n"
                                   "config: {k: 2, answer_questions: 0, max_new_tokens: 8}\n")
    here = Path.cwd()
    os.chdir(root)
    try:
        assert main(["run", "rag.yaml", "--quiet"]) == 0
    finally:
        os.chdir(here)
    assert (root / "runs/rag/index/manifest.json").is_file()
    return root


def _ask_shown(app: TunewiseApp) -> bool:
    return isinstance(app.screen, AskScreen) and bool(app.screen.query("#ask-history"))


def _answered(app: TunewiseApp, count: int) -> bool:
    screen = app.screen
    return isinstance(screen, AskScreen) and len(screen.history) >= count and \
        all(asked is not None for _, asked in screen.history[:count])


@async_test
async def test_a_question_is_answered_with_citations_and_the_cited_passages(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.advisor.tui.screens.run import RunScreen

    monkeypatch.chdir(work)
    app = TunewiseApp(workdir=work, run_dir=Path("runs/rag"))  # `tunewise --run runs/rag`, then a
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.state.finished, "the run")
        await pilot.press("a")
        await wait_until(pilot, lambda: _ask_shown(app), "the Ask screen")
        screen = app.screen
        assert isinstance(screen, AskScreen)
        # Typed before the index is loaded: asked once it is; a second one waits for the first answer.
        screen.query_one("#ask-question", Input).focus()
        for question in ("How fast do orders ship from the Oslo warehouse?", "How long can items be returned?"):
            screen.query_one("#ask-question", Input).value = question
            await pilot.press("enter")
        await wait_until(pilot, lambda: _answered(app, 2), "both answers")
        text = screen_text(app)
        assert "runs/rag" in text and "answers by base" in text  # the run's own model and settings
        first, second = (asked for _, asked in screen.history)
        assert first is not None and second is not None
        assert [q for q, _ in screen.history] == ["How fast do orders ship from the Oslo warehouse?",
                                                 "How long can items be returned?"]
        for asked, source, words in ((first, "docs/shipping.txt", "Oslo warehouse"),
                                     (second, "docs/returns.txt", "30 days")):
            answer = asked.answer
            assert answer.has_valid_citation, answer
            assert source in {c.source for c in answer.citations}
            label = next(c.label() for c in answer.citations if c.source == source)
            assert f"] {label}" in text and words in text  # the cited passage: its source, chunk and text
            assert ("extractive: sentences quoted from the passages" in text) == answer.extractive or \
                "citations checked against the passages" in text
        assert "Q: How long can items be returned?" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, AskScreen), "leaving Ask")


@async_test
async def test_a_path_that_is_no_index_gets_a_message_naming_it(work: Path, tmp_path: Path) -> None:
    not_rag = tmp_path / "lora-run"
    not_rag.mkdir()
    (not_rag / "events.jsonl").write_text(json.dumps({"event": "start", "method": "lora", "plan": {}}) + "\n")
    cases = {
        str(tmp_path / "missing"): "folder not found",
        str(work / "docs"): "is not an index (no manifest.json) nor a run folder",
        str(work / "docs" / "shipping.txt"): "is a file, not a folder",
        str(not_rag): "is a lora run, not a RAG run",
    }
    app = TunewiseApp(workdir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.show_ask()
        await wait_until(pilot, lambda: _ask_shown(app), "the Ask screen")
        screen = app.screen
        assert isinstance(screen, AskScreen)
        for path, message in cases.items():
            screen.query_one("#ask-index", Input).value = path
            screen.query_one("#ask-index", Input).focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda p=path: screen.load_error and p in screen.load_error, path)
            assert message in str(screen.load_error)
            assert path in " ".join(screen_text(app).split()) or path in str(screen.load_error)
        # a question without an index is refused with a word, not asked
        screen.query_one("#ask-question", Input).value = "anything?"
        screen.query_one("#ask-question", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert screen.history == [] and isinstance(app.screen, AskScreen)


@async_test
async def test_welcome_opens_ask_which_lists_recent_rag_runs_and_asks_an_index_folder(
        work: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    app = TunewiseApp(workdir=work)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, WelcomeScreen), "the welcome screen")
        assert "Ask an existing index" in screen_text(app)
        await pilot.press("a")
        await wait_until(pilot, lambda: _ask_shown(app), "the Ask screen")
        screen = app.screen
        assert isinstance(screen, AskScreen)
        recent = screen.query_one("#ask-recent", OptionList)
        await wait_until(pilot, lambda: recent.display and recent.option_count == 1, "the recent RAG runs")
        assert "recent RAG run: runs/rag" in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, WelcomeScreen), "back on the welcome screen")
    # an index folder itself (not a run): answered by the model given, with the same defaults as `rag ask`
    app = TunewiseApp(workdir=work)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        app.push_screen(AskScreen(work / "runs/rag/index", model=str(tiny_model_dir)))
        await wait_until(pilot, lambda: isinstance(app.screen, AskScreen) and app.screen.asker, "the index")
        screen = app.screen
        assert isinstance(screen, AskScreen)
        assert f"the index {work / 'runs/rag/index'}" in " ".join(screen_text(app).split())
        screen.query_one("#ask-question", Input).value = "Where does lava escape?"
        screen.query_one("#ask-question", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: _answered(app, 1), "the answer")
        asked = screen.history[0][1]
        assert asked is not None and "docs/volcano.txt" in {c.source for c in asked.answer.citations}
        assert "docs/volcano.txt (chunk 0)" in screen_text(app)


@async_test
async def test_rag_plan_without_questions_writes_typed_ones_that_tunewise_run_accepts(
        work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.advisor.cli import main

    for name in ("base", "docs"):
        shutil.copytree(work / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    app = TunewiseApp(workdir=tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        app.show_plan("rag")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.query("#rag-typed"),
                         "the RAG plan")
        screen = app.screen
        assert isinstance(screen, PlanScreen)
        screen.query_one("#q-plan-model #input", Input).value = "base"
        screen.query_one("#q-plan-data #input", Input).value = "docs"
        screen.query_one("#q-config-max_new_tokens #input", Input).value = "8"
        assert screen.query_one("#rag-questions").display
        # ctrl+r without questions: told once, not run
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, PlanScreen) and not app.runs
        area = screen.query_one("#rag-typed", TextArea)
        # a bad line: nothing written, the line named, the typed text kept
        bad = "How fast do orders ship? => within two days\nWhat is the capital of Peru?\n"
        area.text = bad
        screen.query_one("#rag-write", Button).press()
        status = screen.query_one("#rag-questions-status")
        await wait_until(pilot, lambda: "line 2: add the short answer" in str(status.render()), "the bad line")
        assert area.text == bad and not list(tmp_path.glob("plans/*.jsonl"))
        area.text = ("How fast do orders ship? => within two days\n"
                     "# a comment\n"
                     "When are items refunded? => within 30 days => returns.txt\n"
                     "Who founded the company? => -\n")
        screen.query_one("#rag-write", Button).press()
        written = tmp_path / "plans" / "rag.questions.jsonl"
        await wait_until(pilot, lambda: "wrote 3 questions" in str(status.render()), "the questions written")
        assert str(written) in " ".join(str(status.render()).split())
        assert screen.query_one("#q-config-questions #input", Input).value == str(written)
        text = screen._build()
        assert text is not None and f"questions: {written}" in text
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert rows == [
        {"question": "How fast do orders ship?", "source": "docs/shipping.txt", "answer": "within two days"},
        {"question": "When are items refunded?", "source": "returns.txt", "answer": "within 30 days"},
        {"question": "Who founded the company?", "source": None, "answer": None},
    ]
    (tmp_path / "plan.yaml").write_text(text.replace("output_dir: runs/rag", "output_dir: runs/asked"))
    assert main(["run", "plan.yaml", "--quiet"]) == 0
    metrics = json.loads((tmp_path / "runs/asked/metrics.json").read_text())
    assert metrics["after"], metrics  # the questions were read and scored
    assert (tmp_path / "runs/asked/bakeoff.jsonl").is_file()


@async_test
async def test_results_of_a_rag_run_open_ask_and_other_runs_do_not_offer_it(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.advisor.tui.screens.results import ResultsScreen
    from tunewise.advisor.tui.screens.run import RunScreen

    monkeypatch.chdir(work)
    app = TunewiseApp(workdir=work, run_dir=Path("runs/rag"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.state.finished, "the run")
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.results is not None,
                         "the results")
        await wait_until(pilot, lambda: " a Ask " in screen_text(app).splitlines()[-1], "Ask in the footer")
        await pilot.press("a")
        await wait_until(pilot, lambda: _ask_shown(app), "the Ask screen from Results")
    lora = work / "lora-run"
    lora.mkdir()
    (lora / "events.jsonl").write_text(json.dumps({"event": "start", "method": "lora", "plan": {}}) + "\n"
                                       + json.dumps({"event": "end", "status": "completed"}) + "\n")
    app = TunewiseApp(workdir=work)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.push_screen(ResultsScreen(lora))
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.results is not None,
                         "the LoRA results")
        await pilot.pause()
        assert " a Ask " not in screen_text(app).splitlines()[-1]
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ResultsScreen)
