"""Settings of a continual pretraining plan (the ``config:`` block of a plan whose method is ``continual_pretraining``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tunewise.methods._hf.settings import TrainingSettings

SaveDtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class ContinualPretrainingConfig:
    """Next-token prediction on raw text, packed into full-length sequences."""

    training_settings: ClassVar[type] = TrainingSettings
    """The class of the plan's ``training:`` block (read by plan validation)."""

    cross_document_attention: bool = field(
        default=False,
        metadata={"help": "let packed documents attend to the documents before them in a sequence (GPT-style "
                          "concatenation); false keeps every document to itself"},
    )
    save_dtype: SaveDtype = field(
        default="auto",
        metadata={"help": "dtype of the saved model; auto = the base model's (training keeps fp32 master weights)"},
    )

    def problems(self) -> list[tuple[str, str]]:
        if self.save_dtype not in ("auto", "float32", "bfloat16", "float16"):
            return [("save_dtype", f"must be auto, float32, bfloat16 or float16, got {self.save_dtype!r}")]
        return []
