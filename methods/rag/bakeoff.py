"""The RAG bake-off: the generator answering without retrieval (base) vs with retrieval and citations (result).

Every question of the question file with a reference answer is answered both ways and scored by
containment (1 when the whole reference appears in the answer). Questions without a reference (the
documents do not answer them) cannot be scored that way; they measure refusals instead
(``abstain_unanswerable``) and stay out of the bake-off. What the run saw goes into
:class:`~tunewise.plugins.bakeoff.RunFacts` — citation rate, retrieval recall (share of questions whose
passages held the reference), the generator's size — and each answer that missed is put down to one
cause (refused, not retrieved, wrong chunk, passages not used, other sentences quoted), so a result
that is not better names the likeliest cause and the setting to change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.plugins.bakeoff import (
    MIN_EVAL_EXAMPLES,
    SMALL_GENERATOR,
    BakeOff,
    Reason,
    RunFacts,
    bake_off,
    likely_reasons,
)
from tunewise.plugins.bakeoff_report import ExampleOutcome

METHOD = "RAG"
UNIT = "questions"


@dataclass(frozen=True)
class RagBakeOff:
    """The bake-off, each question's evidence, and the facts its reasons came from."""

    bake: BakeOff
    examples: tuple[ExampleOutcome, ...]
    facts: RunFacts
    left_out: int
    """Questions without a reference answer (not scored by containment)."""

    def metrics(self) -> dict[str, Any]:
        """What goes into ``metrics.json`` beside the bake-off."""
        return {"citation_rate": self.facts.citation_rate, "retrieval_recall": self.facts.retrieval_recall,
                "questions_scored": len(self.examples), "questions_without_answer": self.left_out,
                "run_facts": dataclasses.asdict(self.facts)}


def _params(n: int) -> str:
    return f"{n / 1e9:.1f}B-parameter" if n >= 1e9 else f"{n / 1e6:.0f}M-parameter"


def _miss_cause(record: Mapping[str, Any]) -> str:
    """Why an answer with retrieval lacks the reference (one cause per answer)."""
    if not record.get("answered", True):
        return "refused"
    if record.get("reference_in_passages"):
        return "quoted_other" if record.get("extractive") else "passages_unused"
    return "wrong_chunk" if record.get("gold_retrieved") else "not_retrieved"


def miss_reasons(scored: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                 model_params: int | None) -> list[Reason]:
    """One reason per cause of the answers with retrieval that missed the reference, most frequent first."""
    n = len(scored)
    misses = [r for r in scored if r["scores"]["containment"] < 1]
    counts: dict[str, int] = {}
    for record in misses:
        cause = _miss_cause(record)
        counts[cause] = counts.get(cause, 0) + 1
    k, chunk, mode = settings.get("k"), settings.get("chunk_tokens"), settings.get("mode")
    found: list[tuple[int, Reason]] = []
    for cause, count in counts.items():
        share = f"{count} of the {n} questions"
        if cause == "refused":
            reason = Reason("refused", f"the relevance threshold (config.min_relevance "
                            f"{settings.get('min_relevance')}) refused to answer {share}", "config.min_relevance",
                            "lower config.min_relevance so answerable questions get passages")
        elif cause == "passages_unused":
            small = model_params is not None and model_params < SMALL_GENERATOR
            who = f"the {_params(model_params)} generator" if model_params else "the generator"
            reason = Reason("generator_too_small" if small else "passages_unused",
                            f"{who} {'is too small to use' if small else 'does not use'} the retrieved passages: "
                            f"its answers missed the reference on {share} although the passages held it", "model",
                            "use a larger instruction-tuned model (1B parameters or more), or set "
                            "config.answer_mode: extractive to quote the passages")
        elif cause == "quoted_other":
            reason = Reason("quoted_other", f"the extractive answers quoted other sentences than the one holding "
                            f"the reference on {share}", "config.chunk_tokens",
                            f"lower config.chunk_tokens (now {chunk}) so each passage is about one thing, or use a "
                            "larger generator (model) that answers from the passages itself")
        elif cause == "wrong_chunk":
            reason = Reason("wrong_chunk", f"retrieval found the right document but not the chunk holding the "
                            f"reference on {share}", "config.k",
                            f"raise config.k (now {k}) or lower config.chunk_tokens (now {chunk})")
        else:
            reason = Reason("retrieval_misses", f"retrieval missed the answer's document on {share}", "config.k",
                            f"raise config.k (now {k}) or try another config.mode (now {mode}: dense, bm25 or "
                            "hybrid)")
        found.append((count, reason))
    found.sort(key=lambda item: -item[0])  # stable: ties keep the order the causes were met
    return [reason for _, reason in found]


def rag_reasons(bake: BakeOff, facts: RunFacts, scored: Sequence[Mapping[str, Any]],
                settings: Mapping[str, Any]) -> list[Reason]:
    """Why RAG is not better, most likely first: too few questions to show a gain, the run-wide rules
    (retrieval recall, citation rate), then each cause of missed answers by how many it explains, then
    the generator's size; the model already knowing every answer when nothing missed."""
    general = likely_reasons(facts, bake)
    reasons: list[Reason] = []
    for reason in general:
        if reason.code == "few_eval_examples":
            reasons.append(Reason(reason.code, reason.reason, "config.questions",
                                  f"add questions with answers to config.questions (at least {MIN_EVAL_EXAMPLES})"))
        elif reason.code != "model_small":
            reasons.append(reason)
    codes = {r.code for r in reasons}
    reasons += [r for r in miss_reasons(scored, settings, facts.model_params) if r.code not in codes]
    codes = {r.code for r in reasons}
    if not any(r["scores"]["containment"] < 1 for r in scored) and scored:
        reasons.append(Reason("already_known", f"the model already answers all {len(scored)} questions without "
                              "retrieval, so retrieval has nothing to add", "config.questions",
                              "ask questions that only the documents answer (config.questions)"))
    if facts.model_params is not None and any(r.code == "model_small" for r in general) and \
            not codes & {"generator_too_small", "no_citations"}:
        reasons.append(Reason("model_small", f"the {_params(facts.model_params)} generator may be too small to "
                              "answer from the passages", "model", "use a larger instruction-tuned model"))
    return reasons


def rag_bake_off(records: Sequence[Mapping[str, Any]], *, citation_rate: float | None,
                 model_params: int | None, settings: Mapping[str, Any]) -> RagBakeOff | None:
    """The bake-off over the answered records (:func:`~tunewise.methods.rag.evaluate.answer_record`) that
    have a reference answer; None when none has one."""
    scored = [r for r in records if "scores" in r and "closed_book_scores" in r]
    if not scored:
        return None
    ids = [str(r.get("where") or f"question {n}") for n, r in enumerate(scored, start=1)]
    recall = sum(1 for r in scored if r.get("reference_in_passages")) / len(scored)
    facts = RunFacts(model_params=model_params, retrieval_used=True, citation_rate=citation_rate,
                     retrieval_recall=recall)
    bake = bake_off({i: r["closed_book_scores"]["containment"] for i, r in zip(ids, scored, strict=True)},
                    {i: r["scores"]["containment"] for i, r in zip(ids, scored, strict=True)}, "containment",
                    method=METHOD, unit=UNIT)
    if bake.verdict != "better":
        reasons = rag_reasons(bake, facts, scored, settings)
        if reasons:
            top = reasons[0]
            bake = dataclasses.replace(bake, reasons=tuple(reasons),
                                       sentence=f"{bake.sentence}. Most likely {top.reason}; {top.change}.")
    examples = tuple(ExampleOutcome(i, str(r["question"]), str(r.get("reference") or ""),
                                    str(r.get("closed_book") or ""), str(r.get("answer") or ""),
                                    float(r["closed_book_scores"]["containment"]), float(r["scores"]["containment"]))
                     for i, r in zip(ids, scored, strict=True))
    return RagBakeOff(bake, examples, facts, len(records) - len(scored))
