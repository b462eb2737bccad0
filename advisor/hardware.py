"""The hardware catalogue: accelerators tunewise can quote for, from ``data/hardware.yaml`` and plugins.

The built-in entries are registered by the ``default_hardware`` plugin through the same
``tunewise_register_hardware`` hook a third-party package uses. Names match case-insensitively and
ignore spaces, dashes and underscores, aliases included (``h100`` = ``H100-SXM``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.types import Hardware

CATALOGUE_FILE = Path(__file__).with_name("data") / "hardware.yaml"


class HardwareError(TunewiseError):
    """An unknown accelerator name or a malformed catalogue entry."""


def normalise(name: str) -> str:
    """The matching key of a hardware name: lower case without spaces, dashes and underscores."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def _number(entry: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = entry.get(key, default)
    # nan passes "< 0"; inf and 1e300 overflow every quote: a finite number up to 1e9 (no device comes close)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e9:
        raise HardwareError(f"{where}.{key}: must be a number from 0 to 1e9, got {value!r}")
    return float(value)


def hardware_from_entry(entry: Any, where: str) -> Hardware:
    """One catalogue entry (a YAML mapping) as a :class:`Hardware`; errors name ``where.field``."""
    if not isinstance(entry, Mapping):
        raise HardwareError(f"{where}: must be a mapping with name, peak_tflops, memory_gb …")
    known = {"name", "peak_tflops", "memory_gb", "memory_bandwidth_gbps", "usd_per_hour", "aliases", "source", "kind"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise HardwareError(f"{where}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HardwareError(f"{where}.name: must be a non-empty string")
    price = entry.get("usd_per_hour", [0, 0])
    if not (isinstance(price, list) and len(price) == 2 and all(isinstance(p, (int, float)) for p in price)
            and 0 <= price[0] <= price[1] <= 1e9):
        raise HardwareError(f"{where}.usd_per_hour: must be [low, high] with 0 ≤ low ≤ high, got {price!r}")
    kind = entry.get("kind", "gpu")
    if kind not in ("gpu", "cpu"):
        raise HardwareError(f"{where}.kind: must be gpu or cpu, got {kind!r}")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list):
        raise HardwareError(f"{where}.aliases: must be a list of names")
    peak = _number(entry, "peak_tflops", where)
    if peak <= 0:
        raise HardwareError(f"{where}.peak_tflops: must be > 0")
    return Hardware(
        name=name.strip(),
        peak_tflops=peak,
        memory_gb=_number(entry, "memory_gb", where),
        usd_per_hour_low=float(price[0]),
        usd_per_hour_high=float(price[1]),
        aliases=tuple(str(a) for a in aliases),
        source=str(entry.get("source", "")),
        kind=kind,
        memory_bandwidth_gbps=_number(entry, "memory_bandwidth_gbps", where, 0.0),
    )


def load_catalogue_file(path: Path = CATALOGUE_FILE) -> list[Hardware]:
    """Read a catalogue YAML file (a list of entries)."""
    import yaml

    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise HardwareError(f"{path}: must be a list of hardware entries")
    return [hardware_from_entry(e, f"{path.name}[{i}]") for i, e in enumerate(entries)]


def host_memory_gb() -> float:
    """This machine's RAM in GB (cgroup limit when lower), read without extra packages."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0.0
    limit_file = Path("/sys/fs/cgroup/memory.max")
    try:
        raw = limit_file.read_text().strip()
        if raw.isdigit():
            total = min(total, int(raw))
    except OSError:
        pass
    return round(total / 1e9, 1)


def catalogue() -> dict[str, Hardware]:
    """Every known accelerator by name, built-in first; a later entry with a taken name or alias is skipped."""
    from tunewise.plugins.manager import get_host

    found: dict[str, Hardware] = {}
    taken: set[str] = set()
    for _plugin, hw in get_host().collect("tunewise_register_hardware"):
        if not isinstance(hw, Hardware):
            continue
        keys = {normalise(hw.name), *(normalise(a) for a in hw.aliases)}
        if keys & taken:
            continue
        taken |= keys
        found[hw.name] = _localised(hw)
    return found


def _localised(hw: Hardware) -> Hardware:
    """The CPU entry with this machine's RAM and, once probed, its measured peak."""
    if hw.kind != "cpu":
        return hw
    changes: dict[str, Any] = {}
    if hw.memory_gb == 0:
        changes["memory_gb"] = host_memory_gb()
    from tunewise.advisor.calibration import measured_cpu_peak

    measured = measured_cpu_peak()
    if measured:
        changes["peak_tflops"] = measured
        changes["source"] = (f"measured by `tunewise probe` on this machine ({measured:.3g} TFLOP/s matmul in the "
                             "precision runs use here)")
    return dataclasses.replace(hw, **changes) if changes else hw


def with_calibration(hw: Hardware) -> Hardware:
    """``hw`` carrying the probe calibrations stored for it (quotes then use measured figures)."""
    from tunewise.advisor.calibration import for_hardware

    stored = for_hardware(hw.name)
    return dataclasses.replace(hw, calibration=stored) if stored else hw


def find_hardware(name: str) -> Hardware:
    """The catalogue entry called ``name`` (or one of its aliases), with its stored calibrations.

    An unknown name is an error listing the known ones.
    """
    wanted = normalise(name)
    entries = catalogue()
    for hw in entries.values():
        if wanted in {normalise(hw.name), *(normalise(a) for a in hw.aliases)}:
            return with_calibration(hw)
    raise HardwareError(f"unknown hardware {name!r}; known: {', '.join(entries)} "
                        "(plugins add more through tunewise_register_hardware)")
