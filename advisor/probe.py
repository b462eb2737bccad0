"""Probe calibration: run a few real training steps here, measure, and store what quotes should assume.

:func:`run_probe` trains ``steps`` optimizer steps through the method plugin's own ``run`` on a
small synthetic data set, reads the ``progress`` events (tokens/s, peak memory), turns them into
an MFU and a memory overhead (:func:`calibration_from_measurement`) and stores them per hardware +
method (:mod:`tunewise.advisor.calibration`). On a CPU it first measures the bf16 matmul peak, the
denominator of the MFU there. The module imports torch only inside the functions that measure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunewise.advisor.calibration import Calibration
from tunewise.plugins import costs
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.types import Hardware

PROBE_METHODS = ("lora", "full_finetune", "continual_pretraining")
TRAIN_KIND: dict[str, costs.TrainKind] = {"lora": "lora", "full_finetune": "full", "continual_pretraining": "full"}
WARMUP_STEPS = 3
"""Steps left out of the throughput median: the first ones pay for allocation and kernel selection."""


class ProbeError(TunewiseError):
    """The probe could not run or measured nothing usable."""


def _openmp_threads_sleep() -> None:
    """Let OpenMP threads sleep between parallel regions, as training runs do (``methods._hf.device``).

    libgomp reads the setting once, when torch loads; the probe loads torch before the training core
    (to look for a GPU, to time matmuls), so without this its threads spin and, on shared cores, it
    measured 5x slower than the same run in a fresh process (bench/probe_accuracy.py: 5.3 vs 28 tok/s).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_trains_in_bf16() -> bool:
    """Whether training here computes in bf16: only CPUs with AMX or AVX512-BF16 multiply bf16 natively
    (elsewhere PyTorch emulates it far slower than fp32, so runs use fp32)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"amx_bf16", "avx512_bf16"} & set(flags))


def measure_cpu_peak_tflops(seconds: float = 1.5, size: int = 1024) -> float:
    """This CPU's matmul throughput in TFLOP/s in the precision a run uses here (bf16 with AMX or
    AVX512-BF16, else fp32): the best of several timed batches."""
    _openmp_threads_sleep()
    import torch

    dtype = torch.bfloat16 if cpu_trains_in_bf16() else torch.float32
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b  # warm up: thread pool, AMX tiles
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        reps = 8
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        elapsed = time.perf_counter() - start
        best = max(best, 2 * size**3 * reps / elapsed / 1e12)
    return best


def detect_hardware(name: str | None = None) -> Hardware:
    """The catalogue entry for this machine's accelerator (first CUDA device, else ``cpu``) or ``name``."""
    from tunewise.advisor.hardware import HardwareError, find_hardware, normalise

    if name:
        return find_hardware(name)
    _openmp_threads_sleep()
    try:
        import torch

        if torch.cuda.is_available():
            device = normalise(torch.cuda.get_device_name(0)).replace("nvidia", "")
            from tunewise.advisor.hardware import catalogue

            for hw in sorted(catalogue().values(), key=lambda h: -len(h.name)):
                keys = [normalise(hw.name), *(normalise(a) for a in hw.aliases)]
                if any(k and k in device for k in keys):
                    return find_hardware(hw.name)
            raise ProbeError(f"GPU {torch.cuda.get_device_name(0)!r} is not in the hardware catalogue; "
                             "pass --gpu NAME or register it through tunewise_register_hardware")
    except HardwareError as exc:
        raise ProbeError(str(exc)) from exc
    return find_hardware("cpu")


_WORDS = ("invoice", "refund", "account", "billing", "payment", "customer", "plan", "upgrade", "downgrade",
          "receipt", "tax", "credit", "card", "support", "ticket", "answer", "policy", "period", "monthly",
          "annual", "charge", "discount", "renewal", "cancel", "trial", "team", "seat", "usage", "limit", "export",
          "report", "currency", "address")


def write_probe_data(method: str, folder: Path, rows: int = 600) -> Path:
    """A deterministic synthetic data set of the shape ``method`` trains on (text for continual pretraining)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "probe.jsonl"
    lines = []
    for i in range(rows):
        # Short rows so that even a 64-token sequence keeps an answer; packing fills longer sequences.
        words = [_WORDS[(i * 7 + j * 13) % len(_WORDS)] for j in range(12 + i % 12)]
        sentence = " ".join(words)
        if method == "continual_pretraining":
            lines.append({"text": f"Note {i}. {sentence.capitalize()}."})
        else:
            lines.append({"instruction": f"Summarise note {i}: {sentence}", "output": " ".join(words[: 5 + i % 5])})
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return path


def calibration_from_measurement(
    *, method: str, model: str, shape: costs.ModelShape, hardware: Hardware, tokens_per_s: float,
    peak_memory_gb: float, seq_len: int, micro_batch: int, steps: int, recompute: bool = False,
    precision: str = "bf16",
) -> Calibration:
    """What a measurement means for quotes: MFU against the hardware peak, memory beyond the formula."""
    if tokens_per_s <= 0:
        raise ProbeError("the probe measured no throughput")
    kind = TRAIN_KIND.get(method, "full")
    per_token = costs.flops_per_token(shape, seq_len, kind, recompute)
    mfu = tokens_per_s * per_token / (hardware.peak_tflops * 1e12)
    setup = costs.TrainSetup(seq_len=seq_len, micro_batch=micro_batch, recompute=recompute, precision=precision)
    predicted = costs.total_gb(costs.training_memory(shape, setup, hardware, kind))
    tokens_per_step = seq_len * micro_batch
    return Calibration(
        hardware=hardware.name, method=method, mfu=float(f"{mfu:.6g}"), tokens_per_s=round(tokens_per_s, 2),
        step_time_s=round(tokens_per_step / tokens_per_s, 4), peak_memory_gb=round(peak_memory_gb, 4),
        predicted_memory_gb=round(predicted, 4), model=model, params=int(shape.params), seq_len=seq_len,
        micro_batch=micro_batch, steps=steps, peak_tflops=hardware.peak_tflops,
        measured_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), precision=precision,
    )


def predict_step(method: str, shape: costs.ModelShape, hardware: Hardware, seq_len: int,
                 micro_batch: int) -> tuple[float, float, dict[str, Any]]:
    """Predicted seconds per optimizer step and peak memory (GB) for a setup, as a quote computes them.

    Uses the calibration attached to ``hardware`` when there is one (see :func:`costs.training_quote`).
    """
    tokens = seq_len * micro_batch
    quote = costs.training_quote(method, shape, tokens, hardware,
                                 costs.TrainSetup(seq_len=seq_len, micro_batch=micro_batch),
                                 kind=TRAIN_KIND.get(method, "full"), auto_fit=False)
    return quote.wall_hours * 3600, quote.peak_memory_gb, dict(quote.assumptions)


@dataclass
class ProbeMeasurement:
    """What one probe run measured."""

    method: str
    model: str
    hardware: str
    steps: int
    seq_len: int
    micro_batch: int
    tokens_per_s: float
    """Median over the steps after :data:`WARMUP_STEPS`."""
    step_time_s: float
    peak_memory_gb: float
    per_step_tokens_per_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def measure(method: str, *, model: str | None = None, steps: int = 20, seq_len: int = 256, batch_size: int = 4,
            workdir: Path | None = None, on_event: Callable[[str, dict[str, Any]], None] | None = None,
            ) -> ProbeMeasurement:
    """Train ``steps`` real steps of ``method`` through its plugin and return the measurements (nothing stored)."""
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.models import resolve_model
    from tunewise.plugins.types import Plan

    if method not in PROBE_METHODS:
        raise ProbeError(f"probe runs {', '.join(PROBE_METHODS)}; got {method!r}")
    if steps <= WARMUP_STEPS:
        raise ProbeError(f"--steps must be more than {WARMUP_STEPS} (the first steps are warm-up)")
    ref = resolve_model(model)
    with tempfile.TemporaryDirectory(prefix="tunewise-probe-", dir=workdir) as tmp:
        data = write_probe_data(method, Path(tmp) / "data")
        plan = Plan(
            method=method, model=str(ref.path), data=(str(data),), output_dir=str(Path(tmp) / "run"),
            training={"max_steps": steps, "batch_size": batch_size, "seq_len": seq_len, "packing": True,
                      "generation_examples": 0, "eval_max_examples": 8, "save_steps": steps + 1,
                      "logging_steps": 1, "keep_checkpoints": 1},
        )
        progress: list[dict[str, Any]] = []
        ended: dict[str, Any] = {}

        def events(kind: str, **fields: Any) -> None:
            if kind == "progress":
                progress.append(fields)
            elif kind == "end":
                ended.update(fields)
            if on_event is not None:
                on_event(kind, fields)

        started = time.perf_counter()
        result = get_host().method(method).run(plan, events)
        wall = time.perf_counter() - started
    if result.status != "completed":
        raise ProbeError(f"the probe run {result.status}: {result.message}")
    rates = [float(p["tokens_per_s"]) for p in progress if p.get("tokens_per_s")]
    steady = rates[WARMUP_STEPS:] or rates
    if not steady:
        raise ProbeError("the probe run reported no progress events with tokens_per_s")
    tokens_per_s = statistics.median(steady)
    peaks = [float(p["peak_memory_gb"]) for p in progress if p.get("peak_memory_gb")]
    peak = float(ended.get("peak_memory_gb") or (max(peaks) if peaks else 0.0))
    return ProbeMeasurement(method=method, model=ref.name, hardware="", steps=len(rates), seq_len=seq_len,
                            micro_batch=batch_size, tokens_per_s=tokens_per_s,
                            step_time_s=seq_len * batch_size / tokens_per_s, peak_memory_gb=peak,
                            per_step_tokens_per_s=rates, wall_s=wall)


def run_probe(method: str, *, model: str | None = None, steps: int = 20, seq_len: int = 256, batch_size: int = 4,
              gpu: str | None = None, store: bool = True,
              on_event: Callable[[str, dict[str, Any]], None] | None = None) -> tuple[Calibration, ProbeMeasurement]:
    """Measure the CPU peak (on CPU), probe ``method``, and store the calibration (``store``)."""
    from tunewise.advisor import calibration

    hardware = detect_hardware(gpu)
    if hardware.kind == "cpu":
        peak = measure_cpu_peak_tflops()
        if store:
            calibration.record_cpu_peak(peak)
        hardware = dataclasses.replace(hardware, peak_tflops=peak)
    measured = measure(method, model=model, steps=steps, seq_len=seq_len, batch_size=batch_size, on_event=on_event)
    measured.hardware = hardware.name
    from tunewise.plugins.models import resolve_model

    shape = costs.resolve_shape(str(resolve_model(model).path), 0.1)
    cal = calibration_from_measurement(
        method=method, model=measured.model, shape=shape, hardware=hardware, tokens_per_s=measured.tokens_per_s,
        peak_memory_gb=measured.peak_memory_gb, seq_len=seq_len, micro_batch=batch_size, steps=measured.steps,
        # what precision: auto resolves to for the probed run (methods._hf.device.resolve_placement)
        precision="bf16" if hardware.kind != "cpu" or cpu_trains_in_bf16() else "fp32",
    )
    if store:
        calibration.save(cal)
    return cal, measured
