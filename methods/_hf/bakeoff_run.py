"""The bake-off of a LoRA, full fine-tuning or continual pretraining run: the base model and the trained
one on every held-out example, scored as the data's task asks.

:func:`evaluate_side` measures one model (before training, then after): the held-out loss, and per
example either the greedy answer (supervised data; scored by accuracy for a classification, by
ROUGE-L for free text, see :mod:`tunewise.plugins.task_detection`) or the summed next-token loss
and target count (raw text; per held-out document, or per packed sequence when the split is made of
sequences). A :class:`Side` is JSON-ready, so the base's side rides in the checkpoint and a resumed
run compares exactly what an uninterrupted one would. :func:`compare` turns both sides into a
:class:`~tunewise.plugins.bakeoff.BakeOff` with each example's evidence; :func:`run_facts` collects
what the run saw so a result that is not better gets its most likely reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunewise.methods._hf.encoding import IGNORE
from tunewise.plugins.bakeoff import BakeOff, RunFacts, bake_off, classification_bake_off
from tunewise.plugins.bakeoff_report import ExampleOutcome, unique_ids

if TYPE_CHECKING:
    from tunewise.methods._hf.device import Placement
    from tunewise.methods._hf.packing import Packed
    from tunewise.methods._hf.pipeline import Corpus
    from tunewise.methods._hf.settings import TrainingSettings

EXTRA_KEY = "bakeoff_before"
"""Where the base's :class:`Side` lives in the checkpoint's ``LoopState.extra``."""

REFERENCE_SLACK = 16
"""Tokens an answer may run past its reference's length: enough to see a wrong answer, bounded so
answering every held-out example stays cheap."""


@dataclass
class Side:
    """One model's evidence on the held-out split."""

    metrics: dict[str, float] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    """Example id -> greedy answer (supervised data)."""
    losses: dict[str, list[float]] = field(default_factory=dict)
    """Example id -> ``[summed loss (nats), target tokens]`` (raw text)."""

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "answers": self.answers, "losses": self.losses}

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], corpus: Corpus) -> Side:
        """The base's side from a checkpoint's ``extra`` (also the list form older checkpoints kept)."""
        saved = extra.get(EXTRA_KEY)
        if isinstance(saved, Mapping):
            return cls(dict(saved.get("metrics") or {}), dict(saved.get("answers") or {}),
                       {k: list(v) for k, v in (saved.get("losses") or {}).items()})
        answers = list(extra.get("answers_before") or [])
        return cls(dict(extra.get("metrics_before") or {}),
                   dict(zip(generation_ids(corpus), answers, strict=False)))


def generation_ids(corpus: Corpus) -> list[str]:
    return unique_ids([e.where for e in corpus.generation])


def _owners(row: Packed, sequence_id: str | None) -> list[str]:
    """The id each target of a held-out row counts for: its document, or the whole sequence's id.

    A document's last token predicts nothing (its target is ``IGNORE``), so a row's documents end
    there; a row whose documents cannot be told apart this way counts as one sequence.
    """
    targets = [t for t in row.targets if t != IGNORE]
    if sequence_id is not None or not row.sources:
        return [sequence_id or ",".join(row.sources)] * len(targets)
    owners: list[str] = []
    index = 0
    for position, target in enumerate(row.targets):
        if target != IGNORE:
            owners.append(row.sources[min(index, len(row.sources) - 1)])
        elif position < len(row.targets) - 1:
            index += 1
    if index + 1 != len(row.sources):
        return [row.sources[0]] * len(targets)
    return owners


def unit_losses(rows: Sequence[Sequence[float]], held: Sequence[Packed],
                sequence_ids: Sequence[str] | None) -> dict[str, list[float]]:
    """Per held-out document (or sequence): ``[summed loss, target tokens]`` from per-target losses."""
    out: dict[str, list[float]] = {}
    for i, (losses, row) in enumerate(zip(rows, held, strict=True)):
        owners = _owners(row, sequence_ids[i] if sequence_ids is not None else None)
        for owner, loss in zip(owners, losses, strict=True):
            entry = out.setdefault(owner, [0.0, 0])
            entry[0] += loss
            entry[1] += 1
    return out


def answer_limits(corpus: Corpus, tokenizer: Any, settings: TrainingSettings) -> list[int]:
    """New tokens allowed per held-out prompt: the reference's length plus :data:`REFERENCE_SLACK`,
    at most ``training.max_new_tokens``."""
    return [min(settings.max_new_tokens, len(tokenizer(e.reference or "")["input_ids"]) + REFERENCE_SLACK)
            for e in corpus.generation]


def evaluate_side(model: Any, tokenizer: Any, corpus: Corpus, placement: Placement, settings: TrainingSettings,
                  held: Sequence[Any], events: Callable[..., Any], phase: str) -> Side:
    """Held-out loss plus per-example answers (supervised) or losses (raw text) of ``model``.

    Emits ``phase`` events (``done``/``total`` after each batch) so a screen can show progress.
    """
    from tunewise.methods._hf.evaluation import generate_answers, held_out_loss, score_answers, target_losses
    from tunewise.methods._hf.loss import causal_lm_loss

    side = Side()
    if not held:
        return side
    if corpus.shape in ("text", "documents"):
        def step(done: int, total: int) -> None:
            events("phase", phase=phase, done=done, total=total, unit="batches")

        events("phase", phase=phase, done=0, total=len(held), unit="batches")
        rows = target_losses(model, held, placement, step)
        side.losses = unit_losses(rows, corpus.held_out, corpus.held_sequence_ids)
        total = math.fsum(sum(r) for r in rows)
        count = sum(len(r) for r in rows)
        loss = total / max(1, count)
        side.metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "eval_tokens": float(count)}
        return side
    side.metrics = held_out_loss(model, held, causal_lm_loss, placement)
    if corpus.generation:
        def answered(done: int, total: int) -> None:
            events("phase", phase=phase, done=done, total=total, unit="examples")

        events("phase", phase=phase, done=0, total=len(corpus.generation), unit="examples")
        answers = generate_answers(model, tokenizer, [e.prompt_ids or [] for e in corpus.generation], placement,
                                   answer_limits(corpus, tokenizer, settings), answered)
        side.answers = dict(zip(generation_ids(corpus), answers, strict=True))
        side.metrics.update(score_answers(answers, [e.reference or "" for e in corpus.generation]))
    return side


# -- why a run is not better ------------------------------------------------------------------------


def eval_losses(before: Mapping[str, float], eval_history: Sequence[Mapping[str, Any]],
                after: Mapping[str, float], final_step: int, best_step: int | None) -> tuple[float, ...]:
    """Held-out losses in order: before training, during it, and after when that is a new point.

    After early stopping put an earlier step's weights back, the after-loss is that step's again, not a
    later point of the curve, so it is left out (it would read as the loss still falling).
    """
    losses = [float(before["loss"])] if isinstance(before.get("loss"), (int, float)) else []
    steps = []
    for point in eval_history:
        value = point.get("loss")
        if isinstance(value, (int, float)) and math.isfinite(value):
            losses.append(float(value))
            steps.append(point.get("step"))
    restored = best_step is not None and best_step != final_step
    if isinstance(after.get("loss"), (int, float)) and not restored and (not steps or steps[-1] != final_step):
        losses.append(float(after["loss"]))
    return tuple(losses)


def run_facts(corpus: Corpus, *, steps: int, steps_per_epoch: int, learning_rate: float,
              lr_range: tuple[float, float] | None, model_params: int, before: Side, after: Side,
              eval_history: Sequence[Mapping[str, Any]], best_step: int | None,
              early_stopped: str | None) -> RunFacts:
    """What the run saw, for :func:`tunewise.plugins.bakeoff.likely_reasons`."""
    units = corpus.train_units
    common = [k for k in after.answers if k in before.answers]
    unchanged = (sum(before.answers[k] == after.answers[k] for k in common) / len(common)) if common else None
    return RunFacts(
        steps=steps, train_examples=units or None,
        examples_per_step=units / steps_per_epoch if units and steps_per_epoch else None,
        eval_losses=eval_losses(before.metrics, eval_history, after.metrics, steps, best_step),
        learning_rate=learning_rate, lr_range=lr_range, model_params=model_params,
        unchanged_answers=unchanged,
        truncated_fraction=corpus.truncated / units if units and corpus.shape not in ("text", "documents") else None,
        early_stopped=early_stopped,
    )


# -- the comparison ---------------------------------------------------------------------------------


def no_bakeoff_reason(corpus: Corpus, settings: TrainingSettings) -> str | None:
    """Why this run cannot hold a bake-off (and the setting to change), or None when it can."""
    if not corpus.held_out:
        return ("no bake-off: there is no held-out split (training.eval_fraction is "
                f"{settings.eval_fraction:g} or the data is too small); set training.eval_fraction to 0.1 or "
                "more, or add data, so the base and the result can be compared on examples neither trained on")
    if corpus.shape not in ("text", "documents") and not corpus.generation:
        return ("no bake-off: no held-out example was answered (training.generation_examples is "
                f"{settings.generation_examples}); remove training.generation_examples to answer every "
                "held-out example")
    return None


def _unit(corpus: Corpus) -> str:
    if corpus.shape in ("text", "documents"):
        return "held-out sequences" if corpus.held_sequence_ids is not None else "held-out documents"
    return "held-out conversations" if corpus.shape == "messages" else "held-out examples"


def compare(corpus: Corpus, tokenizer: Any, title: str, before: Side, after: Side,
            facts: RunFacts) -> tuple[BakeOff, list[ExampleOutcome], list[str]]:
    """The bake-off, each example's evidence, and notes (e.g. examples the base never answered).

    Raises :class:`~tunewise.plugins.bakeoff.BakeOffError` when no example was scored on both sides.
    """
    from tunewise.methods._hf.rouge import rouge_l
    from tunewise.plugins.bakeoff import accuracy_scores

    notes: list[str] = []
    unit = _unit(corpus)
    if corpus.shape in ("text", "documents"):
        ids = sorted(k for k in after.losses if k in before.losses and after.losses[k][1] > 0)
        base = {k: before.losses[k][0] / before.losses[k][1] for k in ids}
        result = {k: after.losses[k][0] / after.losses[k][1] for k in ids}
        weights = {k: float(after.losses[k][1]) for k in ids}
        bake = bake_off(base, result, "perplexity", weights=weights, method=title, unit=unit, facts=facts)
        examples = [ExampleOutcome(k, "", corpus.held_texts.get(k, ""),
                                   f"mean token loss {base[k]:.3f} (perplexity {math.exp(min(base[k], 50)):.1f})",
                                   f"mean token loss {result[k]:.3f} (perplexity {math.exp(min(result[k], 50)):.1f})",
                                   base[k], result[k]) for k in ids]
        return bake, examples, notes
    prompts = {i: e for i, e in zip(generation_ids(corpus), corpus.generation, strict=True)}
    ids = [k for k in prompts if k in after.answers and k in before.answers]
    missing = len(prompts) - len(ids)
    if missing:
        notes.append(f"{missing} held-out example(s) have no base answer from before training (the resumed "
                     "checkpoint answered fewer; training.generation_examples changed?): the bake-off "
                     f"compares the other {len(ids)}")
    golds = {k: prompts[k].reference or "" for k in ids}
    base_answers = {k: before.answers[k] for k in ids}
    result_answers = {k: after.answers[k] for k in ids}
    task = corpus.task
    if task is not None and task.task == "classification":
        bake = classification_bake_off(golds, base_answers, result_answers, task.labels, method=title, unit=unit,
                                       facts=facts)
        base_scores, result_scores = accuracy_scores(golds, base_answers), accuracy_scores(golds, result_answers)
    else:
        base_scores = {k: rouge_l(base_answers[k], golds[k]) for k in ids}
        result_scores = {k: rouge_l(result_answers[k], golds[k]) for k in ids}
        bake = bake_off(base_scores, result_scores, "rouge_l", method=title, unit=unit, facts=facts)
    examples = [ExampleOutcome(k, tokenizer.decode(prompts[k].prompt_ids or [], skip_special_tokens=False),
                               golds[k], base_answers[k], result_answers[k], base_scores[k], result_scores[k])
                for k in ids]
    return bake, examples, notes
