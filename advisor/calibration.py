"""Probe calibrations: measured throughput and memory per hardware + method, kept in the user data dir.

``tunewise probe`` runs a few real training steps and stores what it measured here. Later quotes for
the same hardware and method use the measured MFU instead of the default and correct their memory
figure by the measured runtime overhead, and say so in their assumptions. The store is one JSON file,
``calibration.json`` in ``$TUNEWISE_DATA_DIR`` or platformdirs' ``user_data_dir("tunewise")``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError

DATA_DIR_ENV = "TUNEWISE_DATA_DIR"
STORE_NAME = "calibration.json"


class CalibrationError(TunewiseError):
    """The calibration store cannot be read or written."""


@dataclass(frozen=True)
class Calibration:
    """What one probe measured for a hardware + method, and the setup it measured it on."""

    hardware: str
    method: str
    mfu: float
    """Model FLOPs utilisation: tokens/s × FLOPs per token / (GPUs × peak)."""
    tokens_per_s: float
    step_time_s: float
    peak_memory_gb: float
    """Measured peak memory per device (GPU allocator peak, or process peak RSS on a CPU)."""
    predicted_memory_gb: float
    """What the uncalibrated formula predicted for the probed setup."""
    model: str
    params: int
    seq_len: int
    micro_batch: int
    steps: int
    peak_tflops: float
    """The hardware peak the MFU was computed against."""
    measured_at: str = ""
    precision: str = "bf16"
    """The precision the probed run computed in (``fp32`` on a CPU without AMX/AVX512-BF16)."""

    @property
    def memory_offset_gb(self) -> float:
        """Runtime overhead the formula misses (allocator, libraries, buffers), added to later quotes."""
        return self.peak_memory_gb - self.predicted_memory_gb

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def data_dir() -> Path:
    """tunewise's user data folder (``$TUNEWISE_DATA_DIR`` or the platform's user data dir)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("tunewise"))


def store_path() -> Path:
    return data_dir() / STORE_NAME


def _key(hardware: str, method: str) -> str:
    from tunewise.advisor.hardware import normalise

    return f"{normalise(hardware)}/{method}"


def _read() -> dict[str, Any]:
    path = store_path()
    if not path.exists():
        return {"calibrations": {}, "machine": {}}
    from tunewise.plugins.bounded_load import InputError, read_json

    try:
        raw = read_json(path, what="a calibration store")
    except (OSError, InputError) as exc:
        reason = exc.problem if isinstance(exc, InputError) else exc
        raise CalibrationError(f"{path}: unreadable calibration store ({reason}); delete it and probe again") from None
    if not isinstance(raw, dict):
        raise CalibrationError(f"{path}: expected a JSON object; delete it and probe again")
    raw.setdefault("calibrations", {})
    raw.setdefault("machine", {})
    return raw


def _write(store: dict[str, Any]) -> None:
    path = store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".calibration-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(store, fh, indent=2)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def save(calibration: Calibration) -> Path:
    """Store (replace) the calibration for its hardware + method; return the store's path."""
    store = _read()
    store["calibrations"][_key(calibration.hardware, calibration.method)] = calibration.to_dict()
    _write(store)
    return store_path()


def lookup(hardware: str, method: str) -> Calibration | None:
    """The stored calibration for ``hardware`` + ``method``, or None."""
    entry = _read()["calibrations"].get(_key(hardware, method))
    if entry is None:
        return None
    fields = {f.name for f in dataclasses.fields(Calibration)}
    try:
        return Calibration(**{k: v for k, v in entry.items() if k in fields})
    except TypeError as exc:
        raise CalibrationError(f"{store_path()}: calibration {hardware}/{method} is incomplete ({exc}); "
                               "probe again") from exc


def all_calibrations() -> list[Calibration]:
    out = []
    for key in _read()["calibrations"]:
        hardware, method = key.split("/", 1)
        cal = lookup(hardware, method)
        if cal is not None:
            out.append(cal)
    return out


def record_cpu_peak(tflops: float) -> None:
    """Remember this machine's measured bf16 matmul peak (the CPU catalogue entry uses it)."""
    store = _read()
    store["machine"]["cpu_peak_tflops"] = round(float(tflops), 4)
    _write(store)


def measured_cpu_peak() -> float | None:
    try:
        value = _read()["machine"].get("cpu_peak_tflops")
    except CalibrationError:
        return None
    return float(value) if value else None


def for_hardware(hardware: str) -> dict[str, dict[str, Any]]:
    """Stored calibrations of ``hardware`` by method id, in the form ``Hardware.calibration`` carries."""
    from tunewise.advisor.hardware import normalise

    wanted = normalise(hardware)
    out: dict[str, dict[str, Any]] = {}
    for cal in all_calibrations():
        if normalise(cal.hardware) == wanted:
            out[cal.method] = {"mfu": cal.mfu, "memory_offset_gb": round(cal.memory_offset_gb, 4),
                               "measured_at": cal.measured_at, "model": cal.model,
                               "tokens_per_s": cal.tokens_per_s, "seq_len": cal.seq_len,
                               "micro_batch": cal.micro_batch, "peak_tflops": cal.peak_tflops,
                               "precision": cal.precision}
    return out
