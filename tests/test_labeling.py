"""Preference labeling session (shared by the app and `tunewise label`): files, resume, undo, generation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tunewise.advisor.labeling import (
    CandidateGenerator,
    LabelingError,
    LabelingSession,
    load_prompts,
    skipped_path,
)


def _prompts(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"question {i}?", "candidates": [f"answer {i}a", f"answer {i}b"]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_load_prompts_formats(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("first\n\n  second  \n")
    assert [p.prompt for p in load_prompts(tmp_path / "p.txt")] == ["first", "second"]
    (tmp_path / "p.json").write_text(json.dumps(["a", {"prompt": "b", "candidates": ["x", "y"]}]))
    loaded = load_prompts(tmp_path / "p.json")
    assert loaded[1].candidates == ("x", "y") and loaded[1].index == 1


@pytest.mark.parametrize(("content", "message"), [
    ('{"prompt": "ok"}\n{"prompt": ""}\n', "p.jsonl:2: 'prompt' must be a non-empty string"),
    ('{"prompt": "ok"}\nnot json\n', "p.jsonl:2: not valid JSON"),
    ('{"prompt": "ok", "candidates": ["one"]}\n', "p.jsonl:1: 'candidates' must be a list of two"),
    ("\n\n", "no prompts found"),
])
def test_bad_prompt_rows_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "p.jsonl").write_text(content)
    with pytest.raises(LabelingError, match=message.replace("[", r"\[")):
        load_prompts(tmp_path / "p.jsonl")


def test_choose_skip_undo_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "prefs.jsonl"
    session = LabelingSession.open(_prompts(tmp_path), out)
    first = session.next_prompt()
    assert first is not None and first.index == 0
    session.choose(first, 1)
    second = session.next_prompt()
    assert second is not None
    session.skip(second)
    third = session.next_prompt()
    assert third is not None
    session.choose(third, 0)
    assert _lines(out) == [
        {**_lines(out)[0], "prompt": "question 0?", "chosen": "answer 0b", "rejected": "answer 0a"},
        {**_lines(out)[1], "prompt": "question 2?", "chosen": "answer 2a", "rejected": "answer 2b"},
    ]
    assert [r["prompt"] for r in _lines(skipped_path(out))] == ["question 1?"]

    # A new session on the same files (a restart) continues at the first undecided prompt.
    resumed = LabelingSession.open(_prompts(tmp_path), out)
    assert (resumed.chosen_count, resumed.skipped_count) == (2, 1)
    nxt = resumed.next_prompt()
    assert nxt is not None and nxt.prompt == "question 3?"

    # Undo takes back the latest decision across both files, newest first.
    undone = resumed.undo()
    assert undone is not None and undone.prompt == "question 2?"
    assert [r["prompt"] for r in _lines(out)] == ["question 0?"]
    undone = resumed.undo()
    assert undone is not None and undone.prompt == "question 1?"
    assert _lines(skipped_path(out)) == []
    assert resumed.next_prompt() == undone
    with pytest.raises(LabelingError, match="already has a decision"):
        resumed.choose(first, 0)


def test_torn_last_line_is_dropped_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "prefs.jsonl"
    session = LabelingSession.open(_prompts(tmp_path), out)
    prompt = session.next_prompt()
    assert prompt is not None
    session.choose(prompt, 0)
    with open(out, "a") as stream:  # what a crash in the middle of a write leaves
        stream.write('{"prompt": "question 1?", "chosen": "ans')
    resumed = LabelingSession.open(_prompts(tmp_path), out)
    assert resumed.chosen_count == 1
    assert len(_lines(out)) == 1
    nxt = resumed.next_prompt()
    assert nxt is not None and nxt.prompt == "question 1?"


def test_killed_labeler_loses_no_decision(tmp_path: Path) -> None:
    """Decisions are on disk the moment they are made: kill -9 after three choices keeps all three."""
    prompts, out = _prompts(tmp_path, 6), tmp_path / "prefs.jsonl"
    script = textwrap.dedent(f"""
        import os, signal
        from tunewise.advisor.labeling import LabelingSession
        s = LabelingSession.open({str(prompts)!r}, {str(out)!r})
        for _ in range(3):
            s.choose(s.next_prompt(), 0)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    resumed = LabelingSession.open(prompts, out)
    assert resumed.chosen_count == 3
    nxt = resumed.next_prompt()
    assert nxt is not None and nxt.index == 3


def test_no_generator_and_no_candidates_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("hello\n")
    session = LabelingSession.open(tmp_path / "p.txt", tmp_path / "o.jsonl")
    prompt = session.next_prompt()
    assert prompt is not None
    with pytest.raises(LabelingError, match="no model was given"):
        session.candidates(prompt)


def test_generator_gives_two_different_answers_from_a_real_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Name a colour.\n")
    generator = CandidateGenerator(str(tiny_model_dir), max_new_tokens=8)
    session = LabelingSession.open(tmp_path / "p.txt", tmp_path / "o.jsonl", generator)
    prompt = session.next_prompt()
    assert prompt is not None
    a, b = session.candidates(prompt)
    assert a and b and a != b
    assert generator(prompt.prompt) == (a, b), "the pair is seeded by the prompt: a restart shows the same"
    session.choose(prompt, 1)
    assert _lines(tmp_path / "o.jsonl")[0]["chosen"] == b
