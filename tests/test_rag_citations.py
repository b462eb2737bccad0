"""Answers always cite: extractive fallback, citation checks, answer modes and the with/without evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import run_cli
from tunewise.methods.rag.answer import (
    NO_ANSWER,
    Answer,
    Answerer,
    Citation,
    answer_from_reply,
    citation_problem,
    parse_citations,
)
from tunewise.methods.rag.config import RagConfig
from tunewise.methods.rag.evaluate import (
    Question,
    answer_record,
    diagnose,
    evaluate_answers,
    normalize,
    summarize_answers,
)
from tunewise.methods.rag.extractive import MAX_CHARS, Quote, pick_sentences, split_sentences
from tunewise.methods.rag.index import RagIndex, build_index

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
# question -> (gold file, words the best sentences must hold)
QUESTIONS = {
    "What is magma called when it reaches the surface?": ("volcano.txt", "called lava"),
    "How long should bread dough rise?": ("bread.md", "two hours"),
    "What happens to a pawn that reaches the last rank?": ("chess.txt", "promoted"),
    "Where are most volcanoes found?": ("volcano.txt", "tectonic plates"),
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RagIndex:
    root = tmp_path_factory.mktemp("citations")
    docs = root / "kb"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    # Small overlapping chunks: passages start and end mid-sentence and repeat each other's sentences.
    built, _ = build_index([docs], root / "index", chunk_tokens=32, overlap_tokens=8)
    return built


@pytest.fixture(scope="module")
def answerer(tiny_model_dir: Path) -> Answerer:
    return Answerer(str(tiny_model_dir), max_new_tokens=8, max_context_tokens=400)


def _passages(index: RagIndex, answerer: Answerer, question: str) -> tuple[Any, tuple[Citation, ...]]:
    vector = index.embedder.encode_query(question)
    _, passages = answerer.context_messages(question, index.search(question, k=3, query_vector=vector))
    return vector, passages


def _assert_quotes_hold(index: RagIndex, answer: Answer) -> None:
    """Every citation names a passage given, and that passage's chunk holds the quoted sentence."""
    assert answer.extractive and answer.quotes and answer.has_valid_citation
    assert 1 <= len(answer.quotes) <= 3 and len(answer.text) <= MAX_CHARS + 8 * len(answer.quotes)
    chunks = {(c.source, c.chunk_id): c.text for c in index.chunks.values()}
    by_number = {p.number: p for p in answer.passages}
    for quote in answer.quotes:
        assert quote.number in by_number and quote.number in answer.cited
        passage = by_number[quote.number]
        assert " ".join(quote.text.split()) in " ".join(chunks[(passage.source, passage.chunk_id)].split())
        assert f"{quote.text} [{quote.number}]" in answer.text
    cited, unknown = parse_citations(answer.text, len(answer.passages))
    assert set(cited) == set(answer.cited) and unknown == ()


def test_split_sentences_leaves_out_headings_rules_and_fragments() -> None:
    text = "Volcanoes\n=========\n\nA volcano is a rupture.\nLava escapes\nthrough it! Short bit.\n\n# Notes\n---\n"
    assert split_sentences(text, title="Volcanoes") == ["A volcano is a rupture.", "Lava escapes through it!"]
    assert split_sentences("## Baking\nBake until the crust is brown.") == ["Bake until the crust is brown."]


def test_split_sentences_keeps_what_a_sentence_introduces() -> None:
    # A term before its indented definition, and "is equivalent to" before code, stay with what follows.
    text = ("str.strip([chars])\n\n   Return a copy of the string. It is new.\n\nThe form is equivalent to\n\n"
            "   if not x: raise AssertionError\n\nIt runs in two steps: 1. find a module, e.g. a file.\n")
    assert split_sentences(text) == [
        "str.strip([chars]) Return a copy of the string.", "It is new.",
        "The form is equivalent to if not x: raise AssertionError",
        "It runs in two steps: 1. find a module, e.g. a file.",
    ]
    # An unfinished sentence before a paragraph that is not more indented is left as it is.
    assert split_sentences("A line without an end\n\nAnother paragraph here.") == [
        "A line without an end", "Another paragraph here."]
    assert split_sentences("Steps are these:\n\nfirst open the file.") == ["Steps are these: first open the file."]
    # Scripts without spaces between words or after a full stop.
    assert split_sentences("火山は地殻の裂け目です。溶岩が流れ出ます！短い") == ["火山は地殻の裂け目です。", "溶岩が流れ出ます！"]


def test_pick_sentences_prefers_whole_sentences_within_the_budget(index: RagIndex) -> None:
    question = "How long should bread dough rise?"
    vector = index.embedder.encode_query(question)
    cut = (1, "Let the dough rise for about", "")  # a chunk boundary cut this copy short
    whole = (2, "Bread dough needs flour. Let the dough rise for about two hours.", "")
    quotes = pick_sentences(question, vector, [cut, whole], index.embedder.encode)
    assert quotes[0] == Quote(2, "Let the dough rise for about two hours.")
    assert all(q.text != "Let the dough rise for about" for q in quotes)
    # A sentence the chunk boundary cut off is not added as an extra quote; whole, the same words are.
    whole_end = (1, "Let the dough rise for about two hours. The dough should rise in a warm place.", "")
    cut_end = (1, "Let the dough rise for about two hours. The dough should rise in a warm", "")
    assert Quote(1, "The dough should rise in a warm place.") in pick_sentences(question, vector, [whole_end],
                                                                               index.embedder.encode)
    assert [q.text for q in pick_sentences(question, vector, [cut_end], index.embedder.encode)] == [
        "Let the dough rise for about two hours."]
    long = "Let the dough rise " + "and rest quietly " * 60 + "for two hours."
    (quote,) = pick_sentences(question, vector, [(1, long, "")], index.embedder.encode)
    assert len(quote.text) <= MAX_CHARS and long.startswith(quote.text)


def test_extractive_answers_quote_the_passages_they_cite(index: RagIndex, answerer: Answerer) -> None:
    for question, (gold, fact) in QUESTIONS.items():
        answer = answerer.answer(index, question, k=3, min_relevance=0.0, answer_mode="extractive")
        _assert_quotes_hold(index, answer)
        assert answer.prompt_tokens == 0 and answer.generated is None  # nothing was generated
        assert fact in answer.text, (question, answer.text)
        assert any(c.source == f"kb/{gold}" for c in answer.citations)
        payload = answer.to_json()
        assert payload["extractive"] is True and payload["quotes"][0]["number"] == answer.quotes[0].number


def test_citation_problems_name_what_is_wrong(index: RagIndex, answerer: Answerer) -> None:
    _, passages = _passages(index, answerer, "What is magma called when it reaches the surface?")
    assert len(passages) == 3
    assert "[7]" in (citation_problem("Magma is called lava [7].", passages) or "")
    assert "[1]-[3]" in (citation_problem("Magma is called lava [1] [7].", passages) or "")
    assert "no [n] citation markers" in (citation_problem("Magma is called lava.", passages) or "")
    assert "no answer" in (citation_problem("[1]", passages) or "")
    assert "of its words" in (citation_problem("Penguins prefer cold oceans [1].", passages) or "")
    lava = next(p.number for p in passages if "called lava" in p.text)
    assert citation_problem(f"Magma that reaches the surface is called lava [{lava}].", passages) is None


@pytest.mark.parametrize("reply", ["Magma is called lava [7].", "Magma is called lava.", "[2]",
                                   "Penguins prefer cold oceans [1]."])
def test_replies_without_valid_citations_fall_back_to_quotes(index: RagIndex, answerer: Answerer,
                                                             reply: str) -> None:
    question = "What is magma called when it reaches the surface?"
    vector, passages = _passages(index, answerer, question)
    answer = answer_from_reply(index, question, vector, passages, reply, answer_mode="auto")
    _assert_quotes_hold(index, answer)
    assert answer.generated == reply and answer.citation_problem == citation_problem(reply, passages)
    assert "called lava" in answer.text
    assert "(extractive: sentences quoted from the passages" in answer.render()


def test_passages_without_sentences_are_still_quoted_and_cited(index: RagIndex) -> None:
    question = "What is magma called when it reaches the surface?"
    passages = (Citation(1, "kb/table.txt", 0, "", "x | y\n--|--\n1 | 2"),
                Citation(2, "kb/ops.txt", 0, "", "+ - * /"))
    answer = answer_from_reply(index, question, index.embedder.encode_query(question), passages, "no idea")
    assert answer.extractive and answer.cited == (1,) and answer.text == "x | y --|-- 1 | 2 [1]"


def test_valid_replies_and_refusals_are_kept(index: RagIndex, answerer: Answerer) -> None:
    question = "What is magma called when it reaches the surface?"
    vector, passages = _passages(index, answerer, question)
    lava = next(p.number for p in passages if "called lava" in p.text)
    reply = f"It is called lava [{lava}]."
    kept = answer_from_reply(index, question, vector, passages, reply, answer_mode="auto")
    assert kept.text == reply and not kept.extractive and kept.cited == (lava,) and kept.has_valid_citation
    refusal = answer_from_reply(index, question, vector, passages, NO_ANSWER, answer_mode="auto")
    assert refusal.text == NO_ANSWER and not refusal.answered and not refusal.extractive
    assert not refusal.has_valid_citation and refusal.citation_problem is None


def test_generate_mode_keeps_the_reply_and_reports_the_failure(index: RagIndex, answerer: Answerer) -> None:
    question = "What is magma called when it reaches the surface?"
    vector, passages = _passages(index, answerer, question)
    answer = answer_from_reply(index, question, vector, passages, "Magma is called lava [7].",
                               answer_mode="generate")
    assert answer.text == "Magma is called lava [7]." and not answer.extractive and answer.generated is None
    assert answer.unknown_citations == (7,) and not answer.has_valid_citation
    assert "[7]" in (answer.citation_problem or "") and "(not verified: it cites [7]" in answer.render()
    # The random model's own reply, kept as written, judged by the same check.
    raw = answerer.answer(index, question, k=3, min_relevance=0.0, answer_mode="generate")
    assert not raw.extractive and raw.prompt_tokens > 0
    assert raw.citation_problem == citation_problem(raw.text, raw.passages)
    assert raw.has_valid_citation == (raw.citation_problem is None and bool(raw.cited))


def test_random_model_reply_falls_back_in_auto_mode(index: RagIndex, answerer: Answerer) -> None:
    for question in QUESTIONS:
        answer = answerer.answer(index, question, k=3, min_relevance=0.0)
        # A 2-layer random model writes junk: its reply fails the check and is kept only as `generated`.
        assert answer.generated is not None and answer.citation_problem is not None, answer.text
        assert answer.prompt_tokens > 0
        _assert_quotes_hold(index, answer)


def _record(question: str, gold: str | None, answer: str, closed: str | None, *, valid: bool = True,
            extractive: bool = False, retrieved: bool = True, in_passages: bool = True,
            answered: bool = True) -> dict[str, Any]:
    record: dict[str, Any] = {"question": question, "gold_source": gold, "reference": "lava", "answer": answer,
                              "answered": answered, "extractive": extractive, "valid_citation": valid,
                              "citations": [{"number": 1, "source": f"kb/{gold}", "chunk_id": 0}] if valid else [],
                              "gold_retrieved": retrieved, "reference_in_passages": in_passages}
    if closed is not None:
        record["closed_book"] = closed
        record["scores"] = {"containment": float(normalize("lava") in normalize(answer)), "token_recall": 0.0,
                            "token_f1": 0.0}
        record["closed_book_scores"] = {"containment": float(normalize("lava") in normalize(closed)),
                                        "token_recall": 0.0, "token_f1": 0.0}
    return record


def test_summary_reports_citations_extractive_share_and_containment() -> None:
    records = [
        _record("q1", "volcano.txt", "It is lava [1]", "rock", extractive=True),
        _record("q2", "volcano.txt", "lava [1]", "lava"),
        _record("q3", "volcano.txt", "magma", "fire", valid=False),
        _record("q4", "volcano.txt", "ash [1]", "no idea", extractive=True),
        _record("q5", None, NO_ANSWER, None, valid=False, answered=False),
    ]
    scores, diagnosis = summarize_answers(records)
    rag, closed = scores["with retrieval"], scores["without retrieval"]
    assert rag["citation_rate"] == 0.75 and rag["gold_citation_rate"] == 0.75 and rag["extractive_share"] == 0.5
    assert rag["containment"] == 0.5 and closed["containment"] == 0.25
    assert rag["abstain_unanswerable"] == 1.0 and rag["abstain_answerable"] == 0.0
    assert diagnosis is None  # retrieval helped: nothing to explain


def test_diagnosis_says_why_retrieval_did_not_help() -> None:
    records = [
        _record("q1", "a.txt", "magma [1]", "lava", in_passages=True),  # generator ignored the passage
        _record("q2", "a.txt", "ash [1]", "lava", extractive=True, in_passages=True),  # quoted the wrong sentence
        _record("q3", "a.txt", "rock [1]", "rock", retrieved=True, in_passages=False),  # chunking
        _record("q4", "a.txt", "stone [1]", "stone", retrieved=False, in_passages=False),  # retrieval
        _record("q5", "a.txt", "stone [1]", "sand", retrieved=False, in_passages=False),
    ]
    scored = [r for r in records if "scores" in r]
    text = diagnose(scored) or ""
    assert "containment 0.00 with vs 0.40 without, 5 questions" in text
    assert "1 had it word for word in the passages given, but the model's answer did not use it" in text
    assert "1 had it in the passages given, but the extractive answer quoted other sentences" in text
    assert "1 retrieved the gold document but not the chunk with the answer" in text
    assert "2 did not retrieve the gold document in the top k" in text


def test_answer_record_checks_the_passages_given() -> None:
    passages = (Citation(1, "kb/volcano.txt", 2, "Volcanoes", "Magma that reaches the surface is called Lava."),
                Citation(2, "kb/chess.txt", 0, "Chess", "The king moves one square."))
    answer = Answer("q", "Magma ... is called lava [1]", passages, cited=(1,))
    question = Question("What is magma called at the surface?", "volcano.txt", "lava")
    record = answer_record(question, answer, Answer("q", "Lava!", ()))
    assert record["gold_retrieved"] and record["reference_in_passages"] and record["valid_citation"]
    assert record["scores"]["containment"] == 1.0 and record["closed_book_scores"]["containment"] == 1.0
    elsewhere = answer_record(Question("q", "bread.md", "yeast"), answer, Answer("q", "", ()))
    assert not elsewhere["gold_retrieved"] and not elsewhere["reference_in_passages"]
    assert json.loads(json.dumps(record)) == record  # records go to answers.jsonl as they are


def test_evaluation_with_a_random_generator_cites_and_beats_closed_book(index: RagIndex,
                                                                       answerer: Answerer) -> None:
    questions = [Question(q, gold, fact) for q, (gold, fact) in QUESTIONS.items()]
    questions.append(Question("Who won the football world cup in 1998?", None, None))
    evaluation = evaluate_answers(answerer, index, questions, k=3, mode="hybrid", min_relevance=0.3)
    rag, closed = evaluation.scores["with retrieval"], evaluation.scores["without retrieval"]
    assert rag["citation_rate"] == 1.0 and rag["extractive_share"] == 1.0 and rag["gold_retrieved"] == 1.0
    assert rag["containment"] == 1.0 and closed["containment"] < rag["containment"]
    assert rag["abstain_unanswerable"] == 1.0 and evaluation.diagnosis is None
    assert [r["extractive"] for r in evaluation.records] == [True] * 4 + [False]
    generate = evaluate_answers(answerer, index, questions[:2], k=3, mode="hybrid", min_relevance=0.3,
                                answer_mode="generate")
    flags = [r["valid_citation"] for r in generate.records]
    assert generate.scores["with retrieval"]["citation_rate"] == sum(flags) / len(flags)
    assert generate.scores["with retrieval"]["extractive_share"] == 0.0


def test_answer_mode_is_checked() -> None:
    assert RagConfig(answer_mode="extractive").problems() == []
    problems = dict(RagConfig(answer_mode="quote").problems())  # type: ignore[arg-type]
    assert "'quote' is not one of auto, generate, extractive" in problems["answer_mode"]


def test_cli_ask_marks_extractive_answers(index: RagIndex, tiny_model_dir: Path) -> None:
    proc = run_cli("rag", "ask", "--index", str(index.folder), "How long should bread dough rise?", "--model",
                   str(tiny_model_dir), "--max-new-tokens", "4", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["extractive"] is True and answer["generated"] is not None and answer["citation_problem"]
    assert "two hours" in answer["answer"] and answer["citations"]
    numbers = {p["number"] for p in answer["passages"]}
    assert all(q["number"] in numbers and f"{q['text']} [{q['number']}]" in answer["answer"]
               for q in answer["quotes"])


def test_rag_run_reports_citations_extractive_answers_and_the_gain(tmp_path: Path, tiny_model_dir: Path) -> None:
    docs = tmp_path / "kb"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    rows = [{"question": q, "source": gold, "answer": fact} for q, (gold, fact) in QUESTIONS.items()]
    rows.append({"question": "Who won the football world cup in 1998?", "source": None, "answer": None})
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "plan.yaml").write_text(
        f"method: rag\nmodel: {tiny_model_dir}\ndata: kb\noutput_dir: out\nconfig:\n  questions: questions.jsonl\n"
        "  chunk_tokens: 32\n  overlap_tokens: 8\n  recall_at: [1, 3]\n  max_new_tokens: 4\n", encoding="utf-8")
    proc = run_cli("run", "plan.yaml", "--quiet", "--allow-outside-paths", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    rag, closed = metrics["answers"]["with retrieval"], metrics["answers"]["without retrieval"]
    assert rag["citation_rate"] == 1.0 and rag["extractive_share"] == 1.0
    assert rag["containment"] > closed["containment"] and metrics["answer_diagnosis"] is None
    records = [json.loads(line) for line in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    assert [r["extractive"] for r in records] == [True] * 4 + [False]  # the unrelated question is refused
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**with retrieval (extractive):**" in report and "extractive_share" in report
    assert "model's own answer, not used" in report
