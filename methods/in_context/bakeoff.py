"""The in-context bake-off: the model answering zero-shot (base) vs with the selected examples (result).

Both answer every held-out example; a classification is compared by accuracy (with per-label counts
and confusions), free text by per-example ROUGE-L. When the examples do not help, the reasons say
which in-context setting to change (``config.prompt_token_budget``, ``config.shots``,
``config.system_prompt``, ``config.eval_fraction``) before blaming the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from tunewise.methods.in_context.evaluate import Outcome
from tunewise.methods.in_context.examples import Example
from tunewise.plugins.bakeoff import (
    MIN_EVAL_EXAMPLES,
    SMALL_MODEL,
    UNCHANGED_ANSWERS,
    BakeOff,
    Reason,
    bake_off,
    classification_bake_off,
)
from tunewise.plugins.bakeoff_report import ExampleOutcome, unique_ids
from tunewise.plugins.task_detection import DetectedTask, match_label

METHOD = "in-context learning"
OFF_FORMAT = 0.3
"""The answer format is the problem when at least 30 % of the answers with examples name no label."""


def example_ids(held_out: Sequence[Example]) -> list[str]:
    """``file:line`` of each held-out example; a row listed twice (the same file named twice) gets ``#2``."""
    return unique_ids([example.where or "example" for example in held_out])


def with_reasons(bake: BakeOff, reasons: Sequence[Reason]) -> BakeOff:
    """``bake`` with ``reasons`` (most likely first) in place of its own, its sentence naming the first."""
    if bake.verdict == "better" or not reasons:
        return dataclasses.replace(bake, reasons=())
    top = reasons[0]
    return dataclasses.replace(bake, reasons=tuple(reasons),
                               sentence=f"{bake.sentence}. Most likely {top.reason}; {top.change}.")


def _reasons(bake: BakeOff, task: DetectedTask, zero: Outcome, few: Outcome, budget: int, shots: int,
             model_params: int | None, held_out_from: str) -> list[Reason]:
    found: list[Reason] = []
    n = len(few.records)
    empty = sum(1 for r in few.records if not r["shots"])
    if empty:
        largest = max((r["extra_prompt_tokens"] for r in few.records), default=0)
        found.append(Reason("no_examples_fit", f"the prompt token budget ({budget}) fit no example for {empty} of "
                            f"the {n} held-out queries", "config.prompt_token_budget",
                            f"raise config.prompt_token_budget (the largest set of examples used took {largest} "
                            "tokens) or shorten the examples"))
    if task.task == "classification" and n:
        off = [r["prediction"] for r in few.records if match_label(r["prediction"], task.labels) is None]
        if len(off) >= OFF_FORMAT * n:
            sample = " ".join(off[0].split())[:60]
            found.append(Reason("off_format", f"{len(off)} of the {n} answers with examples name none of the "
                                f"labels (e.g. “{sample}”)", "config.system_prompt",
                                "name the labels in config.system_prompt (\"Answer with one of: "
                                f"{', '.join(task.labels[:6])}\")"))
    same = sum(a == b for a, b in zip(zero.replies, few.replies, strict=True))
    if n and same / n >= UNCHANGED_ANSWERS:
        found.append(Reason("answers_unchanged", f"the examples changed only {n - same} of the {n} answers "
                            f"(up to {shots} examples, {few.shots_per_query:.1f} per query on average)",
                            "config.shots", "raise config.shots and config.prompt_token_budget so more "
                                            "examples reach each prompt"))
    if bake.examples < MIN_EVAL_EXAMPLES and bake.improved_on_average:
        # A gain too small to show on few examples explains the verdict before anything else.
        found.insert(0, Reason("few_eval_examples", f"only {bake.examples} held-out examples: the interval is too "
                               "wide to show a gain of this size", "config.eval_fraction",
                               f"hold out at least {MIN_EVAL_EXAMPLES} examples ({held_out_from}: raise "
                               "config.eval_fraction, or give a larger config.eval_data)"))
    if model_params is not None and model_params < SMALL_MODEL:
        found.append(Reason("model_small", f"the {model_params / 1e6:.0f}M-parameter model may be too small to "
                            "learn this task from examples in its prompt", "model",
                            "try a larger instruction-tuned model"))
    return found


def icl_bake_off(task: DetectedTask, held_out: Sequence[Example], zero: Outcome, few: Outcome, *, budget: int,
                 shots: int, model_params: int | None, held_out_from: str) -> tuple[BakeOff, list[ExampleOutcome]]:
    """The bake-off of ``few`` (the plan's selection) against ``zero`` on every held-out example, with each
    example's evidence for ``bakeoff.jsonl``."""
    ids = example_ids(held_out)
    metric = "accuracy" if task.task == "classification" else "rouge_l"
    score_key = "correct" if metric == "accuracy" else "rouge_l"
    options: dict[str, Any] = {"method": METHOD, "unit": "held-out examples"}
    if metric == "accuracy":
        golds = {i: e.answer for i, e in zip(ids, held_out, strict=True)}
        bake = classification_bake_off(golds, dict(zip(ids, zero.replies, strict=True)),
                                       dict(zip(ids, few.replies, strict=True)), task.labels, **options)
    else:
        bake = bake_off({i: float(r[score_key]) for i, r in zip(ids, zero.records, strict=True)},
                        {i: float(r[score_key]) for i, r in zip(ids, few.records, strict=True)}, metric, **options)
    bake = with_reasons(bake, _reasons(bake, task, zero, few, budget, shots, model_params, held_out_from))
    examples = [ExampleOutcome(i, e.query_text, e.answer, z["prediction"], f["prediction"], float(z[score_key]),
                               float(f[score_key]))
                for i, e, z, f in zip(ids, held_out, zero.records, few.records, strict=True)]
    return bake, examples
