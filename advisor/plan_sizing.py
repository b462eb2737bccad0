"""Training settings sized to learn: chosen from the data audit, the model and the hardware (no torch, no widgets).

:func:`size_training` picks epochs, batch, sequence length, learning rate, held-out share, the
held-out evaluation cadence with early stopping, and a time budget so that a run on the user's data
changes the model visibly; each value carries a one-line reason (the plan YAML shows it as the
field's comment). Early stopping (on held-out loss, keeping the best evaluated weights) is what makes
generous epoch counts safe: a run that starts to overfit stops and returns its best step. :func:`sizing_warnings` says before a run
starts when its settings are too small to change anything; ``tunewise run`` prints them and runs anyway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tunewise.methods._hf.settings import AUTO_EVALUATIONS as EVALUATIONS

if TYPE_CHECKING:
    from tunewise.advisor.audit import AuditReport
    from tunewise.plugins.costs import ModelShape, TrainKind
    from tunewise.plugins.types import Hardware, Profile

TRAINED_METHODS: dict[str, TrainKind] = {"lora": "lora", "full_finetune": "full",
                                         "continual_pretraining": "full", "rlhf": "dpo"}
"""Methods with a ``training:`` section, and the cost-formula kind each one trains as."""
LEARNING_RATE_RANGES: dict[str, tuple[float, float]] = {
    "full_finetune": (5e-6, 2e-4),
    "lora": (5e-5, 2e-3),
    "continual_pretraining": (1e-5, 3e-4),
}
"""Learning rates that fine-tuning recipes use per method (full 2e-5, LoRA 2e-4, continual pretraining
5e-5 in the middle; the high end for small models); RLHF stages keep their own."""
TEMPLATE_TOKENS = 32
"""Tokens the chat template adds to an example (the audit counts the text alone): SmolLM2's
instruction template adds about 30 to a 43-token row."""
DOCUMENT_SHAPES = ("text", "documents")
SMALL_DATA = 2_000
"""Below this many examples the number of optimizer updates, not throughput, limits learning."""
HELD_OUT_TARGET = 60
HELD_OUT_MIN = 30
HELD_OUT_MAX_SHARE = 0.25
CPU_BUDGET_H = 0.5
"""Longest training a CPU plan is sized for; beyond it the plan stops early (``max_steps``)."""
MIN_BUDGET_H = 0.1
"""Six minutes: evaluation, generation and model loading come on top of the training steps."""
DEFAULT_EXAMPLE_TOKENS = 256
"""Assumed tokens per example when there is no audit and the answers do not say."""
WARN_HELD_OUT = 20
BUDGET_FACTOR = 1.5
"""The time budget is the quoted training time with this much slack (rounded up to 3 minutes)."""
PATIENCE = 3
"""Held-out evaluations without improvement before a run stops (the settings' default, written out)."""
MIN_DELTA = 0.001
"""Share of the best held-out loss an evaluation must improve by to reset the patience."""
GPU_SMALL_DATA_EPOCHS = 2
"""On a GPU, small data sets get this many times the epochs: time is cheap there and early stopping
keeps the best step if the extra passes overfit (a CPU keeps its budget)."""


@dataclass(frozen=True)
class SizedPlan:
    """Training settings (the plan's ``training:`` block) and one reason per chosen value."""

    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    estimated_hours: float | None = None
    """The quote's training time for these settings on the hardware (None: not quoted)."""

    def set(self, name: str, value: Any, reason: str) -> None:
        self.settings[name] = value
        self.reasons[name] = reason


def _round_up(value: float, multiple: int) -> int:
    return max(multiple, math.ceil(value / multiple) * multiple)


def _hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def _learning_rate(method_id: str, params: float, examples: int) -> tuple[float | None, str]:
    """The peak learning rate for ``method_id`` on a model of ``params`` with ``examples`` to learn from.

    Small models tolerate (and need) higher rates than the 7B-class defaults: LoRA trains only the
    adapter, whose update is scaled by alpha/r, so on a ~100M-parameter model with a few hundred
    examples 1e-3 moves the answers within a hundred steps where 2e-4 barely changes them (the
    example LoRA plan on the embedded model learns at 1e-3). Full fine-tuning and continual
    pretraining update every weight, so their rates stay 10-20x lower and fall with model size.
    """
    small = params < 1e9
    if method_id == "lora":
        if small and examples < SMALL_DATA:
            return 1e-3, "LoRA on a model under 1B with few examples: a high adapter rate learns in few steps"
        if small:
            return 5e-4, "LoRA on a model under 1B: above the 2e-4 default, which moves small models slowly"
        return (2e-4, "LoRA's usual rate for a 1-30B model") if params < 3e10 else \
            (1e-4, "LoRA on a model over 30B: half the usual rate (large models diverge more easily)")
    if method_id == "full_finetune":
        if small:
            return 1e-4, "full fine-tuning of a model under 1B: small models need a higher rate than 2e-5"
        return (2e-5, "full fine-tuning's usual rate") if params < 3e10 else \
            (1e-5, "full fine-tuning of a model over 30B: half the usual rate")
    if method_id == "continual_pretraining":
        return (1e-4, "continual pretraining of a model under 1B: twice the 5e-5 default") if small else \
            (5e-5, "continual pretraining's usual rate: low, to keep what the model knows")
    return None, ""


def _data_figures(method_id: str, audit: AuditReport | None, answers: Profile | None
                  ) -> tuple[int, float, float, float, int | None, str, bool]:
    """(examples, median, p95, mean tokens, total tokens, where the figures come from, document data)."""
    if audit is not None and audit.tokens is not None:
        stats = audit.tokens
        documents = audit.shape in DOCUMENT_SHAPES
        return (audit.usable_rows, stats.median, stats.p95, stats.mean, stats.total,
                f"the audit of {audit.source}", documents)
    data = answers.data if answers is not None else None
    per = float(data.avg_tokens_per_example or DEFAULT_EXAMPLE_TOKENS) if data else float(DEFAULT_EXAMPLE_TOKENS)
    if method_id == "continual_pretraining":
        total = int((data.document_tokens or data.unlabeled_tokens) if data else 0)
        return max(1, total // 512), per, per, per, total or None, "the answers (no data audit)", True
    count = (data.preference_pairs if method_id == "rlhf" else data.labeled_examples) if data else 0
    return int(count), per, per, per, int(count * per) or None, "the answers (no data audit)", False


def size_training(method_id: str, audit: AuditReport | None, model_shape: ModelShape, hardware: Hardware,
                  answers: Profile | None = None) -> SizedPlan:
    """Training settings for ``method_id`` sized from the audit (else the answers), the model and the hardware.

    Methods without a ``training:`` section (RAG, in-context), and data of unknown size, get an empty plan.
    """
    sized = SizedPlan(method_id)
    kind = TRAINED_METHODS.get(method_id)
    if kind is None:
        return sized
    examples, _median, p95, mean, total_tokens, source, documents = _data_figures(method_id, audit, answers)
    if examples <= 0:
        return sized  # no audit and no counts in the answers: nothing to size from, the defaults stand
    cpu = hardware.kind == "cpu"
    context = int(model_shape.context or 2048)

    # sequence length
    if documents:
        seq_len = min(512 if cpu else 2048, context)
        sized.set("seq_len", seq_len, f"documents are packed into {seq_len}-token sequences "
                  f"({'short: a CPU' if cpu else 'a GPU'}; the model's context is {context:,})")
    else:
        seq_len = min(_round_up(p95 + TEMPLATE_TOKENS, 64), context)
        sized.set("seq_len", seq_len, f"95% of examples have ≤ {p95:.0f} tokens ({source}) + ~{TEMPLATE_TOKENS} "
                  f"for the chat template, rounded up to 64" + (f"; capped at the context {context:,}"
                                                               if seq_len == context else ""))

    # held-out split
    wanted = min(200, max(HELD_OUT_TARGET, round(examples * 0.1)))
    fraction = min(HELD_OUT_MAX_SHARE, wanted / examples) if examples > 1 else 0.1
    fraction = math.ceil(fraction * 1000) / 1000
    held = round(examples * fraction)
    if documents:
        fraction, held = 0.1, round(examples * 0.1)
        sized.set("eval_fraction", fraction, "a tenth of the documents held out for the loss before and after")
    elif held < HELD_OUT_MIN:
        sized.set("eval_fraction", fraction, f"only {examples:,} examples: a quarter ({held}) held out, "
                  f"fewer than the {HELD_OUT_MIN} a clear before/after needs; more data would help")
    else:
        sized.set("eval_fraction", fraction, f"{held:,} of {examples:,} examples held out: enough for a "
                  "before/after comparison, the rest trains")
    train = max(1, examples - held)

    # packing: with few examples the number of updates limits learning, so one example per sequence
    packing = documents or examples >= SMALL_DATA
    if not documents and method_id != "rlhf":
        sized.set("packing", packing, "many examples: pack them into full sequences for throughput" if packing
                  else f"{examples:,} examples: one per sequence, so each epoch gives {train:,}/batch updates "
                       "instead of a few packed ones")
    per_sequence = max(1.0, seq_len / max(1.0, mean + TEMPLATE_TOKENS)) if packing and not documents else 1.0
    sequences = (max(1, math.ceil((total_tokens or seq_len) * (1 - fraction) / seq_len)) if documents
                 else max(1, math.ceil(train / per_sequence)))

    # batch size: what fits in memory; on a CPU small (a step's time grows with the batch: no speed-up)
    from tunewise.plugins.costs import TrainSetup, total_gb, training_memory

    precision = "fp32" if cpu else "bf16"
    limit = 0.85 * hardware.memory_gb if hardware.memory_gb else math.inf
    cap = 4 if cpu else 16
    cap = min(cap, max(1, 2 ** int(math.log2(max(1, sequences // 8)))))  # at least ~8 steps per epoch
    batch, recompute = 1, False
    for candidate in (16, 8, 4, 2, 1):
        if candidate > cap:
            continue
        setup = TrainSetup(seq_len=seq_len, micro_batch=candidate, precision=precision)
        if total_gb(training_memory(model_shape, setup, hardware, kind)) <= limit:
            batch = candidate
            break
    else:
        recompute = True
    memory = total_gb(training_memory(model_shape, TrainSetup(seq_len=seq_len, micro_batch=batch,
                                                              precision=precision, recompute=recompute),
                                      hardware, kind))
    why = "a CPU: small batches, more updates" if cpu else "the largest that fits"
    if cap < (4 if cpu else 16):
        why = f"{sequences:,} training sequences: at least ~8 steps per epoch"
    sized.set("batch_size", batch, f"{why} (≈{memory:.1f} GB of {hardware.memory_gb:g} GB on {hardware.name})")
    sized.set("grad_accum", 1, "no accumulation: every micro-batch is an update")
    if recompute:
        sized.set("gradient_checkpointing", True, "batch 1 does not fit without recomputing activations")
    steps_per_epoch = math.ceil(sequences / batch)

    # epochs: every example seen enough times
    if method_id == "rlhf":
        epochs = 1
    elif examples < 500:
        epochs = 5
    elif examples < SMALL_DATA:
        epochs = 3
    elif examples < 20_000:
        epochs = 2
    else:
        epochs = 1
    more = ""
    if not cpu and method_id != "rlhf" and examples < SMALL_DATA:
        epochs *= GPU_SMALL_DATA_EPOCHS
        more = "; more passes are cheap on a GPU and early stopping keeps the best step if they overfit"
    if method_id != "rlhf":
        sized.set("epochs", epochs, f"{examples:,} {'documents' if documents else 'examples'}: each seen {epochs}× "
                  f"({steps_per_epoch:,} steps per epoch, {epochs * steps_per_epoch:,} in all){more}")

    rate, rate_reason = _learning_rate(method_id, model_shape.params, examples)
    if rate is not None:
        sized.set("learning_rate", rate, rate_reason)

    # time: the quote for these tokens on this hardware
    from tunewise.plugins.costs import training_quote

    sequence_tokens = seq_len if (packing or documents) else min(seq_len, p95 + TEMPLATE_TOKENS)
    tokens = max(1.0, float(epochs * steps_per_epoch * batch * sequence_tokens))
    setup = TrainSetup(seq_len=seq_len, micro_batch=batch, precision=precision, recompute=recompute)
    quote = training_quote(method_id, model_shape, tokens, hardware, setup, kind=kind)
    hours = quote.wall_hours
    steps = epochs * steps_per_epoch
    if cpu and hours > CPU_BUDGET_H and method_id != "rlhf":
        fitting = max(1, int(steps * CPU_BUDGET_H / hours))
        sized.set("max_steps", fitting, f"a CPU: {fitting:,} of the {steps:,} steps fit in "
                  f"{_hours(CPU_BUDGET_H)} (quoted {_hours(hours)} for all {epochs} epochs; a GPU runs them all)")
        hours = CPU_BUDGET_H
    else:
        sized.set("max_steps", None, "none: the epochs decide")
    if method_id != "rlhf":  # the RLHF stages train with trl's own loop
        held_sequences = (max(1, math.ceil((total_tokens or seq_len) * fraction / seq_len)) if documents
                          else max(1, math.ceil(held / per_sequence)))
        _early_stopping(sized, steps if sized.settings["max_steps"] is None else sized.settings["max_steps"],
                        steps_per_epoch, batch, held_sequences)
    budget = max(MIN_BUDGET_H, math.ceil(hours * BUDGET_FACTOR * 20) / 20)
    sized.set("max_hours", budget, f"1.5x the quoted {_hours(hours)} of training on {hardware.name} "
              f"(at least {_hours(MIN_BUDGET_H)}): stops with a checkpoint; --resume continues")
    return replace(sized, estimated_hours=hours)


def _early_stopping(sized: SizedPlan, steps: int, steps_per_epoch: int, batch: int, held_sequences: int) -> None:
    """Early stopping and the held-out evaluation cadence it watches, by the rule the loop applies
    when ``eval_steps`` is not set (:func:`~tunewise.methods._hf.settings.evaluation_cadence`): about
    ten evaluations per run, at least one per epoch, at most +25% time; off when not even two fit.
    """
    from tunewise.methods._hf.settings import evaluation_cadence, evaluation_count, evaluation_share

    wanted = evaluation_cadence(steps, steps_per_epoch)
    interval = evaluation_cadence(steps, steps_per_epoch, held_sequences, batch)
    if interval is None:
        sized.set("eval_steps", None, f"held-out loss before and after only: even two passes over the "
                  f"{held_sequences:,} held-out sequences would add "
                  f"~{evaluation_share(steps, max(1, steps - 1), held_sequences, batch):.0%} to {steps:,} training steps")
        sized.set("early_stopping_patience", 0, "off: no affordable evaluations during this short run to watch")
        return
    count = evaluation_count(steps, interval)
    if interval == wanted:
        why = f"~{count} held-out evaluations" + (
            " (at least one per epoch)" if interval == steps_per_epoch and interval < steps else "")
    else:
        why = f"~{count} held-out evaluations, not {EVALUATIONS}: each is a pass over {held_sequences:,} " \
              "held-out sequences"
    sized.set("eval_steps", interval, f"{why}, adding ~{evaluation_share(steps, interval, held_sequences, batch):.0%} "
              "to the training time; early stopping watches them")
    patience_note = "" if count > PATIENCE else \
        f" (with {count} evaluations it cannot stop early, but still keeps the better weights)"
    sized.set("early_stopping_patience", PATIENCE, f"stop after {PATIENCE} evaluations without improvement and "
              "keep the best step's weights: epochs that start to overfit end the run instead of spoiling it"
              + patience_note)
    sized.set("early_stopping_min_delta", MIN_DELTA, f"an improvement under {MIN_DELTA:.1%} of the best held-out "
              "loss is a plateau, not progress")


def sizing_warnings(method_id: str, training_settings: Mapping[str, Any], rows: int, *,
                    sequences: int | None = None, held_out: int | None = None,
                    median_tokens: float | None = None, default_learning_rate: float | None = None) -> list[str]:
    """What makes a run with ``training_settings`` on ``rows`` examples too small to change anything.

    ``sequences`` is the number of training sequences when packing merged examples (one pass is
    sequences / (batch x grad_accum) steps; else rows); ``held_out`` the held-out examples (else
    estimated from ``eval_fraction``); ``median_tokens`` the audit's median example length.
    """
    warnings: list[str] = []

    def number(name: str, default: Any) -> Any:
        value = training_settings.get(name, default)
        return default if value is None or isinstance(value, bool) else value

    batch = max(1, int(number("batch_size", 4))) * max(1, int(number("grad_accum", 1)))
    fraction = float(number("eval_fraction", 0.1))
    if held_out is None:
        held_out = min(int(number("eval_max_examples", 200)), max(0, rows - 1),
                       max(1, round(rows * fraction))) if fraction > 0 and rows > 1 else 0
    train = sequences if sequences is not None else max(0, rows - held_out)
    one_pass = math.ceil(train / batch) if train else 0
    max_steps = training_settings.get("max_steps")
    steps = int(max_steps) if max_steps else int(number("epochs", 1)) * one_pass
    if one_pass and steps < one_pass:
        warnings.append(f"{steps} optimizer steps are fewer than one pass over the {train:,} training "
                        f"{'sequences' if sequences is not None else 'examples'} ({one_pass} steps at "
                        f"{batch} per step): the model sees only part of the data once and will barely change; "
                        "raise max_steps or epochs (`tunewise plan` sizes them)")
    rate = training_settings.get("learning_rate") or default_learning_rate
    bounds = LEARNING_RATE_RANGES.get(method_id)
    if rate and bounds:
        low, high = bounds
        if float(rate) < low / 10 or float(rate) > high * 10:
            warnings.append(f"learning_rate {float(rate):g} is more than 10x outside {method_id}'s usual "
                            f"{low:g}–{high:g}: " + ("the weights will hardly move" if float(rate) < low / 10
                                                     else "training is likely to diverge"))
    seq_len = training_settings.get("seq_len")
    if median_tokens and isinstance(seq_len, int) and seq_len < median_tokens:
        warnings.append(f"seq_len {seq_len} is below the median example ({median_tokens:.0f} tokens): most "
                        "examples are truncated and lose their answers")
    if fraction > 0 and rows > 1 and held_out < WARN_HELD_OUT:
        warnings.append(f"only {held_out} held-out examples: before/after figures on so few are mostly noise "
                        f"(aim for {WARN_HELD_OUT}+: raise eval_fraction or add data)")
    return warnings


def size_for(method_id: str, profile: Profile, audit: AuditReport | None, *, model: str | None = None,
             hardware: str | None = None) -> SizedPlan:
    """:func:`size_training` for a plan that runs ``model`` (None: the answers' model, else the embedded one)
    on ``hardware`` (None: the answers' hardware), both looked up without loading anything."""
    from tunewise.advisor.hardware import find_hardware
    from tunewise.plugins.costs import resolve_shape
    from tunewise.plugins.models import EMBEDDED_MODEL

    name = model or profile.model.name or EMBEDDED_MODEL
    # The plan runs the embedded model when it names none, whatever size the answers assumed.
    params_b = profile.model.params_b if (model or profile.model.name) else 0.135
    return size_training(method_id, audit, resolve_shape(name, params_b),
                         find_hardware(hardware or profile.hardware.gpu), profile)


def start_warnings(start: Mapping[str, Any]) -> list[str]:
    """:func:`sizing_warnings` from a training method's ``start`` event (its plan, counts and learning rate)."""
    method_id = str(start.get("method"))
    if method_id not in LEARNING_RATE_RANGES:
        return []  # RLHF counts steps per stage; RAG and in-context do not train
    plan = start.get("plan") or {}
    training = plan.get("training") if isinstance(plan, Mapping) else None
    counts = start.get("counts") or {}
    if not isinstance(training, Mapping) or not isinstance(counts, Mapping):
        return []
    rows = int(counts.get("rows") or 0)
    sequences = counts.get("train_sequences")
    held = counts.get("held_out_examples", counts.get("held_out_documents"))
    rate = start.get("learning_rate")
    return sizing_warnings(method_id, training, rows,
                           sequences=int(sequences) if isinstance(sequences, int) else None,
                           held_out=int(held) if isinstance(held, int) else None,
                           default_learning_rate=float(rate) if isinstance(rate, (int, float)) else None)
