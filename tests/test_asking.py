"""What a path given to Ask leads to, and typed questions for a RAG plan (no model loaded here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tunewise.advisor.asking import AskError, find_index, recent_rag_runs
from tunewise.advisor.decision_log import DecisionLog
from tunewise.advisor.typed_questions import TypedQuestionsError, parse_typed, summary, write_questions
from tunewise.methods.rag.evaluate import load_questions


def _run(folder: Path, method: str, *, end: str | None = "completed", index: bool = False) -> Path:
    """A run folder as ``tunewise run`` leaves it: events (start, and end with ``end``), an index."""
    folder.mkdir(parents=True)
    events = [{"event": "start", "method": method, "plan": {"method": method, "model": "base"}}]
    if end is not None:
        events.append({"event": "end", "status": end, "result": {"method": method, "status": end,
                                                                   "message": "out of disk" if end != "completed" else ""}})
    (folder / "events.jsonl").write_text("".join(json.dumps({"time": 1.0, **e}) + "\n" for e in events))
    if index:
        (folder / "index").mkdir()
        (folder / "index" / "manifest.json").write_text("{}")
    return folder


def test_find_index_says_what_each_path_is(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    index.mkdir()
    (index / "manifest.json").write_text("{}")
    assert find_index(index).index_dir == index and find_index(index).run_dir is None
    assert find_index(index / "manifest.json").index_dir == index  # the manifest itself: its folder
    assert find_index(f"  {index}  ").index_dir == index  # pasted with spaces
    done = _run(tmp_path / "runs/rag", "rag", index=True)
    assert find_index(done).run_dir == done
    failed = _run(tmp_path / "runs/rag-failed", "rag", end="failed", index=True)
    target = find_index(failed)  # its index was built before it failed: asked with the defaults, and said so
    assert target.index_dir == failed / "index" and target.run_dir is None
    assert target.note and "failed" in target.note and "default settings" in target.note
    (tmp_path / "notes.txt").write_text("x")
    refused = {
        "": "give an index folder",
        str(tmp_path / "nowhere"): "folder not found",
        str(tmp_path / "notes.txt"): "is a file, not a folder",
        str(tmp_path): "is not an index (no manifest.json) nor a run folder",
        str(_run(tmp_path / "runs/lora", "lora")): "is a lora run, not a RAG run",
        str(_run(tmp_path / "runs/rag-going", "rag", end=None)): "has not finished",
        str(_run(tmp_path / "runs/rag-stopped", "rag", end="failed")): "failed",
    }
    for path, message in refused.items():
        with pytest.raises(AskError) as caught:
            find_index(path)
        assert message in str(caught.value) and path.strip() in str(caught.value)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "events.jsonl").write_bytes(b"\xff\xfe not json\n")
    with pytest.raises(AskError, match="is a unknown run, not a RAG run"):
        find_index(broken)


def test_recent_rag_runs_come_from_the_runs_folder_and_the_decision_log(tmp_path: Path) -> None:
    work = tmp_path / "work"
    here = _run(work / "runs/rag", "rag", index=True)
    _run(work / "runs/lora", "lora")
    elsewhere = _run(tmp_path / "elsewhere/rag", "rag", index=True)
    gone = tmp_path / "gone"
    decisions = tmp_path / "decisions"
    log = DecisionLog.start(decisions)
    for run_dir, status in ((elsewhere, "completed"), (gone, "completed"), (work / "runs/lora", "completed")):
        log.record("run", {"run_dir": str(run_dir), "status": status, "method": "rag"})
    found = recent_rag_runs(work, decisions)
    assert set(found) == {here.resolve(), elsewhere.resolve()}  # not the lora run, not a folder that is gone
    assert recent_rag_runs(tmp_path / "empty", tmp_path / "no-decisions") == []


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "shipping.txt").write_text("Shipping\nOrders ship from the Oslo warehouse within two\n days.")
    (folder / "returns.md").write_text("# Returns\nItems can be returned within 30 days.")
    (folder / "faq.jsonl").write_text(json.dumps({"text": "Refunds take 30 days to arrive."}) + "\n")
    return folder


def test_typed_questions_find_their_document_and_are_written_as_the_run_reads_them(docs: Path, tmp_path: Path) -> None:
    typed = ("How fast do orders ship?=>within TWO days\n"  # no spaces, other case, the line break in the file
             "\n# skipped\n"
             "When can items go back? => within 30 days => returns.md\n"
             "Where is the head office? => -\n")
    questions = parse_typed(typed, [docs])
    assert [(q.question, q.answer, q.source, q.line) for q in questions] == [
        ("How fast do orders ship?", "within TWO days", "docs/shipping.txt", 1),
        ("When can items go back?", "within 30 days", "returns.md", 4),
        ("Where is the head office?", None, None, 5),
    ]
    path = write_questions(questions, tmp_path / "plans" / "rag.questions.jsonl")
    loaded = load_questions(path)  # the run's own loader
    assert [(q.question, q.source, q.answer, q.answerable) for q in loaded] == [
        ("How fast do orders ship?", "docs/shipping.txt", "within TWO days", True),
        ("When can items go back?", "returns.md", "within 30 days", True),
        ("Where is the head office?", None, None, False),
    ]
    assert summary(questions, path) == (f"wrote 3 questions to {path}: 2 with an answer and its document (scored "
                                        "in the bake-off), 1 the documents do not answer (should be refused)")


@pytest.mark.parametrize(("typed", "message"), [
    ("What ships?", "line 1: add the short answer"),
    ("ok => within 30 days\nWhat? => 30 days", "line 2: the answer '30 days' is in 2 documents"),
    ("What? => a penguin", "line 1: cannot find the document holding 'a penguin': it is in none"),
    ("What? => 30 days => missing.txt", "line 1: no document 'missing.txt' in the plan's data"),
    (" => answer", "line 1: the question before '=>' is empty"),
    ("What? => ", "line 1: the answer after '=>' is empty"),
    ("What? => a => b => c", "line 1: more than two '=>'"),
    ("What? => - => returns.md", "line 1: a question the documents do not answer"),
    ("\n# only a comment\n", "no questions typed"),
])
def test_bad_typed_questions_are_named_by_line_and_nothing_is_written(docs: Path, typed: str, message: str) -> None:
    with pytest.raises(TypedQuestionsError) as caught:
        parse_typed(typed, [docs])
    assert message in str(caught.value)


def test_every_bad_line_is_listed_and_unreadable_data_is_said(tmp_path: Path, docs: Path) -> None:
    with pytest.raises(TypedQuestionsError) as caught:
        parse_typed("a?\nb?\nc? => 30 days => returns.md\nd?", [docs])
    assert [line.split(":")[0] for line in str(caught.value).splitlines()] == ["line 1", "line 2", "line 4"]
    with pytest.raises(TypedQuestionsError, match=r"line 1: .*the plan's data cannot be read .*no such file"):
        parse_typed("What? => 30 days", [tmp_path / "gone"])
    shutil.rmtree(docs)
    for typed in ("What? => 30 days", "What? => 30 days => returns.md"):
        with pytest.raises(TypedQuestionsError, match="the plan names no documents: fill in its data first"):
            parse_typed(typed, [])
    with pytest.raises(TypedQuestionsError, match="line 1: cannot check the document 'returns.md': the plan's data"):
        parse_typed("What? => 30 days => returns.md", [tmp_path / "gone"])
