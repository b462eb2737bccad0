"""Settings of a LoRA / QLoRA plan (the ``config:`` block of a plan whose method is ``lora``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tunewise.methods._hf.settings import TrainingSettings

LossOn = Literal["assistant", "all"]
Quantization = Literal["none", "4bit"]
Bias = Literal["none", "all", "lora_only"]


@dataclass(frozen=True)
class LoraConfig:
    """Low-rank adapters on a frozen base; defaults from the LoRA articles' example (r 8, alpha 32)."""

    training_settings: ClassVar[type] = TrainingSettings
    """The class of the plan's ``training:`` block (read by plan validation)."""

    r: int = field(default=8, metadata={"help": "adapter rank: trainable size and capacity grow with it"})
    alpha: int = field(default=32, metadata={"help": "adapter scaling numerator (the update is scaled by alpha / r)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the adapter input during training"})
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "v_proj"),
        metadata={"help": "module names that get adapters, or all-linear for every linear layer but the output head"},
    )
    bias: Bias = field(default="none", metadata={"help": "train biases too: none, all or lora_only"})
    quantization: Quantization = field(
        default="none",
        metadata={"help": "4bit = QLoRA: the frozen base in 4-bit NF4 with double quantisation (CUDA + bitsandbytes)"},
    )
    merge: bool = field(
        default=False, metadata={"help": "also save the base model with the adapter merged in (<out>/merged)"}
    )
    loss_on: LossOn = field(
        default="assistant",
        metadata={"help": "assistant: loss only on answer tokens and their end-of-turn token; all: every token"},
    )

    def __post_init__(self) -> None:
        # YAML users write `target_modules: all-linear`; keep one representation.
        if isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", (self.target_modules,))
        elif isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if not isinstance(self.r, int) or self.r < 1:
            out.append(("r", f"must be a whole number >= 1, got {self.r!r}"))
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            out.append(("alpha", f"must be > 0, got {self.alpha!r}"))
        if not 0 <= self.dropout < 1:
            out.append(("dropout", f"must be in [0, 1), got {self.dropout!r}"))
        if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
            out.append(("target_modules", "must be a list of module names, or [all-linear]"))
        if self.bias not in ("none", "all", "lora_only"):
            out.append(("bias", f"must be none, all or lora_only, got {self.bias!r}"))
        if self.quantization not in ("none", "4bit"):
            out.append(("quantization", f"must be none or 4bit, got {self.quantization!r}"))
        if self.loss_on not in ("assistant", "all"):
            out.append(("loss_on", f"must be assistant or all, got {self.loss_on!r}"))
        return out

    @property
    def peft_target_modules(self) -> str | list[str]:
        return "all-linear" if tuple(self.target_modules) == ("all-linear",) else list(self.target_modules)
