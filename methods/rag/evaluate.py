"""Evaluation of retrieval (recall@k, MRR, latency) and answers (with vs without retrieval).

A question set is a jsonl file, one ``{"question", "source", "answer"}`` per line: ``source`` is the
gold document (a file name or a path that ends an index source key, e.g. ``assert.txt`` for
``python_docs/assert.txt``) and ``answer`` a short reference answer. ``source`` and ``answer`` may both
be null for questions the documents do not answer; those measure whether the system says so.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.redaction import redact_data

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


class QuestionSetError(TunewiseError):
    """A question file that cannot be read; the message names file and line."""


@dataclass(frozen=True)
class Question:
    question: str
    source: str | None
    """Gold document, or None when the documents do not answer it."""
    answer: str | None
    where: str = ""

    @property
    def answerable(self) -> bool:
        return self.source is not None


def load_questions(path: str | Path) -> list[Question]:
    """Questions from a jsonl file; every bad line is reported with its number."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise QuestionSetError(f"{path}: no such question file")
    from tunewise.plugins.bounded_load import InputError, load_json, read_lines

    questions: list[Question] = []
    problems: list[str] = []
    for line in read_lines(path):  # bounded lines; not UTF-8 or too long is named by line
        where = f"{path}:{line.number}"
        if line.problem:
            problems.append(f"{where}: {line.problem}")
            continue
        if not line.text.strip():
            continue
        try:
            record = load_json(line.text, str(path), line.number)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if not isinstance(record, dict) or not isinstance(record.get("question"), str) or not record["question"].strip():
            problems.append(f"{where}: needs a non-empty string field 'question'")
            continue
        source, answer = record.get("source"), record.get("answer")
        if source is not None and not isinstance(source, str):
            problems.append(f"{where}: 'source' must be a file name or null")
            continue
        if answer is not None and not isinstance(answer, str):
            problems.append(f"{where}: 'answer' must be a string or null")
            continue
        questions.append(Question(record["question"].strip(), source, answer, where))
    if problems:
        raise QuestionSetError("\n".join(problems[:20]))
    if not questions:
        raise QuestionSetError(f"{path}: no questions")
    return questions


def source_matches(key: str, gold: str) -> bool:
    """Whether an index source key (``folder/file.txt`` or ``file.jsonl:12``) is the gold document."""
    file_key = key.rsplit(":", 1)[0] if re.search(r":\d+$", key) else key
    gold = gold.replace("\\", "/").removeprefix("./")
    return gold in (key, file_key) or key.endswith("/" + gold) or file_key.endswith("/" + gold)


def first_relevant_rank(sources: Sequence[str], gold: str) -> int | None:
    """1-based rank of the first result from the gold document, or None."""
    return next((rank for rank, key in enumerate(sources, start=1) if source_matches(key, gold)), None)


def retrieval_scores(ranks: Sequence[int | None], cutoffs: Sequence[int]) -> dict[str, float]:
    """recall@k for each cut-off (share of questions whose gold document is in the top k) and MRR."""
    if not ranks:
        return {}
    scores = {f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / len(ranks) for k in cutoffs}
    scores["mrr"] = sum(1.0 / r for r in ranks if r is not None) / len(ranks)
    return scores


def evaluate_retrieval(search: Callable[[str, int], Sequence[str]], questions: Sequence[Question],
                       cutoffs: Sequence[int]) -> dict[str, float]:
    """Scores and median latency of ``search(query, k) -> source keys`` over the answerable questions.

    MRR counts ranks up to the largest cut-off (MRR@max k).
    """
    depth = max(cutoffs)
    ranks: list[int | None] = []
    latencies: list[float] = []
    for question in questions:
        if question.source is None:
            continue
        started = time.perf_counter()
        sources = search(question.question, depth)
        latencies.append(time.perf_counter() - started)
        ranks.append(first_relevant_rank(sources, question.source))
    scores = retrieval_scores(ranks, cutoffs)
    if latencies:
        scores["median_latency_ms"] = statistics.median(latencies) * 1000
    scores["questions"] = float(len(ranks))
    return scores


def normalize(text: str) -> str:
    """Lower case, punctuation and quotes removed, whitespace collapsed (SQuAD-style)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def answer_scores(prediction: str, reference: str) -> dict[str, float]:
    """containment (the whole reference appears), token recall and token F1 against the reference."""
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not ref:
        return {"containment": 0.0, "token_recall": 0.0, "token_f1": 0.0}
    contained = float(f" {' '.join(ref)} " in f" {' '.join(pred)} ")
    remaining = list(pred)
    common = 0
    for token in ref:
        if token in remaining:
            remaining.remove(token)
            common += 1
    recall = common / len(ref)
    precision = common / len(pred) if pred else 0.0
    f1 = 2 * precision * recall / (precision + recall) if common else 0.0
    return {"containment": contained, "token_recall": recall, "token_f1": f1}


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(redact_data(value), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- answers with and without retrieval ----------------------------------------------------------

@dataclass
class AnswerEvaluation:
    """Mean scores per condition, one record per question, and why retrieval did not help (None if it did)."""

    scores: dict[str, dict[str, float]]
    records: list[dict[str, Any]]
    diagnosis: str | None


def answer_record(question: Question, rag: Any, closed: Any | None) -> dict[str, Any]:
    """One question's answers (an ``Answer`` with retrieval, one without or None) as a JSON record.

    Besides the answer itself: ``valid_citation``, whether the gold document was among the passages
    given (``gold_retrieved``) and whether the reference answer appears in them word for word
    (``reference_in_passages``), which together say why an answer missed.
    """
    record: dict[str, Any] = {"where": question.where, "question": question.question, "gold_source": question.source,
                              "reference": question.answer, **rag.to_json(),
                              "valid_citation": rag.has_valid_citation}
    if question.source is not None:
        record["gold_retrieved"] = any(source_matches(p.source, question.source) for p in rag.passages)
        record["reference_in_passages"] = question.answer is not None and any(
            answer_scores(p.text, question.answer)["containment"] for p in rag.passages)
    if closed is not None and question.answer is not None:
        record["closed_book"] = closed.text
        record["scores"] = answer_scores(rag.text, question.answer)
        record["closed_book_scores"] = answer_scores(closed.text, question.answer)
    return record


def summarize_answers(records: Sequence[dict[str, Any]]) -> tuple[dict[str, dict[str, float]], str | None]:
    """Mean scores with and without retrieval over ``records`` (from :func:`answer_record`), and the diagnosis.

    With retrieval, over the answerable questions: ``citation_rate`` (answers with at least one valid
    citation), ``gold_citation_rate`` (a valid citation of the gold document), ``extractive_share``,
    ``gold_retrieved`` (gold document among the passages given) and ``abstain_answerable`` (wrongly
    refused); over the others ``abstain_unanswerable`` (rightly refused). Containment, token recall
    and F1 in both conditions over the questions with a reference answer.
    """
    answerable = [r for r in records if r.get("gold_source") is not None]
    scored = [r for r in answerable if "scores" in r]
    unanswerable = [r for r in records if r.get("gold_source") is None]
    flags = [{
        "citation_rate": float(bool(r["valid_citation"])),
        "gold_citation_rate": float(bool(r["valid_citation"]) and any(
            source_matches(c["source"], r["gold_source"]) for c in r["citations"])),
        "extractive_share": float(bool(r.get("extractive"))),
        "gold_retrieved": float(bool(r.get("gold_retrieved"))),
        "abstain_answerable": float(not r["answered"]),
    } for r in answerable]
    with_retrieval = {**mean_scores([r["scores"] for r in scored]), **mean_scores(flags)}
    if unanswerable:
        with_retrieval["abstain_unanswerable"] = sum(not r["answered"] for r in unanswerable) / len(unanswerable)
    scores = {"with retrieval": with_retrieval,
              "without retrieval": mean_scores([r["closed_book_scores"] for r in scored])}
    return scores, diagnose(scored)


def diagnose(scored: Sequence[dict[str, Any]]) -> str | None:
    """Why answers with retrieval do not contain the reference more often than closed-book ones (None if they do).

    Each answer that misses the reference is put down to the generator (the reference was in the
    passages given), chunking (the gold document came back, but not the chunk that holds the
    reference) or retrieval (the gold document was not in the top k).
    """
    if not scored:
        return None
    rag = sum(r["scores"]["containment"] for r in scored) / len(scored)
    closed = sum(r["closed_book_scores"]["containment"] for r in scored) / len(scored)
    if rag > closed:
        return None
    misses = [r for r in scored if r["scores"]["containment"] < 1]
    unused = [r for r in misses if r.get("reference_in_passages")]
    generated = sum(1 for r in unused if not r.get("extractive"))
    quoted = len(unused) - generated
    chunking = sum(1 for r in misses if r.get("gold_retrieved") and not r.get("reference_in_passages"))
    not_retrieved = len(misses) - len(unused) - chunking
    parts = []
    if generated:
        parts.append(f"{generated} had it word for word in the passages given, but the model's answer did not "
                     "use it (the generator fails to use the passages; answer_mode: auto or extractive quotes "
                     "them instead)")
    if quoted:
        parts.append(f"{quoted} had it in the passages given, but the extractive answer quoted other sentences")
    if chunking:
        parts.append(f"{chunking} retrieved the gold document but not the chunk with the answer: try smaller "
                     "chunk_tokens or a larger k")
    if not_retrieved:
        parts.append(f"{not_retrieved} did not retrieve the gold document in the top k: raise k or try another "
                     "mode; if the answer is worded unlike the question, smaller chunks help too")
    why = "; ".join(parts) if parts else "every answer missed it in both conditions alike"
    return (f"Retrieval did not beat closed-book answers (containment {rag:.2f} with vs {closed:.2f} without, "
            f"{len(scored)} questions). Of the {len(misses)} answers with retrieval that lack the reference, "
            f"{why}.")


def evaluate_answers(answerer: Any, index: Any, questions: Sequence[Question], *, k: int, mode: str,
                     min_relevance: float, answer_mode: str = "auto",
                     log: Callable[[str], None] | None = None,
                     phase: Callable[[str, int, int], None] | None = None) -> AnswerEvaluation:
    """Answer every question with retrieval and (those with a reference answer) without; score and diagnose.

    Closed-book answers come first (phase ``answering without retrieval``), then answers with retrieval
    (``answering with retrieval``); generations are batched, and ``phase(name, done, total)`` and ``log``
    hear about each batch.
    """
    closed_for = [q for q in questions if q.answerable and q.answer is not None]

    def tell(name: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if phase is not None:
                phase(name, done, total)
            if log is not None:
                log(f"{name}: {done}/{total} questions")

        return report

    tell("answering without retrieval")(0, len(closed_for))
    closed_answers = answerer.answer_closed_book_many([q.question for q in closed_for],
                                                      progress=tell("answering without retrieval"))
    closed = {id(q): a for q, a in zip(closed_for, closed_answers, strict=True)}
    tell("answering with retrieval")(0, len(questions))
    rag_answers = answerer.answer_many(index, [q.question for q in questions], k=k, mode=mode,
                                       min_relevance=min_relevance, answer_mode=answer_mode,
                                       progress=None if phase is None and log is None else
                                       _scaled(tell("answering with retrieval"), len(questions)))
    records = [answer_record(q, rag, closed.get(id(q))) for q, rag in zip(questions, rag_answers, strict=True)]
    if phase is not None:
        phase("answering with retrieval", len(questions), len(questions))
    scores, diagnosis = summarize_answers(records)
    return AnswerEvaluation(scores, records, diagnosis)


def _scaled(report: Callable[[int, int], None], questions: int) -> Callable[[int, int], None]:
    """Progress of the generations (only questions that reach the model) as progress over every question."""
    def scaled(done: int, total: int) -> None:
        report(min(questions, round(done * questions / max(total, 1))) if done < total else questions, questions)

    return scaled
