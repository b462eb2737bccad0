"""Settings of a full fine-tuning plan (the ``config:`` block of a plan whose method is ``full_finetune``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tunewise.methods._hf.settings import TrainingSettings

LossOn = Literal["assistant", "all"]
SaveDtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class FullFinetuneConfig:
    """Every weight of the model trains on the plan's examples."""

    training_settings: ClassVar[type] = TrainingSettings
    """The class of the plan's ``training:`` block (read by plan validation)."""

    loss_on: LossOn = field(
        default="assistant",
        metadata={"help": "assistant: loss only on answer tokens (assistant turns, completions) and their "
                          "end-of-turn token; all: on every token, prompts included"},
    )
    save_dtype: SaveDtype = field(
        default="auto",
        metadata={"help": "dtype of the saved model; auto = the base model's (training keeps fp32 master weights)"},
    )

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.loss_on not in ("assistant", "all"):
            out.append(("loss_on", f"must be assistant or all, got {self.loss_on!r}"))
        if self.save_dtype not in ("auto", "float32", "bfloat16", "float16"):
            out.append(("save_dtype", f"must be auto, float32, bfloat16 or float16, got {self.save_dtype!r}"))
        return out
