"""Data-parallel strategies: what each keeps on every device (no torch).

One table serves the estimator (:func:`tunewise.plugins.costs.training_memory`) and the runtime
(``tunewise.methods._hf.distributed``), so a quote for ``gpus: 8, strategy: fsdp`` assumes exactly
the per-device split the run then makes:

==================  ===============  ==========  ================
strategy            weights          gradients   optimizer states
==================  ===============  ==========  ================
``ddp``             full copy        full copy   full copy
``deepspeed_zero2`` full copy        1/N         1/N
``deepspeed_zero3`` 1/N              1/N         1/N
``fsdp``            1/N              1/N         1/N   (FULL_SHARD, the ZeRO-3 equivalent)
==================  ===============  ==========  ================

Activations are never sharded: each device keeps those of its own micro-batch. Every strategy
all-reduces (or reduce-scatters) gradients each optimizer step, so N devices process N micro-batches
per step and time scales as 1/N in the estimate (communication is assumed hidden behind compute).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, get_args

Strategy = Literal["auto", "ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)[1:]
"""The concrete strategies (``auto`` resolves to one of them with :func:`default_strategy`)."""
Backend = Literal["auto", "gloo", "nccl"]
BACKENDS: tuple[str, ...] = get_args(Backend)
DEEPSPEED = ("deepspeed_zero2", "deepspeed_zero3")


@dataclass(frozen=True)
class StateFractions:
    """Share of the model's training state each device holds (1.0 = a full copy)."""

    weights: float
    gradients: float
    optimizer: float


def state_fractions(strategy: str, devices: int) -> StateFractions:
    """Per-device shares of weights, gradients and optimizer states for ``strategy`` on ``devices``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    n = max(1, int(devices))
    if n == 1 or strategy == "ddp":
        return StateFractions(1.0, 1.0, 1.0)
    if strategy == "deepspeed_zero2":
        return StateFractions(1.0, 1.0 / n, 1.0 / n)
    return StateFractions(1.0 / n, 1.0 / n, 1.0 / n)


@dataclass(frozen=True)
class DistributedSettings:
    """The ``distributed:`` section of a plan: how many processes train together and how they share state."""

    strategy: Strategy = field(
        default="auto",
        metadata={"help": "auto (fsdp for full training, ddp for LoRA), ddp (full copy per device), fsdp (shard "
                          "weights, gradients and optimizer states), deepspeed_zero2 or deepspeed_zero3 (need the "
                          "deepspeed package and CUDA GPUs)"},
    )
    processes: int = field(
        default=1,
        metadata={"help": "processes training together, one per GPU (or CPU processes); "
                          "tunewise run --processes N overrides it"},
    )
    backend: Backend = field(
        default="auto", metadata={"help": "collective backend: auto (nccl on CUDA, gloo on CPU), gloo or nccl"}
    )

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.strategy != "auto" and self.strategy not in STRATEGIES:
            out.append(("strategy", f"must be auto or one of {', '.join(STRATEGIES)}, got {self.strategy!r}"))
        if not isinstance(self.processes, int) or isinstance(self.processes, bool) or self.processes < 1:
            out.append(("processes", f"must be a whole number >= 1, got {self.processes!r}"))
        if self.backend not in BACKENDS:
            out.append(("backend", f"must be one of {', '.join(BACKENDS)}, got {self.backend!r}"))
        return out

    def resolved_strategy(self, kind: str) -> str:
        """The concrete strategy for a run of training ``kind`` (``full``, ``lora`` …)."""
        return default_strategy(kind) if self.strategy == "auto" else self.strategy


def default_strategy(kind: str) -> str:
    """The strategy a run uses when its plan names none (``auto``), by training kind.

    Full training (and DPO) shards everything (``fsdp``): its states are 16 B/param. LoRA replicates
    (``ddp``): the adapters' states are tiny and a replicated frozen base is not re-gathered every step.
    """
    return "ddp" if kind == "lora" else "fsdp"


def world_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun / ``accelerate launch`` set them; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE") or 1)
    rank = int(os.environ.get("RANK") or 0)
    local = int(os.environ.get("LOCAL_RANK") or rank)
    return rank, world, local


def events_file_name() -> str:
    """Where this process writes its run events: rank 0 the run's ``events.jsonl``, others their own file."""
    rank, world, _ = world_from_env()
    return "events.jsonl" if world == 1 or rank == 0 else f"events.rank-{rank}.jsonl"
