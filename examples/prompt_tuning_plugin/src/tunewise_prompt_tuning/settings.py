"""The plan's ``training:`` and ``config:`` sections, read and checked (no torch).

The training keys are the ones tunewise's built-in methods use (``max_steps``, ``batch_size``,
``learning_rate`` …), so one plan file can switch methods by changing ``method:``. Keys this plugin
does not use are reported in the run's log and otherwise ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tunewise.plugins import Plan
from tunewise.plugins.errors import TunewiseError

from tunewise_prompt_tuning.method import PromptTuningSettings

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_LEARNING_RATE = 3e-2
"""Soft prompts need a far higher rate than weights (peft's prompt-tuning examples use 3e-2)."""


class PlanSettingsError(TunewiseError):
    """A bad value in the plan's ``training:`` or ``config:`` section; the message names the field."""


@dataclass(frozen=True)
class RunSettings:
    """How to train the prompt."""

    epochs: int = field(default=1, metadata={"help": "passes over the training examples (unless max_steps)"})
    max_steps: int | None = field(default=None, metadata={"help": "optimizer steps; overrides epochs"})
    batch_size: int = field(default=8, metadata={"help": "examples per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    seq_len: int = field(default=512, metadata={"help": "tokens per example, virtual tokens included"})
    learning_rate: float | None = field(default=None, metadata={"help": "peak rate; default 3e-2"})
    lr_schedule: str = field(default="cosine", metadata={"help": "decay after warmup: cosine, linear, constant"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps warming up linearly"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm (0: no clipping)"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on capable GPUs, else fp32), fp32, bf16"})
    seed: int = field(default=42, metadata={"help": "seed of the prompt init and the data order"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    eval_fraction: float = field(default=0.1, metadata={"help": "share of examples held out (by content hash)"})
    eval_max_examples: int = field(default=200, metadata={"help": "cap on held-out examples"})
    generation_examples: int = field(default=8, metadata={"help": "held-out examples answered greedily "
                                                                  "before and after (exact match)"})
    logging_steps: int = field(default=1, metadata={"help": "report loss and speed every N steps"})

    @property
    def peak_learning_rate(self) -> float:
        return float(self.learning_rate) if self.learning_rate is not None else DEFAULT_LEARNING_RATE


def _where(plan: Plan, path: str) -> str:
    return f"{plan.source}: {path}" if plan.source else path


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _problems(s: RunSettings) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name in ("epochs", "batch_size", "grad_accum", "eval_max_examples", "logging_steps"):
        if not _whole(getattr(s, name), 1):
            out.append((name, f"must be a whole number >= 1, got {getattr(s, name)!r}"))
    if s.max_steps is not None and not _whole(s.max_steps, 1):
        out.append(("max_steps", f"must be a whole number >= 1, got {s.max_steps!r}"))
    if not _whole(s.seq_len, 16):
        out.append(("seq_len", f"must be a whole number >= 16, got {s.seq_len!r}"))
    if not _whole(s.generation_examples, 0):
        out.append(("generation_examples", f"must be a whole number >= 0, got {s.generation_examples!r}"))
    if s.learning_rate is not None and not (isinstance(s.learning_rate, (int, float)) and 0 < s.learning_rate < 10):
        out.append(("learning_rate", f"must be a number between 0 and 10, got {s.learning_rate!r}"))
    if s.lr_schedule not in SCHEDULES:
        out.append(("lr_schedule", f"must be one of {', '.join(SCHEDULES)}, got {s.lr_schedule!r}"))
    if not (isinstance(s.warmup_ratio, (int, float)) and 0 <= s.warmup_ratio < 1):
        out.append(("warmup_ratio", f"must be in [0, 1), got {s.warmup_ratio!r}"))
    if not (isinstance(s.max_grad_norm, (int, float)) and s.max_grad_norm >= 0):
        out.append(("max_grad_norm", f"must be >= 0, got {s.max_grad_norm!r}"))
    if s.precision not in PRECISIONS:
        out.append(("precision", f"must be one of {', '.join(PRECISIONS)} for prompt tuning, got {s.precision!r}"))
    if not (isinstance(s.device, str) and (s.device in ("auto", "cpu", "cuda") or s.device.startswith("cuda:"))):
        out.append(("device", f"must be auto, cpu, cuda or cuda:N, got {s.device!r}"))
    if not (isinstance(s.eval_fraction, (int, float)) and 0 <= s.eval_fraction < 1):
        out.append(("eval_fraction", f"must be in [0, 1), got {s.eval_fraction!r}"))
    return out


def _split(values: Mapping[str, Any], cls: type) -> tuple[dict[str, Any], list[str]]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}, sorted(k for k in values if k not in names)


def read_settings(plan: Plan) -> tuple[RunSettings, PromptTuningSettings, list[str]]:
    """The checked settings and the ``training:`` keys this plugin ignores.

    Raises :class:`PlanSettingsError` listing every bad value with its ``section.field`` path.
    """
    known, ignored = _split(plan.training, RunSettings)
    config_values, unknown_config = _split(plan.config, PromptTuningSettings)
    problems = [f"{_where(plan, 'config.' + k)}: unknown setting (known: "
                f"{', '.join(f.name for f in dataclasses.fields(PromptTuningSettings))})" for k in unknown_config]
    settings = RunSettings(**known)
    config = PromptTuningSettings(**config_values)
    problems += [f"{_where(plan, 'training.' + name)}: {what}" for name, what in _problems(settings)]
    problems += [f"{_where(plan, 'config.' + name)}: {what}" for name, what in config.problems()]
    if isinstance(config.num_virtual_tokens, int) and isinstance(settings.seq_len, int) \
            and config.num_virtual_tokens >= settings.seq_len:
        problems.append(f"{_where(plan, 'config.num_virtual_tokens')}: {config.num_virtual_tokens} leaves no room "
                        f"in training.seq_len {settings.seq_len}")
    if problems:
        raise PlanSettingsError("\n".join(problems))
    return settings, config, ignored
