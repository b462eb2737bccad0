"""``tunewise label`` as a person uses it: keys in, pairs on disk at once, kill and restart, undo — and a key
only ever decides the pair on screen (the session's token; keys typed while a pair is written are dropped)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from tunewise.advisor.labeling import skipped_path
from tunewise.plugins.data import load_dataset

COMMAND = [sys.executable, "-m", "tunewise.advisor.cli", "label"]


def prompts_file(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"Question {i}?", "candidates": [f"Answer {i}, kindly.", f"Answer {i}, rudely."]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_label(*args: str, keys: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``tunewise label ARGS`` with ``keys`` piped to standard input."""
    return subprocess.run([*COMMAND, *args], cwd=REPO, input=keys, capture_output=True, text=True, timeout=timeout)


def label(tmp_path: Path, keys: str) -> subprocess.CompletedProcess[str]:
    return run_label("--prompts", str(prompts_file(tmp_path)), "--out", str(tmp_path / "prefs.jsonl"),
                     "--keys-from-stdin", keys=keys)


def wait_for(predicate, timeout: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_no_terminal_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_label("--prompts", str(prompts_file(tmp_path)), "--out", str(tmp_path / "prefs.jsonl"), keys="a\n")
    assert proc.returncode == 1
    assert "not a terminal" in proc.stderr and "--keys-from-stdin" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "prefs.jsonl").exists()


def test_choices_skip_and_the_output_feeds_an_rlhf_plan(tmp_path: Path) -> None:
    proc = label(tmp_path, "a\nx\nb\ns\nq\n")
    assert proc.returncode == 0, proc.stderr
    assert "unknown key 'x'" in proc.stdout
    out = tmp_path / "prefs.jsonl"
    rows = lines(out)
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [
        ("Question 0?", "Answer 0, kindly.", "Answer 0, rudely."),
        ("Question 1?", "Answer 1, rudely.", "Answer 1, kindly."),
    ]
    assert [r["prompt"] for r in lines(tmp_path / "prefs.skipped.jsonl")] == ["Question 2?"]
    assert load_dataset(out).shape == "preference"
    assert "2 preference pairs" in proc.stdout


def test_killed_mid_way_loses_nothing_and_a_restart_continues(tmp_path: Path) -> None:
    out = tmp_path / "prefs.jsonl"
    proc = subprocess.Popen([*COMMAND, "--prompts", str(prompts_file(tmp_path)), "--out", str(out),
                             "--keys-from-stdin"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert proc.stdin is not None
    proc.stdin.write("b\na\n")
    proc.stdin.flush()
    assert wait_for(lambda: len(lines(out)) == 2), "the two decisions never reached the file"
    proc.kill()  # SIGKILL: no handler, no cleanup, no flush at exit
    proc.wait(timeout=30)
    assert [r["prompt"] for r in lines(out)] == ["Question 0?", "Question 1?"]

    # A crash in the middle of writing leaves a torn last line: the restart cuts it and goes on.
    with open(out, "a", encoding="utf-8") as fh:
        fh.write('{"prompt": "Question 2?", "chos')
    restarted = label(tmp_path, "a\nq\n")
    assert restarted.returncode == 0, restarted.stderr
    assert "continuing" in restarted.stdout and "2 labelled" in restarted.stdout
    assert "prompt 3 of 4" in restarted.stdout and "prompt 1 of 4" not in restarted.stdout
    assert [r["prompt"] for r in lines(out)] == ["Question 0?", "Question 1?", "Question 2?"]


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored and children inherit that; Ctrl-C in a
    # terminal reaches a process whose SIGINT is at its default, so the test sets that up.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_every_decision(tmp_path: Path) -> None:
    out = tmp_path / "prefs.jsonl"
    proc = subprocess.Popen([*COMMAND, "--prompts", str(prompts_file(tmp_path)), "--out", str(out),
                             "--keys-from-stdin"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert proc.stdin is not None
    proc.stdin.write("a\n")
    proc.stdin.flush()
    assert wait_for(lambda: len(lines(out)) == 1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in stderr
    assert [r["prompt"] for r in lines(out)] == ["Question 0?"]


def test_undo_reaches_back_across_a_restart(tmp_path: Path) -> None:
    out = tmp_path / "prefs.jsonl"
    assert label(tmp_path, "a\ns\nb\nq\n").returncode == 0
    assert [r["prompt"] for r in lines(out)] == ["Question 0?", "Question 2?"]
    proc = label(tmp_path, "u\nu\nu\nu\nq\n")
    assert "undid the decision on prompt 3" in proc.stdout
    assert "undid the decision on prompt 2" in proc.stdout and "undid the decision on prompt 1" in proc.stdout
    assert "nothing to undo" in proc.stdout
    assert lines(out) == [] and lines(tmp_path / "prefs.skipped.jsonl") == []
    again = label(tmp_path, "b\nq\n")
    assert "prompt 1 of 4" in again.stdout
    assert lines(out)[0]["chosen"] == "Answer 0, rudely."


def test_candidates_written_by_a_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("How do I boil an egg?\nHow do I tie a knot?\n", encoding="utf-8")
    out = tmp_path / "prefs.jsonl"
    proc = run_label("--prompts", str(prompts), "--out", str(out), "--model", str(tiny_model_dir),
                     "--max-new-tokens", "6", "--keys-from-stdin", keys="a\nq\n", timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = lines(out)
    assert len(rows) == 1 and rows[0]["prompt"] == "How do I boil an egg?"
    assert rows[0]["chosen"] and rows[0]["rejected"] and rows[0]["chosen"] != rows[0]["rejected"]


# -- a decision only ever for the pair on screen ------------------------------------------------------


def test_a_decision_must_carry_the_pair_on_screen(tmp_path: Path) -> None:
    from tunewise.advisor.labeling import LabelingError, LabelingSession

    out = tmp_path / "prefs.jsonl"
    session = LabelingSession.open(prompts_file(tmp_path), out)
    first, second = session.prompts[0], session.prompts[1]
    assert first.candidates is not None and second.candidates is not None

    shown = session.show(first, first.candidates)
    session.hide()  # the screen moved to a loading state: nothing is open
    with pytest.raises(LabelingError, match="pair 1 is not on screen any more; nothing was recorded"):
        session.choose(shown, 0)

    shown = session.show(first, first.candidates)
    for decide in (lambda: session.choose(first, 0), lambda: session.skip(first)):  # any path without the token
        with pytest.raises(LabelingError, match="must carry the pair on screen"):
            decide()

    replaced = session.show(second, second.candidates)  # a newer pair took its place
    with pytest.raises(LabelingError, match="pair 1 is not on screen"):
        session.choose(shown, 0)
    session.choose(replaced, 1)
    with pytest.raises(LabelingError, match="pair 2 is not on screen"):  # a second press on the same showing
        session.choose(replaced, 0)
    assert [(r["prompt"], r["chosen"]) for r in lines(out)] == [("Question 1?", "Answer 1, rudely.")]

    reopened = session.show(first, first.candidates)
    assert session.undo() is not None  # undo closes what was open: the UI goes back to the undone prompt
    with pytest.raises(LabelingError, match="not on screen"):
        session.skip(reopened)
    assert lines(out) == []

    without_answers = session.show(first, None)  # the answers could not be written: only a skip
    with pytest.raises(LabelingError, match="can only be skipped"):
        session.choose(without_answers, 0)
    session.skip(without_answers)
    assert [r["prompt"] for r in lines(skipped_path(out))] == ["Question 0?"]
    assert lines(out) == [] and session.shown is None


def test_the_recorded_pair_is_the_pair_that_was_shown(tmp_path: Path) -> None:
    from tunewise.advisor.labeling import LabelingSession

    out = tmp_path / "prefs.jsonl"
    session = LabelingSession.open(prompts_file(tmp_path), out)
    prompt = session.prompts[0]
    shown = session.show(prompt, ("what the screen drew", "and its other half"))
    session.choose(shown, 1)
    assert lines(out)[0]["chosen"] == "and its other half"
    assert lines(out)[0]["candidates"] == ["what the screen drew", "and its other half"]


class _GatedWriter:
    """A candidate writer that answers a prompt only once the test opens that prompt's gate."""

    def __init__(self) -> None:
        self.gates: defaultdict[str, threading.Event] = defaultdict(threading.Event)

    def __call__(self, prompt: str) -> tuple[str, str]:
        assert self.gates[prompt].wait(timeout=120), f"the test never released {prompt!r}"  # hang guard
        return f"kind {prompt}", f"curt {prompt}"


class _Terminal:
    """``tunewise label``'s session loop on a real pseudo-terminal, in a thread; the test types into the master."""

    def __init__(self, session: Any) -> None:
        from rich.console import Console
        from tunewise.advisor.commands.label import KeyReader, run_session

        self.master, slave = os.openpty()
        self._keyboard = os.fdopen(slave, "r", closefd=False)
        self._screen = os.fdopen(os.dup(slave), "w")
        self._slave = slave
        console = Console(file=self._screen, width=100, color_system=None, highlight=False, markup=False)
        self.text = ""
        self._lock = threading.Lock()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

        self.error: BaseException | None = None

        def labeler() -> None:
            try:
                with KeyReader(self._keyboard, lines=False) as keys:
                    run_session(session, keys, console)
            except BaseException as exc:  # shown by wait_for: a dead labeler is a failure, not a hang
                self.error = exc
                raise

        self.thread = threading.Thread(target=labeler, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        # The pump alone closes the master, once the slave side is gone (EIO): closed by anyone else
        # while this loop runs, its number could be reused by the next test's terminal and read here.
        try:
            while True:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                with self._lock:
                    self.text += chunk.decode("utf-8", "replace").replace("\r", "")
        finally:
            os.close(self.master)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait_for(self, text: str, count: int = 1, after: str = "") -> None:
        """Until ``text`` was shown ``count`` times (after the last ``after``, when given)."""
        def shown() -> bool:
            if after and after not in self.text:
                return False
            return self.text.rsplit(after, 1)[-1].count(text) >= count if after else self.text.count(text) >= count

        assert wait_for(lambda: shown() or self.error is not None, timeout=120) \
            and self.error is None, \
            f"the terminal never showed {text!r} ({count}x) (labeler error: {self.error!r}); it shows:\n" \
            f"{self.text[-3000:]}\nlabeler at:\n{self._where()}"

    def _where(self) -> str:
        import traceback

        frame = sys._current_frames().get(self.thread.ident or -1)
        return "".join(traceback.format_stack(frame)) if frame is not None else "(finished)"

    def close(self) -> None:
        self.thread.join(timeout=5)  # ended by the test's "q"; after a failure it may still wait for a key
        self._screen.close()
        self._keyboard.close()
        os.close(self._slave)
        self._pump_thread.join(timeout=5)


def test_terminal_drops_keys_typed_while_the_pair_is_written(tmp_path: Path) -> None:
    from tunewise.advisor.commands.label import HELP_LINE, STILL_WRITING
    from tunewise.advisor.labeling import LabelingSession

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Question 0?\nQuestion 1?\n", encoding="utf-8")
    out = tmp_path / "prefs.jsonl"
    writer = _GatedWriter()
    terminal = _Terminal(LabelingSession.open(prompts, out, writer))
    try:
        terminal.wait_for("writing two answers to prompt 1")
        terminal.type(b"a")  # pressed while the pair is being written
        terminal.wait_for(STILL_WRITING)
        terminal.type(b"2bs")
        assert lines(out) == [] and lines(skipped_path(out)) == []
        writer.gates["Question 0?"].set()
        terminal.wait_for(HELP_LINE)  # the pair is on screen and open
        assert lines(out) == [] and lines(skipped_path(out)) == [], "keys from the wait were not queued"
        terminal.type(b"b")
        terminal.wait_for("pair 1: kept B (chosen) — saved")
        assert [(r["prompt"], r["chosen"]) for r in lines(out)] == [("Question 0?", "curt Question 0?")]

        terminal.wait_for("writing two answers to prompt 2")  # its gate is closed: loading
        terminal.type(b"u")  # undo works while the next pair loads
        terminal.wait_for("undid the decision on prompt 1")
        assert lines(out) == []
        terminal.wait_for(HELP_LINE, count=2)  # pair 1 again, open
        terminal.type(b"a")
        terminal.wait_for("pair 1: kept A (chosen) — saved")
        terminal.wait_for("writing two answers to prompt 2", count=2)
        terminal.type(b"q")
        terminal.thread.join(timeout=60)
        assert not terminal.thread.is_alive()
    finally:
        for gate in writer.gates.values():
            gate.set()
        terminal.close()
    assert [(r["prompt"], r["chosen"]) for r in lines(out)] == [("Question 0?", "kind Question 0?")]


def test_terminal_flushes_type_ahead_and_takes_escape_sequences_whole(tmp_path: Path) -> None:
    from tunewise.advisor.commands.label import HELP_LINE
    from tunewise.advisor.labeling import LabelingSession

    out = tmp_path / "prefs.jsonl"
    terminal = _Terminal(LabelingSession.open(prompts_file(tmp_path, 3), out))
    try:
        terminal.wait_for(HELP_LINE)
        terminal.type(b"\x1b[A")  # the up arrow: ESC [ A must not count as "a"
        terminal.wait_for("unknown key an arrow or function key")
        assert lines(out) == []
        terminal.type(b"\x1b[Bb")  # the down arrow and "b" at once: the "b" is not swallowed with the arrow
        terminal.wait_for("pair 1: kept B (chosen) — saved")
        terminal.wait_for(HELP_LINE, after="prompt 2 of 3")
        terminal.type(b"aa")  # a double tap: the second "a" was typed before pair 3 was drawn
        terminal.wait_for("pair 2: kept A (chosen) — saved")
        terminal.wait_for("ignored 1 key pressed before this pair was on screen")
        terminal.wait_for(HELP_LINE, after="prompt 3 of 3")
        assert [r["prompt"] for r in lines(out)] == ["Question 0?", "Question 1?"]
        terminal.type(b"q")
        terminal.thread.join(timeout=60)
        assert not terminal.thread.is_alive()
    finally:
        terminal.close()
    assert [(r["prompt"], r["chosen"]) for r in lines(out)] == [
        ("Question 0?", "Answer 0, rudely."), ("Question 1?", "Answer 1, kindly.")]
