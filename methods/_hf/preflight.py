"""Memory preflight: estimate a run's peak memory before loading the model; refuse what cannot fit.

The estimate uses the advisor's formulas (:mod:`tunewise.plugins.costs`), adjusted to how this
core trains: weights and activations in fp32 when the placement computes in fp32, and a frozen
LoRA base stored in the compute dtype.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from tunewise.methods._hf.device import Placement, available_memory_gb
from tunewise.plugins import costs
from tunewise.plugins.errors import MethodNotRunnable
from tunewise.plugins.models import _safetensors_parameter_count
from tunewise.plugins.types import Hardware

SAFETY = 0.9
"""Share of the available memory a run may plan to use (the rest absorbs allocator slack)."""


@dataclass(frozen=True)
class MemoryEstimate:
    parts_gb: dict[str, float]
    available_gb: float
    fixes: tuple[str, ...] = ()

    @property
    def total_gb(self) -> float:
        return sum(self.parts_gb.values())

    @property
    def fits(self) -> bool:
        return self.total_gb <= self.available_gb * SAFETY


def estimate_memory(model_path: Path, placement: Placement, *, kind: str, seq_len: int, micro_batch: int,
                    recompute: bool, lora_rank: int = 8, quantized_base: bool = False,
                    available_gb: float | None = None) -> MemoryEstimate:
    """Peak memory of training ``model_path`` with these settings on ``placement``."""
    cfg = json.loads((model_path / "config.json").read_text())
    counted, _ = _safetensors_parameter_count(model_path)
    shape = costs.shape_from_config(cfg, counted or None, source=f"config.json at {model_path}")
    available = available_memory_gb(placement) if available_gb is None else available_gb
    hardware = Hardware(name=placement.device, peak_tflops=1.0, memory_gb=available,
                        kind="gpu" if placement.is_cuda else "cpu")
    setup = costs.TrainSetup(seq_len=seq_len, micro_batch=micro_batch, recompute=recompute,
                             lora_rank=lora_rank, quantized_base=quantized_base)
    train_kind = "lora" if kind == "lora" else "full"
    parts = costs.training_memory(shape, setup, hardware, train_kind)
    if placement.precision == "fp32":
        # The formulas assume 16-bit weights and activations; fp32 doubles both.
        parts["activations"] *= 2
        if train_kind == "lora" and not quantized_base:
            parts["weights"] += costs.BF16_BYTES * shape.params / costs.GB
    fixes: tuple[str, ...] = ()
    total = sum(parts.values())
    if total > available * SAFETY:
        fixes = tuple(costs.memory_fixes(shape, setup, replace(hardware, memory_gb=available * SAFETY), train_kind))
    return MemoryEstimate({k: round(v, 3) for k, v in parts.items()}, round(available, 2), fixes)


def check_fits(estimate: MemoryEstimate, placement: Placement) -> None:
    """Raise with what would fit when the estimate exceeds this device's memory."""
    if estimate.fits:
        return
    where = "free GPU memory" if placement.is_cuda else "available RAM"
    parts = ", ".join(f"{k} {v:.2f}" for k, v in estimate.parts_gb.items())
    fixes = [f for f in estimate.fixes if "QLoRA" not in f or placement.is_cuda]
    if not placement.is_cuda:
        fixes.append("QLoRA (4-bit base) on a CUDA GPU")
    raise MethodNotRunnable(
        f"this run needs about {estimate.total_gb:.1f} GB ({parts}) but {placement.device} has "
        f"{estimate.available_gb:.1f} GB of {where}. What would fit: " + "; ".join(fixes)
        + ". Set them in the plan (method lora, training.batch_size, training.gradient_checkpointing, "
        "training.seq_len)."
    )
