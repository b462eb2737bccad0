"""Where and in which precision a run computes: device choice, autocast, memory readings."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tunewise.plugins.errors import MethodNotRunnable

GB = 1e9

# OpenMP worker threads that spin while waiting for work stall every parallel region when the cores
# are oversubscribed (other processes, a busy laptop, a CI runner): a spinning or descheduled thread
# holds the barrier. Measured on a 2-core machine (bench/results/training_speed.md): under a load of
# ~10, sleeping threads trained 6-10x faster; on idle cores they were 20-30 % slower (a wake-up per
# parallel region). So threads sleep only when the cores are already busy when the run starts. The
# policy changes no numerics. libgomp reads the variable once, when torch loads it, so this must run
# before the first ``import torch``; the training pipeline imports this module first. A user's value wins.


def _cores_oversubscribed() -> bool:
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except (OSError, AttributeError):
        return False


if _cores_oversubscribed():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX512-BF16).

    Without either, PyTorch emulates bf16 matmuls and they run one to two orders of magnitude slower
    than fp32 (measured on an AVX2-only EPYC: 0.001 vs 0.1 TFLOP/s), so ``auto`` picks fp32 there.
    Decided from flags, not a timing probe, so a resumed run always makes the same choice.
    """
    flags = cpu_flags()
    return bool({"amx_bf16", "avx512_bf16"} & flags)


@dataclass(frozen=True)
class Placement:
    """The resolved device and precision of a run."""

    device: str
    """``cpu`` or ``cuda:N``."""
    precision: str
    """``fp32``, ``bf16`` or ``fp16`` (the 16-bit ones are mixed: fp32 master weights, 16-bit compute)."""
    note: str = ""
    """Why this choice, or a warning about it (shown as a log event)."""

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def device_type(self) -> str:
        return "cuda" if self.is_cuda else "cpu"

    def describe(self) -> str:
        return f"{self.device} ({self.precision})"


def resolve_placement(device: str, precision: str) -> Placement:
    """Turn the plan's ``device`` and ``precision`` (``auto`` allowed) into a concrete placement."""
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda:0" if has_cuda else "cpu"
    elif device.startswith("cuda"):
        if not has_cuda:
            raise MethodNotRunnable(f"training.device is {device!r} but no CUDA GPU is visible to PyTorch "
                                    f"(torch {torch.__version__}); use device: auto or cpu")
        if device == "cuda":
            device = "cuda:0"
    note = ""
    if device.startswith("cuda"):
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            note = f"{precision} mixed precision on {torch.cuda.get_device_name(device)}"
        elif precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise MethodNotRunnable(f"training.precision bf16: {torch.cuda.get_device_name(device)} has no bf16 "
                                    "support; use fp16 or auto")
        return Placement(device, precision, note)
    fast_bf16 = cpu_has_fast_bf16()
    if precision == "auto":
        precision = "bf16" if fast_bf16 else "fp32"
        note = ("bf16 autocast (this CPU has AMX/AVX512-BF16)" if fast_bf16 else
                "fp32: this CPU has no AMX or AVX512-BF16, where bf16 matmuls are emulated and far slower")
    elif precision in ("bf16", "fp16") and not fast_bf16:
        note = (f"{precision} requested on a CPU without AMX/AVX512-BF16: 16-bit matmuls are emulated here "
                "and can be 10-100x slower than fp32; precision: auto picks fp32")
    return Placement("cpu", precision, note)


def autocast_dtype(placement: Placement) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(placement.precision)


@contextlib.contextmanager
def autocast(placement: Placement) -> Iterator[None]:
    """Mixed-precision compute for bf16/fp16 placements; nothing for fp32."""
    import torch

    dtype = autocast_dtype(placement)
    if dtype is None:
        yield
        return
    with torch.autocast(placement.device_type, dtype=dtype):
        yield


def process_peak_rss_gb() -> float:
    """Peak resident memory of this process so far (GB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / GB if sys.platform == "darwin" else peak * 1024 / GB


def peak_memory_gb(placement: Placement) -> float:
    """Peak memory the run used: CUDA memory allocated on GPUs, resident memory on CPU."""
    if placement.is_cuda:
        import torch

        return torch.cuda.max_memory_allocated(placement.device) / GB
    return process_peak_rss_gb()


def available_memory_gb(placement: Placement) -> float:
    """Memory a run may still use on this device: free GPU memory, or available RAM on CPU."""
    if placement.is_cuda:
        import torch

        free, _total = torch.cuda.mem_get_info(placement.device)
        return free / GB
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / GB
    except OSError:
        pass
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    return pages * os.sysconf("SC_PAGE_SIZE") / GB if pages else float("inf")


def device_description(placement: Placement) -> str:
    """One line naming the hardware (for the start event and the report)."""
    if placement.is_cuda:
        import torch

        return f"{torch.cuda.get_device_name(placement.device)} ({placement.precision})"
    import torch

    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads ({placement.precision})"
