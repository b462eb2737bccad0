"""Guardrails of a training run: disk room before a checkpoint, finite weights, a time and money
budget, and advice after running out of memory.

- :func:`check_disk_room`: before a checkpoint is written its size (the tensors about to be saved:
  trainable weights, optimizer state, RNG states) is compared with the folder's free space minus
  ``training.min_free_disk_gb``; when short, :class:`DiskSpaceError` stops the run before a byte is
  written, so the earlier checkpoints stay intact.
- :func:`non_finite_tensors`: a checkpoint or final model whose weights hold NaN/inf is refused
  (:class:`NonFiniteWeightsError`); the loss can stay finite while a weight the batch never touched
  is not, so the weights themselves are checked.
- :class:`Budget`: ``training.max_hours`` / ``training.max_usd`` over the run's wall-clock time,
  summed across resumes. :class:`BudgetedEvents` wraps the run's event sink and raises the sink's
  ``stop_requested`` flag, which the training loop reads after every step: it then writes a
  checkpoint and ends (``--resume`` with a higher limit continues).
- :func:`oom_advice`: what to change, computed from the plan's own values.

No torch at import time.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.methods._hf.settings import TrainingSettings
from tunewise.plugins.errors import TunewiseError

GB = 1e9
HEADER_ALLOWANCE = 4096
"""Bytes added per safetensors file for its JSON header (a few hundred per tensor in practice)."""
BUDGET_KEY = "budget_wall_s"
"""Key in a checkpoint's ``loop.extra`` holding the wall-clock seconds the run had used by then."""


class DiskSpaceError(TunewiseError):
    """Too little free disk space for the next checkpoint (or the final model)."""

    def __init__(self, message: str, folder: Path, needed: int, free: int) -> None:
        super().__init__(message)
        self.folder = folder
        self.needed = needed
        self.free = free


class NonFiniteWeightsError(TunewiseError):
    """Weights about to be saved hold NaN or inf."""


# -- disk ------------------------------------------------------------------------------------------


def tensor_bytes(*groups: Mapping[str, Any]) -> int:
    """Bytes the tensors of ``groups`` take in safetensors files (data plus a header allowance each)."""
    total = 0
    for group in groups:
        total += HEADER_ALLOWANCE + sum(128 + len(name) for name in group)
        total += sum(int(t.numel()) * int(t.element_size()) for t in group.values())
    return total


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest existing parent (disk_usage needs a path that exists)."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def _size(n: float) -> str:
    return f"{n / GB:.2f} GB" if n >= 0.01 * GB else f"{n / 1e6:.1f} MB"


def check_disk_room(folder: Path, needed: int, min_free_gb: float, what: str = "the next checkpoint") -> None:
    """Raise :class:`DiskSpaceError` unless ``needed`` bytes fit in ``folder`` leaving ``min_free_gb`` free."""
    free = shutil.disk_usage(_existing(folder)).free
    margin = int(min_free_gb * GB)
    if free - needed >= margin:
        return
    raise DiskSpaceError(
        f"not enough disk space in {folder} for {what}: it needs about {_size(needed)} ({needed:,} bytes) "
        f"and training.min_free_disk_gb keeps {min_free_gb:g} GB free, but only {_size(free)} ({free:,} bytes) "
        "are free. Nothing of it was written and the earlier checkpoints are intact; free some space (or lower "
        "training.min_free_disk_gb or training.keep_checkpoints) and continue with --resume.",
        Path(folder), needed, free,
    )


# -- finite weights --------------------------------------------------------------------------------


def non_finite_tensors(tensors: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors in ``tensors`` that hold NaN or inf."""
    import torch

    bad = []
    for name, tensor in tensors.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def refuse_non_finite(tensors: Mapping[str, Any], where: Path | str) -> None:
    """Raise :class:`NonFiniteWeightsError` naming the tensors of ``tensors`` that are not finite."""
    bad = non_finite_tensors(tensors)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteWeightsError(
            f"{len(bad)} weight tensor(s) hold NaN or inf ({shown}); refusing to write them to {where}")


# -- budget ----------------------------------------------------------------------------------------


def hardware_price(name: str) -> tuple[float, str]:
    """(usd_per_hour_high, catalogue name) of the hardware called ``name`` (aliases too)."""
    import re

    from tunewise.plugins.manager import get_host
    from tunewise.plugins.types import Hardware

    def key(text: str) -> str:
        return re.sub(r"[\s_\-]+", "", text.strip().lower())

    known = [hw for _plugin, hw in get_host().collect("tunewise_register_hardware") if isinstance(hw, Hardware)]
    for hw in known:
        if key(name) in {key(hw.name), *(key(a) for a in hw.aliases)}:
            return hw.usd_per_hour_high, hw.name
    raise TunewiseError(f"training.budget_hardware: unknown hardware {name!r}; known: "
                        + ", ".join(hw.name for hw in known))


@dataclass
class Budget:
    """A run's time and money limits over its wall-clock time, summed across resumes."""

    max_hours: float | None
    max_usd: float | None
    usd_per_hour: float
    price_source: str
    spent_before_s: float = 0.0
    """Wall-clock seconds of the run's earlier processes (from the checkpoint resumed from)."""
    started: float = 0.0
    """``time.time()`` when this process's run began."""

    @classmethod
    def from_settings(cls, settings: TrainingSettings, started: float, spent_before_s: float = 0.0) -> Budget:
        price, source = 0.0, "no price"
        if settings.usd_per_hour is not None:
            price, source = float(settings.usd_per_hour), "training.usd_per_hour"
        elif settings.budget_hardware:
            price, name = hardware_price(settings.budget_hardware)
            source = f"{name}'s high catalogue price (usd_per_hour_high)"
        return cls(settings.max_hours, settings.max_usd, price, source, spent_before_s, started)

    @property
    def active(self) -> bool:
        return self.max_hours is not None or self.max_usd is not None

    def elapsed_s(self) -> float:
        return self.spent_before_s + max(0.0, time.time() - self.started)

    def spent_usd(self) -> float:
        return self.elapsed_s() / 3600 * self.usd_per_hour

    def exceeded(self) -> str | None:
        """Which limit is reached, as a sentence, or None."""
        hours = self.elapsed_s() / 3600
        if self.max_hours is not None and hours >= self.max_hours:
            return f"training.max_hours {self.max_hours:g} reached ({hours:.4g} h used)"
        if self.max_usd is not None and self.spent_usd() >= self.max_usd:
            return (f"training.max_usd {self.max_usd:g} reached (${self.spent_usd():.4g} = {hours:.4g} h x "
                    f"${self.usd_per_hour:g}/h from {self.price_source})")
        return None


class BudgetedEvents:
    """The run's event sink plus a budget: ``stop_requested`` turns true once a limit is reached.

    The training loop reads ``stop_requested`` after every optimizer step, then checkpoints and ends;
    ``state`` is the loop's own :class:`~tunewise.methods._hf.loop.LoopState`, so the seconds used
    so far travel in that checkpoint.
    """

    def __init__(self, inner: Callable[..., Any], budget: Budget, state: Any) -> None:
        self._inner = inner
        self.budget = budget
        self.state = state
        self.reason: str | None = None
        """Set once the budget stopped the run."""

    def __call__(self, kind: str, /, **fields: Any) -> Any:
        return self._inner(kind, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def stop_requested(self) -> bool:
        self.state.extra[BUDGET_KEY] = round(self.budget.elapsed_s(), 3)
        if self.reason is None:
            self.reason = self.budget.exceeded()
        return self.reason is not None or bool(getattr(self._inner, "stop_requested", False))


# -- out of memory ---------------------------------------------------------------------------------


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA OOM, a CPU allocator failure, MemoryError)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text


def oom_advice(settings: TrainingSettings, *, method: str, lora: bool, quantized: bool, is_cuda: bool) -> list[str]:
    """What to change after running out of memory, from this plan's own values (most effective first)."""
    advice = []
    if settings.batch_size > 1:
        half = max(1, settings.batch_size // 2)
        advice.append(f"training.batch_size {settings.batch_size} -> {half} with training.grad_accum "
                      f"{settings.grad_accum} -> {math.ceil(settings.grad_accum * settings.batch_size / half)} "
                      "(same effective batch)")
    if not settings.gradient_checkpointing:
        advice.append("training.gradient_checkpointing: true (recompute activations: much less memory, ~30% slower)")
    if settings.seq_len > 128:
        advice.append(f"training.seq_len {settings.seq_len} -> {settings.seq_len // 2} (if the data allows)")
    if not lora:
        advice.append(f"method lora instead of {method} (trains small adapters on a frozen base)")
    if not quantized:
        advice.append("method qlora (a 4-bit base model) on this GPU" if is_cuda else "QLoRA (4-bit base) on a CUDA GPU")
    return advice
