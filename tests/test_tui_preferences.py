"""The Preferences screen drives the shared labeling session: pick, skip, undo, resume — and never
labels a pair the person has not seen (keys while the next pair is written are dropped, not queued)."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path

from tui_support import async_test, wait_until
from tunewise.advisor.labeling import CandidateGenerator, LabelingError, skipped_path
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.screens.preferences import PreferencesScreen


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _text(screen, selector: str) -> str:  # type: ignore[no-untyped-def]
    return str(screen.query_one(selector).render())


async def _open(pilot, screen, prompt_number: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until prompt ``prompt_number``'s pair is on screen and open for a key."""
    await wait_until(pilot, lambda: screen.accepting and screen.session.shown.prompt.index == prompt_number - 1
                     and f"Prompt {prompt_number}:" in _text(screen, "#pref-prompt"),
                     f"prompt {prompt_number} open for a decision")


class GatedGenerator(CandidateGenerator):
    """Writes each prompt's two answers only once the test opens that prompt's gate (a real slow writer).

    Records which prompts it was asked for, in order, so a test sees what was generated ahead.
    """

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        super().__init__(None)
        self.asked: list[str] = []
        self.gates: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.failing = failing

    def __call__(self, prompt: str) -> tuple[str, str]:
        self.asked.append(prompt)
        assert self.gates[prompt].wait(timeout=120), f"the test never released {prompt!r}"  # hang guard
        if prompt in self.failing:
            raise LabelingError("the model gave the same (or empty) answer four times")
        return f"kind answer to {prompt}", f"curt answer to {prompt}"


def _screen_with(tmp_path: Path, generator: GatedGenerator, n: int = 3) -> tuple[TunewiseApp, PreferencesScreen, Path]:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"question {i}?\n" for i in range(n)))
    out = tmp_path / "prefs.jsonl"
    app = TunewiseApp(decisions_dir=tmp_path / "decisions")
    return app, PreferencesScreen(prompts, out, generator=generator), out


@async_test
async def test_pick_skip_undo_and_resume_from_the_screen(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}", "candidates": [f"a{i}", f"b{i}"]}) + "\n"
                               for i in range(3)))
    out = tmp_path / "prefs.jsonl"
    app = TunewiseApp(labeling=(prompts, out, None), decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await wait_until(pilot, lambda: app.screen if type(app.screen).__name__ == "PreferencesScreen"
                                  else None, "the Preferences screen")
        await _open(pilot, screen, 1)
        assert _text(screen, "#pref-a-text") == "a0"
        await pilot.press("2")  # B is better
        assert "pair 1: kept B (chosen) — saved" in _text(screen, "#pref-status")
        await _open(pilot, screen, 2)
        await pilot.press("s")
        assert "pair 2: skipped — saved" in _text(screen, "#pref-status")
        await _open(pilot, screen, 3)
        await pilot.press("u")  # takes back the skip: prompt 2 again
        await _open(pilot, screen, 2)
        assert _lines(skipped_path(out)) == []
        await pilot.press("a")
        await wait_until(pilot, lambda: "1 to go of 3" in _text(screen, "#pref-head"), "the head counting")
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in _lines(out)] == [("q0", "b0", "a0"), ("q1", "a1", "b1")]

    again = TunewiseApp(labeling=(prompts, out, None), decisions_dir=tmp_path / "decisions")
    async with again.run_test(size=(80, 24)) as pilot:
        screen = await wait_until(pilot, lambda: again.screen if type(again.screen).__name__ == "PreferencesScreen"
                                  else None, "the Preferences screen")
        await _open(pilot, screen, 3)  # a restart resumes
        await pilot.press("1")
        await wait_until(pilot, lambda: "All prompts have a decision" in _text(screen, "#pref-prompt"), "the end")
    assert len(_lines(out)) == 3


@async_test
async def test_keys_while_the_next_pair_is_written_are_dropped_not_queued(tmp_path: Path) -> None:
    generator = GatedGenerator()
    app, screen, out = _screen_with(tmp_path, generator, n=2)
    screen.flash_s = 3600  # the confirmation's highlight stays while the test looks at it
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(screen)
        await wait_until(pilot, lambda: "question 0?" in generator.asked, "the first pair being written")
        assert "writing two answers" in _text(screen, "#pref-a-text")
        # A new user presses every key while waiting: none may touch the unseen pair.
        await pilot.press("1", "a", "2", "b", "s")
        assert "still writing the next pair" in _text(screen, "#pref-status")
        assert screen.query_one("#pref-status").has_class("-hint")
        assert not screen.accepting and screen.session.decisions == []
        assert not out.exists() and not skipped_path(out).exists()

        generator.gates["question 0?"].set()
        await wait_until(pilot, lambda: "kind answer to question 0?" in _text(screen, "#pref-a-text"), "pair 1 drawn")
        await _open(pilot, screen, 1)
        assert _lines(out) == [] and _lines(skipped_path(out)) == [], "the keys from the wait were not queued"
        await pilot.press("2")
        rows = _lines(out)
        assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [
            ("question 0?", "curt answer to question 0?", "kind answer to question 0?")]
        assert "pair 1: kept B (chosen) — saved" in _text(screen, "#pref-status")
        assert screen.query_one("#pref-status").has_class("-saved")

        # Pair 2 is still being written (its gate is closed): keys are dropped again ...
        assert screen.pair is None and "Prompt 2:" in _text(screen, "#pref-prompt")
        await pilot.press("1", "s")
        assert "still writing the next pair" in _text(screen, "#pref-status")
        assert len(_lines(out)) == 1 and _lines(skipped_path(out)) == []
        # ... but undo works across the boundary: pair 1 comes back, and a new choice replaces the old.
        await pilot.press("u")
        assert _lines(out) == []
        await _open(pilot, screen, 1)
        await pilot.press("1")
        assert [r["chosen"] for r in _lines(out)] == ["kind answer to question 0?"]
        generator.gates["question 1?"].set()
        await _open(pilot, screen, 2)
        await pilot.press("b")
        assert [r["prompt"] for r in _lines(out)] == ["question 0?", "question 1?"]
    assert generator.asked.count("question 1?") == 1, "the pair written ahead was used, not written again"


@async_test
async def test_the_next_pair_is_written_while_this_one_is_read(tmp_path: Path) -> None:
    generator = GatedGenerator()
    app, screen, out = _screen_with(tmp_path, generator, n=3)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(screen)
        generator.gates["question 0?"].set()
        await _open(pilot, screen, 1)
        # No key pressed yet: the second prompt's pair is already being written.
        await wait_until(pilot, lambda: "question 1?" in generator.asked, "pair 2 written ahead")
        assert screen.session.decisions == []
        generator.gates["question 1?"].set()
        await wait_until(pilot, lambda: screen.session.ready_candidates(screen.session.prompts[1]),
                         "pair 2 ready ahead")
        screen.settle_s = 3600  # pair 2 stays closed until the test says, however slow the machine
        await pilot.press("a", "a")  # a double tap
        # Pair 2 is shown at once, no loading state: it was written while pair 1 was read.
        assert screen.pair == ("kind answer to question 1?", "curt answer to question 1?")
        assert not screen.query_one("#pref-a").has_class("-loading")
        # The second press must not decide the pair that appeared under it.
        assert [r["prompt"] for r in _lines(out)] == ["question 0?"]
        assert "just appeared" in _text(screen, "#pref-status") and not screen.accepting
        screen.settle_s = 0.05
        await pilot.press("a")  # still dropped: a key as a pair appears starts the wait again
        assert len(_lines(out)) == 1
        await wait_until(pilot, lambda: "question 2?" in generator.asked, "pair 3 written ahead")
        await _open(pilot, screen, 2)
        await pilot.press("b")
        assert [(r["prompt"], r["chosen"]) for r in _lines(out)] == [
            ("question 0?", "kind answer to question 0?"), ("question 1?", "curt answer to question 1?")]
        generator.gates["question 2?"].set()
    assert generator.asked == ["question 0?", "question 1?", "question 2?"]


@async_test
async def test_a_prompt_whose_answers_could_not_be_written_can_be_skipped_not_chosen(tmp_path: Path) -> None:
    generator = GatedGenerator(failing=("question 0?",))
    for gate in ("question 0?", "question 1?"):
        generator.gates[gate].set()
    app, screen, out = _screen_with(tmp_path, generator, n=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(screen)
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ErrorDialog", "the error dialog")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.accepting, "the prompt open for a skip")
        assert "could not be written" in _text(screen, "#pref-status")
        await pilot.press("1", "b")  # no answers on screen: nothing to choose
        assert not out.exists() and screen.session.decisions == []
        await pilot.press("s")
        assert [(r["prompt"], r["candidates"]) for r in _lines(skipped_path(out))] == [("question 0?", None)]
        await _open(pilot, screen, 2)
        await pilot.press("a")
    assert [r["chosen"] for r in _lines(out)] == ["kind answer to question 1?"]
