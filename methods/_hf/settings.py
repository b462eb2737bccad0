"""Training settings shared by every training method: the ``training:`` section of a plan (no torch).

Fields whose ``metadata`` says ``"identity": False`` do not change what any training step computes
(how often to log, save or evaluate; budgets and early stopping, which only decide where a run ends
and which evaluated step's weights it keeps); every other field is part of a checkpoint's identity,
so a resume with a different value is refused unless forced. A resume with other early-stopping
values applies them from there on: the best loss so far and the evaluations since it carry over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Schedule = Literal["cosine", "linear", "constant"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
TRACKERS = ("tensorboard", "mlflow")


@dataclass(frozen=True)
class TrainingSettings:
    """How to train: steps, batches, sequence length, optimiser, precision, evaluation and saving."""

    epochs: int = field(default=1, metadata={"help": "passes over the training split (ignored when max_steps is set)"})
    max_steps: int | None = field(
        default=None, metadata={"help": "optimizer steps to run; overrides epochs (the data is cycled if needed)"}
    )
    batch_size: int = field(
        default=4, metadata={"help": "sequences per micro-batch (packed sequences hold several examples)"}
    )
    grad_accum: int = field(
        default=1, metadata={"help": "micro-batches accumulated per optimizer step (effective batch = batch_size x grad_accum)"}
    )
    seq_len: int = field(
        default=512, metadata={"help": "tokens per training sequence; longer examples are truncated (a warning counts them)"}
    )
    packing: bool = field(
        default=True,
        metadata={"help": "pack several examples into each sequence (no padding; examples never attend to each other)"},
    )
    learning_rate: float | None = field(
        default=None,
        metadata={"help": "peak learning rate; default: the method's (full 2e-5, LoRA 2e-4, continual pretraining 5e-5)"},
    )
    lr_schedule: Schedule = field(
        default="cosine", metadata={"help": "learning-rate decay after warmup: cosine, linear or constant"}
    )
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of the steps spent warming up linearly"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (not applied to norms and biases)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm to this value (0 = no clipping)"})
    precision: Precision = field(
        default="auto",
        metadata={
            "help": "auto, fp32, bf16 or fp16 (mixed precision: fp32 master weights, 16-bit compute). auto: bf16 "
            "on GPUs that support it (else fp16), bf16 on CPUs with AMX or AVX512-BF16, fp32 on other CPUs"
        },
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward pass: less memory, about 30% slower"}
    )
    seed: int = field(default=42, metadata={"help": "seed for the split, data order, adapter init and dropout"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"})
    deterministic: bool = field(
        default=False,
        metadata={"help": "use deterministic GPU kernels (needed for bit-exact resume on CUDA; CPU always is)"},
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "share of the examples held out for evaluation (chosen by content hash)"}
    )
    eval_max_examples: int = field(
        default=200, metadata={"help": "cap on held-out examples (keeps evaluation short on large data sets)"}
    )
    generation_examples: int | None = field(
        default=None,
        metadata={"help": "held-out examples answered greedily before and after training for the bake-off "
                  "(accuracy, exact match, ROUGE-L); default: every held-out example", "identity": False},
    )
    max_new_tokens: int = field(
        default=128, metadata={"help": "longest generated answer in evaluation", "identity": False}
    )
    eval_steps: int | None = field(
        default=None,
        metadata={"help": "also evaluate held-out loss every N steps (None: about 10 times per run and at least "
                          "once per epoch while early stopping is on, else only before and after)",
                  "identity": False},
    )
    early_stopping_patience: int | None = field(
        default=3,
        metadata={"help": "stop after this many held-out evaluations in a row without improvement and keep the "
                          "weights of the best evaluation (0 or null: off; needs a held-out split; LoRA, full "
                          "fine-tuning and continual pretraining). When eval_steps is not set, the loss is "
                          "evaluated about 10 times per run and at least once per epoch (less often when that would "
                          "add over 25% to the training time), and once at the end",
                  "identity": False},
    )
    early_stopping_min_delta: float = field(
        default=0.001,
        metadata={"help": "smallest improvement that resets the patience, as a share of the best held-out loss "
                          "so far (0.001 = 0.1%; relative, so it means the same for any loss scale); the kept "
                          "weights are always those of the lowest loss", "identity": False},
    )
    save_steps: int = field(
        default=50, metadata={"help": "write a checkpoint every N steps (and on SIGTERM / Ctrl-C)", "identity": False}
    )
    keep_checkpoints: int = field(
        default=1, metadata={"help": "complete checkpoints to keep (older ones are deleted)", "identity": False}
    )
    logging_steps: int = field(
        default=1, metadata={"help": "report loss and speed every N steps", "identity": False}
    )
    report_to: tuple[str, ...] = field(
        default=(), metadata={"help": "also log to tensorboard and/or mlflow (when installed)", "identity": False}
    )
    min_free_disk_gb: float = field(
        default=1.0,
        metadata={"help": "disk space (GB) that must stay free after each checkpoint; the run checks the "
                          "checkpoint folder's free space before every save and stops cleanly when it would "
                          "drop below this (earlier checkpoints stay intact; --resume continues)",
                  "identity": False},
    )
    max_hours: float | None = field(
        default=None,
        metadata={"help": "time budget: stop (with a checkpoint) once the run's wall-clock hours, summed over "
                          "resumes, reach this; --resume with a higher value continues", "identity": False},
    )
    max_usd: float | None = field(
        default=None,
        metadata={"help": "money budget: stop (with a checkpoint) once elapsed hours x the price per hour reach "
                          "this many US dollars; the price is usd_per_hour, else the HIGH end of "
                          "budget_hardware's catalogue price range (usd_per_hour_high)", "identity": False},
    )
    usd_per_hour: float | None = field(
        default=None,
        metadata={"help": "what this machine costs per hour, for max_usd (takes precedence over budget_hardware)",
                  "identity": False},
    )
    budget_hardware: str | None = field(
        default=None,
        metadata={"help": "hardware catalogue name (e.g. A100-80GB) whose high price per hour prices max_usd "
                          "when usd_per_hour is not set", "identity": False},
    )

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for each bad value; plans report them with the YAML line."""
        out: list[tuple[str, str]] = []

        def positive(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                out.append((name, f"must be a whole number >= 1, got {value!r}"))

        positive("epochs", self.epochs)
        positive("max_steps", self.max_steps, allow_none=True)
        positive("batch_size", self.batch_size)
        positive("grad_accum", self.grad_accum)
        positive("seq_len", self.seq_len)
        positive("eval_max_examples", self.eval_max_examples)
        positive("eval_steps", self.eval_steps, allow_none=True)
        positive("save_steps", self.save_steps)
        positive("keep_checkpoints", self.keep_checkpoints)
        positive("logging_steps", self.logging_steps)
        positive("max_new_tokens", self.max_new_tokens)
        if isinstance(self.seq_len, int) and 0 < self.seq_len < 16:
            out.append(("seq_len", f"must be at least 16, got {self.seq_len}"))
        if self.learning_rate is not None and not (0 < float(self.learning_rate) < 1):
            out.append(("learning_rate", f"must be between 0 and 1, got {self.learning_rate!r}"))
        if self.lr_schedule not in SCHEDULES:
            out.append(("lr_schedule", f"must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}"))
        if not 0 <= self.warmup_ratio < 1:
            out.append(("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio!r}"))
        if self.weight_decay < 0:
            out.append(("weight_decay", f"must be >= 0, got {self.weight_decay!r}"))
        if self.max_grad_norm < 0:
            out.append(("max_grad_norm", f"must be >= 0, got {self.max_grad_norm!r}"))
        if self.precision not in PRECISIONS:
            out.append(("precision", f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"))
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            out.append(("device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}"))
        if not 0 <= self.eval_fraction < 1:
            out.append(("eval_fraction", f"must be in [0, 1), got {self.eval_fraction!r}"))
        if self.generation_examples is not None and (
                not isinstance(self.generation_examples, int) or isinstance(self.generation_examples, bool)
                or self.generation_examples < 0):
            out.append(("generation_examples", "must be a whole number >= 0 (or left out for every held-out "
                                               f"example), got {self.generation_examples!r}"))
        if self.early_stopping_patience is not None and (
                not isinstance(self.early_stopping_patience, int) or isinstance(self.early_stopping_patience, bool)
                or self.early_stopping_patience < 0):
            out.append(("early_stopping_patience", "must be a whole number >= 0 (0 or null: no early "
                                                   f"stopping), got {self.early_stopping_patience!r}"))
        if not _number(self.early_stopping_min_delta) or not 0 <= self.early_stopping_min_delta < 1:
            out.append(("early_stopping_min_delta", "must be a number in [0, 1) (a share of the best held-out "
                                                    f"loss), got {self.early_stopping_min_delta!r}"))
        if not _number(self.min_free_disk_gb) or self.min_free_disk_gb < 0:
            out.append(("min_free_disk_gb", f"must be a number >= 0, got {self.min_free_disk_gb!r}"))
        for name in ("max_hours", "max_usd"):
            value = getattr(self, name)
            if value is not None and (not _number(value) or value <= 0):
                out.append((name, f"must be a number > 0 (or left out for no limit), got {value!r}"))
        if self.usd_per_hour is not None and (not _number(self.usd_per_hour) or self.usd_per_hour < 0):
            out.append(("usd_per_hour", f"must be a number >= 0, got {self.usd_per_hour!r}"))
        if self.budget_hardware is not None and not (isinstance(self.budget_hardware, str)
                                                     and self.budget_hardware.strip()):
            out.append(("budget_hardware", f"must be a hardware name, got {self.budget_hardware!r}"))
        if self.max_usd is not None and self.usd_per_hour is None and self.budget_hardware is None:
            out.append(("max_usd", "needs a price: set training.usd_per_hour or training.budget_hardware"))
        for tracker in self.report_to:
            if tracker not in TRACKERS:
                out.append(("report_to", f"unknown tracker {tracker!r}; choose from {', '.join(TRACKERS)}"))
        return out

    def identity(self) -> dict[str, Any]:
        """The settings that determine the trained weights (what a resumed checkpoint must match)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
            if f.metadata.get("identity", True)
        }


AUTO_EVALUATIONS = 10
"""Held-out evaluations per run while early stopping is on and ``eval_steps`` is not set: with a
patience of 3 a rise is caught within about a third of the run."""
EVAL_SHARE = 0.25
"""Most time those evaluations may add to training (a plan's time budget has 1.5x slack)."""


def evaluation_count(total_steps: int, every: int) -> int:
    """Held-out evaluations a run of ``total_steps`` makes: every ``every`` steps, and one at the last step."""
    return (max(1, total_steps) - 1) // max(1, every) + 1


def evaluation_share(total_steps: int, every: int, eval_sequences: int, sequences_per_step: int) -> float:
    """Time the evaluations add to training: a forward pass per held-out sequence against a forward
    and backward pass (about three forwards) per training sequence."""
    return evaluation_count(total_steps, every) * eval_sequences / (3 * max(1, total_steps) * max(1, sequences_per_step))


def evaluation_cadence(total_steps: int, steps_per_epoch: int, eval_sequences: int | None = None,
                       sequences_per_step: int | None = None) -> int | None:
    """Steps between early stopping's held-out evaluations when ``eval_steps`` is not set.

    About :data:`AUTO_EVALUATIONS` per run and at least one per epoch; when the held-out size is
    known, stretched until they add at most :data:`EVAL_SHARE` to the training time. None when not
    even two evaluations fit (then there is nothing to compare and early stopping stays off).
    """
    wanted = max(1, min(steps_per_epoch, math.ceil(total_steps / AUTO_EVALUATIONS)))
    if not eval_sequences or not sequences_per_step:
        return wanted
    for every in range(wanted, max(wanted, total_steps) + 1):
        if evaluation_share(total_steps, every, eval_sequences, sequences_per_step) <= EVAL_SHARE:
            return every if evaluation_count(total_steps, every) >= 2 else None
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
