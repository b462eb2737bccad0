"""The markdown report of a RAG run: the bake-off first, then index, retrieval per mode, answers with vs without
retrieval, and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RETRIEVAL_EXPLAINED = (
    "recall@k: share of answerable questions whose gold document is among the top k chunks; MRR: mean "
    "of 1/rank of the first chunk from the gold document (0 when it is not in the top {depth})."
)
ANSWERS_EXPLAINED = (
    "containment: the reference answer appears word for word in the model's answer (after lower-casing "
    "and removing punctuation); token recall / F1: overlap of words with the reference."
)
FLAGS_EXPLAINED = (
    "citation_rate: answerable questions whose answer cites at least one passage validly (a passage that was "
    "given and holds the answer's words); gold_citation_rate: a valid citation of the gold document; "
    "extractive_share: answers made of sentences quoted from the passages because the model's own answer had no "
    "valid citation; gold_retrieved: the gold document was among the passages given; abstain_unanswerable: "
    "questions the documents do not answer that got \"the documents do not contain the answer\"; "
    "abstain_answerable: answerable questions wrongly refused."
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines


def render_report(*, plan_summary: Mapping[str, Any], index_summary: Mapping[str, Any],
                  retrieval: Mapping[str, Mapping[str, float]], cutoffs: Sequence[int],
                  answers: Mapping[str, Mapping[str, float]] | None, samples: Sequence[Mapping[str, Any]],
                  wall_s: float, diagnosis: str | None = None, bakeoff: str = "") -> str:
    """The report; ``bakeoff`` (the bake-off section, or why there is none) comes first."""
    lines = ["# RAG run report", ""]
    if bakeoff:
        lines += [bakeoff.rstrip(), ""]
    lines += ["## Plan", ""]
    lines += [f"- {key}: {value}" for key, value in plan_summary.items()]
    lines += ["", "## Index", ""]
    lines += [f"- {key}: {value}" for key, value in index_summary.items()]
    if retrieval:
        lines += ["", "## Retrieval", "", RETRIEVAL_EXPLAINED.format(depth=max(cutoffs)), ""]
        header = ["mode", *(f"recall@{k}" for k in cutoffs), "MRR", "median latency (ms)", "questions"]
        rows = [[mode, *(scores.get(f"recall@{k}", 0.0) for k in cutoffs), scores.get("mrr", 0.0),
                 scores.get("median_latency_ms", 0.0), int(scores.get("questions", 0))]
                for mode, scores in retrieval.items()]
        lines += _table(header, rows)
    if answers:
        lines += ["", "## Answers with and without retrieval", "", ANSWERS_EXPLAINED, ""]
        names = sorted({name for scores in answers.values() for name in scores})
        lines += _table(["metric", *answers], [[name, *(answers[c].get(name, "–") for c in answers)]
                                              for name in names])
        lines += ["", FLAGS_EXPLAINED]
        if diagnosis:
            lines += ["", f"**Why retrieval did not help:** {diagnosis}"]
    if samples:
        lines += ["", "## Sample answers", ""]
        for sample in samples:
            lines += [f"**Q:** {sample['question']}  ", f"**reference:** {sample.get('reference')}  ",
                      f"**without retrieval:** {sample.get('closed_book', '')}  ",
                      f"**with retrieval{' (extractive)' if sample.get('extractive') else ''}:** "
                      f"{sample.get('answer', '')}  "]
            if sample.get("generated") is not None:
                lines.append(f"**model's own answer, not used ({sample.get('citation_problem')}):** "
                             f"{sample['generated']}  ")
            elif sample.get("citation_problem") and sample.get("answered", True):
                lines.append(f"**citations not valid:** {sample['citation_problem']}  ")
            for passage in sample.get("passages", []):
                cited = " (cited)" if passage.get("cited") else ""
                lines.append(f"  - [{passage['number']}] {passage['source']} chunk {passage['chunk_id']}{cited}")
            lines.append("")
    lines += ["", f"Wall time: {wall_s:.1f} s", ""]
    return "\n".join(lines)
