"""The Try it screen on a real continual-pretraining run of a tiny random model.

Opened from the Results screen (``t``, listed in its footer) and from the run screen of
``tunewise --run DIR``; both sides answer with streamed text; keys work while the models write, a
new prompt cancels the answer being written, and Escape leaves.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tui_support import async_test, screen_text, wait_until
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.screens.results import ResultsScreen
from tunewise.advisor.tui.screens.run import RunScreen
from tunewise.advisor.tui.screens.try_it import TryItScreen

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

PROMPT = "Orders ship within two"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A folder with a finished continual-pretraining run in ``runs/cpt`` (raw text: the tiny random
    model continues a prompt with its words, where a chat template would make it repeat a line break)."""
    from tunewise.advisor.cli import main

    root = tmp_path_factory.mktemp("try-it")
    shutil.copytree(tiny_model_dir, root / "base")
    docs = root / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"doc{i:02d}.txt").write_text(f"Orders ship within {i + 1} days from warehouse {i}. " * 4)
    (root / "cpt.yaml").write_text(
        "method: continual_pretraining\nmodel: base\ndata: docs\noutput_dir: runs/cpt\n"
        "training: {max_steps: 2, batch_size: 2, seq_len: 64, precision: fp32, save_steps: 100, max_new_tokens: 8}\n")
    here = Path.cwd()
    os.chdir(root)
    try:
        assert main(["run", "cpt.yaml", "--quiet"]) == 0
    finally:
        os.chdir(here)
    return root


@async_test
async def test_try_it_from_results_answers_side_by_side_and_keys_work_while_it_writes(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    app = TunewiseApp(run_dir=Path("runs/cpt"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.state.finished, "the run")
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.state.result,
                         "the results")
        assert "t Try it" in screen_text(app)  # the footer offers it
        await pilot.press("t")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, TryItScreen) and app.screen.tryout is not None
                                  and app.screen, "Try it with its models loaded")
        assert isinstance(screen, TryItScreen)
        await pilot.press(*PROMPT, "enter")
        await wait_until(pilot, lambda: len(screen.replies) == 2, "both answers")
        shown = screen_text(app)
        for which in ("base", "result"):
            reply = screen.replies[which]
            assert reply.answer and 0 < reply.tokens <= 8 and reply.prompt == PROMPT  # raw text, as the run read
            assert reply.answer.split()[0] in shown and f"{which}:" in shown
        assert shown.count("tokens/s") == 2

        # Keys work while the models write (a long answer in a worker thread) ...
        field = screen.query_one("#try-prompt")
        screen.max_new_tokens = 400
        app.simulate_key("enter")
        await wait_until(pilot, lambda: screen.generating and screen._texts.get("base"), "the base writing")
        app.simulate_key("x")
        await wait_until(pilot, lambda: field.value == PROMPT + "x", "the typed key")
        assert screen.generating, "the key was handled only after the answer was finished"
        # ... and a new prompt cancels the answer being written.
        screen.max_new_tokens = 8
        app.simulate_key("enter")
        await wait_until(pilot, lambda: len(screen.replies) == 2 and not screen.generating, "the new answers")
        cancelled = [reply for prompt, reply in screen.history if prompt == PROMPT and reply.cancelled]
        assert len(cancelled) == 1 and cancelled[0].tokens < 400, screen.history
        assert [r.which for p, r in screen.history if p == PROMPT + "x"] == ["base", "result"]

        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen), "back on the results")


@async_test
async def test_t_on_the_run_screen_of_a_finished_run_opens_try_it(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tunewise tui --run DIR``, then ``t``."""
    monkeypatch.chdir(work)
    app = TunewiseApp(run_dir=Path("runs/cpt"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.state.finished, "the run")
        await pilot.press("t")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, TryItScreen) and app.screen, "Try it")
        await wait_until(pilot, lambda: screen.tryout is not None, "its models")
        assert set(screen.tryout.sides) == {"base", "result"}
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), "back on the run")


@async_test
async def test_a_run_that_cannot_be_tried_says_why_and_the_app_goes_on(work: Path, tmp_path: Path) -> None:
    run = tmp_path / "cpt"
    shutil.copytree(work / "runs/cpt", run, ignore=shutil.ignore_patterns("model", "checkpoints"))
    app = TunewiseApp(run_dir=run)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.state.finished, "the run")
        await pilot.press("t")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ErrorDialog" and "config.json is missing"
                         in str(app.screen.query_one("#error-message").render()), "the error dialog naming the file")
        await pilot.press("escape")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, TryItScreen) and app.screen, "Try it")
        await wait_until(pilot, lambda: "This run cannot be tried" in screen_text(app), "the reason on the screen")
        assert "nothing to chat with" in screen_text(app)
        await pilot.press(*"hello", "enter")  # refused with a hint, nothing breaks
        assert screen.generation == 0
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), "back on the run")
