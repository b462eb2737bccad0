"""Running a LoRA / QLoRA plan: adapters train on a frozen (optionally 4-bit) base model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.plugins.types import EventSink, Plan, RunResult

DEFAULT_LEARNING_RATE = 2e-4
LEARNING_RATE_RANGE = (5e-5, 2e-3)
"""The rates recipes use for this method (the default 2e-4 inside; the high end for small models),
named by the bake-off when a run at a rate outside them is not better (as in advisor/plan_sizing.py)."""


def run(plan: Plan, events: EventSink) -> RunResult:
    from tunewise.methods._hf.device import Placement
    from tunewise.methods._hf.encoding import SUPERVISED_SHAPES, TEXT_SHAPES
    from tunewise.methods._hf.modeling import base_dtype_name
    from tunewise.methods._hf.pipeline import MethodSpec, method_config, run_training
    from tunewise.methods._hf.saving import save_adapter, save_merged
    from tunewise.methods._hf.settings import TrainingSettings
    from tunewise.methods.lora.config import LoraConfig
    from tunewise.plugins.models import EMBEDDED_MODEL, is_embedded, resolve_model

    config = method_config(LoraConfig, plan.config)

    def prepare(model: Any, placement: Placement, settings: TrainingSettings) -> Any:
        import torch
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        peft_config = PeftLoraConfig(
            r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
            target_modules=config.peft_target_modules, bias=config.bias, task_type="CAUSAL_LM",
        )
        torch.manual_seed(settings.seed)  # adapter initialisation
        return get_peft_model(model, peft_config)

    def save(model: Any, tokenizer: Any, out: Path) -> dict[str, str]:
        adapter = save_adapter(model, tokenizer, out / "adapter")
        artifacts = {"adapter": str(adapter)}
        if config.merge:
            base = resolve_model(plan.model).path  # looked up only now: data problems are reported first
            merged = save_merged(base, adapter, tokenizer, out / "merged", base_dtype_name(base))
            artifacts["merged"] = str(merged)
        return artifacts

    qlora = config.quantization == "4bit"
    spec = MethodSpec(
        id="lora", title="QLoRA" if qlora else "LoRA", shapes=(*SUPERVISED_SHAPES, *TEXT_SHAPES),
        default_learning_rate=DEFAULT_LEARNING_RATE, lr_range=LEARNING_RATE_RANGE, kind="lora", config=config, save=save, prepare=prepare,
        loss_on=config.loss_on, frozen_base=True, quantize_4bit=qlora, lora_rank=config.r, library="peft",
        card_tags=("lora", "qlora") if qlora else ("lora",), base_model_for_card=EMBEDDED_MODEL if is_embedded(plan.model) else str(plan.model),
    )
    return run_training(plan, events, spec)
