"""The plan's ``training:`` and ``config:`` sections, read and checked (no torch).

The training keys are the ones tunewise's built-in methods use (``max_steps``, ``batch_size``,
``learning_rate`` …), so a plan can switch between them and prompt tuning by changing ``method:``.
``tunewise run`` validates both sections against these classes (``PromptTuningSettings.training_settings``
names the training one) before the run starts; :func:`read_settings` checks them again for callers
that hand a :class:`~tunewise.plugins.Plan` straight to ``Method.run``, and reports the training keys
this plugin does not use instead of failing on them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tunewise.plugins import Plan
from tunewise.plugins.errors import TunewiseError

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

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for each bad value (tunewise's plan validation calls this too)."""
        out: list[tuple[str, str]] = []

        def bad(name: str, ok: bool, need: str) -> None:
            if not ok:
                out.append((name, f"must be {need}, got {getattr(self, name)!r}"))

        for name in ("epochs", "batch_size", "grad_accum", "eval_max_examples", "logging_steps"):
            bad(name, _whole(getattr(self, name), 1), "a whole number >= 1")
        bad("max_steps", self.max_steps is None or _whole(self.max_steps, 1), "a whole number >= 1")
        bad("seq_len", _whole(self.seq_len, 16), "a whole number >= 16")
        bad("generation_examples", _whole(self.generation_examples, 0), "a whole number >= 0")
        bad("learning_rate", self.learning_rate is None or _between(self.learning_rate, 0, 10, low_open=True),
            "a number between 0 and 10")
        bad("lr_schedule", self.lr_schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}")
        bad("warmup_ratio", _between(self.warmup_ratio, 0, 1), "in [0, 1)")
        bad("max_grad_norm", _between(self.max_grad_norm, 0, float("inf")), ">= 0")
        bad("precision", self.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)} for prompt tuning")
        bad("device", isinstance(self.device, str) and (self.device in ("auto", "cpu", "cuda")
                                                         or self.device.startswith("cuda:")),
            "auto, cpu, cuda or cuda:N")
        bad("eval_fraction", _between(self.eval_fraction, 0, 1), "in [0, 1)")
        return out


INIT_CHOICES = ("text", "sample_vocab", "random")


@dataclass(frozen=True)
class PromptTuningSettings:
    """The ``config:`` section of a prompt-tuning plan."""

    training_settings: ClassVar[type] = RunSettings
    """The class of the plan's ``training:`` section (tunewise's plan validation reads it)."""

    num_virtual_tokens: int = field(
        default=20, metadata={"help": "trainable embeddings prepended to every input (Lester et al.: 20-100)"}
    )
    init: str = field(
        default="text",
        metadata={"help": "start from the embeddings of init_text (text), random vocabulary tokens "
                          "(sample_vocab) or random vectors (random); text converges fastest"},
    )
    init_text: str = field(
        default="Read the request and answer in the expected format:",
        metadata={"help": "words whose embeddings initialise the virtual tokens when init is text"},
    )

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for each bad value."""
        out: list[tuple[str, str]] = []
        n = self.num_virtual_tokens
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 512:
            out.append(("num_virtual_tokens", f"must be a whole number from 1 to 512, got {n!r}"))
        if self.init not in INIT_CHOICES:
            out.append(("init", f"must be one of {', '.join(INIT_CHOICES)}, got {self.init!r}"))
        if self.init == "text" and not (isinstance(self.init_text, str) and self.init_text.strip()):
            out.append(("init_text", "must be non-empty text when init is text"))
        return out


def _where(plan: Plan, path: str) -> str:
    return f"{plan.source}: {path}" if plan.source else path


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _between(value: Any, low: float, high: float, low_open: bool = False) -> bool:
    """``low <= value < high`` (``low < value`` with ``low_open``) for real numbers."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return (low < value if low_open else low <= value) and value < high


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
    problems += [f"{_where(plan, 'training.' + name)}: {what}" for name, what in settings.problems()]
    problems += [f"{_where(plan, 'config.' + name)}: {what}" for name, what in config.problems()]
    if isinstance(config.num_virtual_tokens, int) and isinstance(settings.seq_len, int) \
            and config.num_virtual_tokens >= settings.seq_len:
        problems.append(f"{_where(plan, 'config.num_virtual_tokens')}: {config.num_virtual_tokens} leaves no room "
                        f"in training.seq_len {settings.seq_len}")
    if problems:
        raise PlanSettingsError("\n".join(problems))
    return settings, config, ignored
