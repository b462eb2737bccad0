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
