"""``tunewise label`` as a person uses it: keys in, pairs on disk at once, kill and restart, undo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import REPO
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
