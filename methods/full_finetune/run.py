"""Running a full fine-tuning plan: every weight trains (fp32 master weights, mixed-precision compute)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.plugins.types import EventSink, Plan, RunResult

DEFAULT_LEARNING_RATE = 2e-5
LEARNING_RATE_RANGE = (5e-6, 2e-4)
"""The rates recipes use for this method (the default 2e-5 inside; the high end for small models),
named by the bake-off when a run at a rate outside them is not better (as in advisor/plan_sizing.py)."""


def run(plan: Plan, events: EventSink) -> RunResult:
    from tunewise.methods._hf.encoding import SUPERVISED_SHAPES, TEXT_SHAPES
    from tunewise.methods._hf.modeling import base_dtype_name
    from tunewise.methods._hf.pipeline import MethodSpec, method_config, run_training
    from tunewise.methods._hf.saving import save_full_model
    from tunewise.methods.full_finetune.config import FullFinetuneConfig
    from tunewise.plugins.models import resolve_model

    config = method_config(FullFinetuneConfig, plan.config)

    def save(model: Any, tokenizer: Any, out: Path) -> dict[str, str]:
        # Resolved here, not up front: data problems are reported before the model is even looked up.
        model_path = resolve_model(plan.model).path
        dtype = base_dtype_name(model_path) if config.save_dtype == "auto" else config.save_dtype
        return {"model": str(save_full_model(model, tokenizer, out / "model", dtype))}

    spec = MethodSpec(
        id="full_finetune", title="Full fine-tuning", shapes=(*SUPERVISED_SHAPES, *TEXT_SHAPES),
        default_learning_rate=DEFAULT_LEARNING_RATE, lr_range=LEARNING_RATE_RANGE, kind="full", config=config, save=save,
        loss_on=config.loss_on, card_tags=("full-fine-tuning",),
    )
    return run_training(plan, events, spec)
