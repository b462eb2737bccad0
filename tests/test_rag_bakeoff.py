"""RAG bake-off: the generator without retrieval (base) vs with retrieval and citations (result), per question."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tunewise.methods.rag.bakeoff import rag_bake_off
from tunewise.methods.rag.evaluate import normalize
from tunewise.plugins.events import make_event
from tunewise.plugins.types import Plan

DOCS = {
    "volcano.txt": "Volcanoes\n=========\n\nA volcano is a rupture in the crust of a planet. Lava, ash and gases "
                   "escape through it.\nMagma that reaches the surface is called lava.\n\nMost volcanoes are "
                   "found where tectonic plates meet. Iceland sits on the Mid-Atlantic Ridge.\n",
    "bread.md": "# Baking bread\n\nBread dough needs flour, water, salt and yeast. Kneading develops the gluten. "
                "Let the dough rise for about two hours.\n\n## Baking\n\nBake at a high temperature until the "
                "crust is brown.\n",
    "chess.txt": "Chess\n\nIn chess the king moves one square in any direction. Castling moves the king two squares "
                 "towards a rook. A pawn that reaches the last rank is promoted, usually to a queen.\n",
}
QUESTIONS = [
    {"question": "What is magma called when it reaches the surface?", "source": "volcano.txt", "answer": "lava"},
    {"question": "How long should bread dough rise?", "source": "bread.md", "answer": "two hours"},
    {"question": "What happens to a pawn that reaches the last rank?", "source": "chess.txt", "answer": "promoted"},
    {"question": "Where are most volcanoes found?", "source": "volcano.txt", "answer": "where tectonic plates meet"},
    {"question": "What does kneading develop in bread dough?", "source": "bread.md", "answer": "gluten"},
    {"question": "How far does the king move in chess?", "source": "chess.txt", "answer": "one square"},
    {"question": "Who won the football world cup in 1998?", "source": None, "answer": None},
]
SETTINGS = {"k": 3, "chunk_tokens": 200, "mode": "hybrid", "min_relevance": 0.3}


def _project(root: Path, questions: bool = True) -> Path:
    docs = root / "kb"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    if questions:
        (root / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    return root


def _run(root: Path, model: Path, **config: Any) -> tuple[Any, list[dict[str, Any]]]:
    from tunewise.methods.rag.run import run

    events: list[dict[str, Any]] = []
    plan = Plan(method="rag", model=str(model), data=(str(root / "kb"),), source=str(root / "plan.yaml"),
                config={"chunk_tokens": 32, "overlap_tokens": 8, "recall_at": (1, 3), "max_new_tokens": 4, **config},
                output_dir=str(root / "out"))
    result = run(plan, lambda kind, **fields: events.append(make_event(kind, **fields)))
    return result, events


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def cited_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = _project(tmp_path_factory.mktemp("rag-bakeoff"))
    result, events = _run(root, tiny_model_dir, questions="questions.jsonl")
    return {"root": root, "result": result, "events": events}


def test_every_question_with_an_answer_is_in_the_bake_off_by_file_line(cited_run: dict[str, Any]) -> None:
    root, result = cited_run["root"], cited_run["result"]
    lines = _lines(root / "out" / "bakeoff.jsonl")
    header, rows = lines[0]["bakeoff"], lines[1:]
    questions_file = (root / "questions.jsonl").resolve()
    assert [r["id"].rsplit(":", 1)[1] for r in rows] == [str(n) for n in range(1, 7)]  # line 7 has no answer
    assert all(Path(r["id"].rsplit(":", 1)[0]).resolve() == questions_file for r in rows)
    for row, question in zip(rows, QUESTIONS, strict=False):
        assert row["prompt"] == question["question"] and row["reference"] == question["answer"]
        # containment recomputed from the answers themselves
        for side in ("base", "result"):
            contained = f" {normalize(row['reference'])} " in f" {normalize(row[side + '_answer'])} "
            assert row[f"{side}_score"] == float(contained)
    assert header["metric"] == "containment" and header["examples"] == 6 and header["unit"] == "questions"
    assert result.bakeoff == header
    # The tiny random generator never cites: the extractive fallback quotes the passages, which hold the answers.
    assert header["verdict"] == "better" and header["after"]["containment"] > header["before"]["containment"]
    assert result.message.startswith(header["sentence"].rstrip("."))


def test_metrics_hold_citation_rate_retrieval_recall_and_run_facts(cited_run: dict[str, Any]) -> None:
    root, result = cited_run["root"], cited_run["result"]
    metrics = json.loads((root / "out" / "metrics.json").read_text())
    answers = _lines(root / "out" / "answers.jsonl")
    answerable = [a for a in answers if a["gold_source"] is not None]
    assert metrics["citation_rate"] == sum(a["valid_citation"] for a in answerable) / len(answerable) == 1.0
    assert metrics["retrieval_recall"] == sum(a["reference_in_passages"] for a in answerable) / len(answerable)
    facts = metrics["run_facts"]
    assert facts["retrieval_used"] is True and facts["citation_rate"] == metrics["citation_rate"]
    assert facts["retrieval_recall"] == metrics["retrieval_recall"] and facts["model_params"] > 0
    assert metrics["main_metric"] == "containment" and len(metrics["interval_95"]) == 2
    assert metrics["before"]["containment"] == metrics["bakeoff"]["before"]["containment"]
    assert result.metrics_after["citation_rate"] == metrics["citation_rate"]
    assert metrics["questions_without_answer"] == 1 and metrics["questions_scored"] == 6


def test_report_starts_with_the_bake_off_and_says_what_was_left_out(cited_run: dict[str, Any]) -> None:
    report = (cited_run["root"] / "out" / "report.md").read_text()
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Bake-off: base vs result on the held-out split" and sections[1] == "## Plan"
    first = report.split("## Plan")[0]
    assert cited_run["result"].bakeoff["sentence"] in first
    assert "1 questions without a reference answer are not in the bake-off" in first


def test_phases_report_each_stage_with_counts(cited_run: dict[str, Any]) -> None:
    events = cited_run["events"]
    phases = [e for e in events if e["event"] == "phase"]
    names = list(dict.fromkeys(e["phase"] for e in phases))
    assert names == ["reading", "chunking", "embedding", "indexing", "answering without retrieval",
                     "answering with retrieval"]
    ends = {e["phase"]: (e["done"], e["total"], e["unit"]) for e in phases}  # the last event of each
    assert ends["reading"] == ends["chunking"] == (3, 3, "files")
    assert ends["answering without retrieval"] == (6, 6, "questions")
    assert ends["answering with retrieval"] == (7, 7, "questions")
    assert ends["embedding"][0] == ends["embedding"][1] and ends["embedding"][2] == "chunks"
    [bake] = [e for e in events if e["event"] == "bakeoff"]
    assert bake["sentence"] == cited_run["result"].bakeoff["sentence"]
    assert [e["event"] for e in events].index("bakeoff") > max(i for i, e in enumerate(events) if e["event"] == "phase")


def test_a_generator_that_does_not_use_the_passages_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    # generate mode keeps the random model's own replies: no valid citations, no answers.
    root = _project(tmp_path)
    result, _ = _run(root, tiny_model_dir, questions="questions.jsonl", answer_mode="generate")
    bake = result.bakeoff
    assert bake["verdict"] != "better" and bake["reasons"]
    metrics = json.loads((root / "out" / "metrics.json").read_text())
    assert metrics["citation_rate"] < 0.5
    top = bake["reasons"][0]
    assert top["code"] == "generator_too_small" and top["setting"] == "model"
    assert "generator does not use the retrieved passages" in result.message


def test_without_questions_there_is_no_bake_off_and_the_run_says_how_to_add_them(tiny_model_dir: Path,
                                                                               tmp_path: Path) -> None:
    root = _project(tmp_path, questions=False)
    result, events = _run(root, tiny_model_dir)
    assert result.status == "completed" and result.bakeoff is None
    assert result.message.startswith("No bake-off: the plan has no question file") and "config.questions" in \
        result.message
    assert not (root / "out" / "bakeoff.jsonl").exists()
    report = (root / "out" / "report.md").read_text()
    first = report.split("## Plan")[0]
    assert "no bake-off" in first and "config.questions" in first
    metrics = json.loads((root / "out" / "metrics.json").read_text())
    assert metrics["bakeoff"] is None and "config.questions" in metrics["no_bakeoff"]
    assert not [e for e in events if e["event"] == "bakeoff"]


def _record(n: int, *, base: float, result: float, answered: bool = True, in_passages: bool = True,
            retrieved: bool = True, extractive: bool = False) -> dict[str, Any]:
    return {"where": f"q.jsonl:{n}", "question": f"q{n}", "reference": "x", "answer": "a", "closed_book": "b",
            "gold_source": "a.txt", "answered": answered, "extractive": extractive,
            "reference_in_passages": in_passages, "gold_retrieved": retrieved,
            "scores": {"containment": result}, "closed_book_scores": {"containment": base}}


def test_reasons_follow_what_the_answers_missed() -> None:
    # Retrieval found the answer for 4 of 40 questions: the run-wide rule names config.k first.
    records = [_record(n, base=0.0, result=float(n <= 4), in_passages=n <= 4, retrieved=n <= 4)
               for n in range(1, 41)]
    missed = rag_bake_off(records, citation_rate=1.0, model_params=135_000_000, settings=SETTINGS)
    assert missed is not None and missed.facts.retrieval_recall == pytest.approx(4 / 40)
    assert missed.bake.verdict == "not_better" and missed.bake.reasons[0].setting == "config.k"
    assert "retrieval found the answer's passage for only 10% of the questions" in missed.bake.sentence
    # The passages held the answer every time but the generator's own answers missed it.
    unused = [_record(n, base=float(n % 5 == 0), result=float(n % 5 == 0)) for n in range(1, 41)]
    small = rag_bake_off(unused, citation_rate=0.9, model_params=135_000_000, settings=SETTINGS)
    assert small is not None and small.bake.reasons[0].code == "generator_too_small"
    assert "the 135M-parameter generator is too small to use the retrieved passages" in small.bake.sentence
    assert small.bake.reasons[0].setting == "model"
    # Refusals by the relevance threshold point at config.min_relevance.
    refused = [_record(n, base=1.0, result=0.0, answered=False, in_passages=False, retrieved=False)
               for n in range(1, 41)]
    worse = rag_bake_off(refused, citation_rate=1.0, model_params=2_000_000_000, settings=SETTINGS)
    assert worse is not None and worse.bake.verdict == "worse"
    assert [r.code for r in worse.bake.reasons][:2] == ["retrieval_misses", "refused"]
    assert "config.min_relevance" in [r.setting for r in worse.bake.reasons]
    # Nothing missed, nothing gained: the model already knew the answers.
    known = rag_bake_off([_record(n, base=1.0, result=1.0) for n in range(1, 41)], citation_rate=1.0,
                         model_params=2_000_000_000, settings=SETTINGS)
    assert known is not None and [r.code for r in known.bake.reasons] == ["already_known"]
    # Few questions and a gain that does not reach significance: add questions, not a bigger k.
    few = rag_bake_off([_record(n, base=0.0, result=float(n < 3)) for n in range(1, 6)], citation_rate=1.0,
                       model_params=2_000_000_000, settings=SETTINGS)
    assert few is not None and few.bake.reasons[0].setting == "config.questions"
    assert rag_bake_off([], citation_rate=None, model_params=None, settings=SETTINGS) is None
