"""Helpers shared by tests (importable because pyproject puts tests/ on pytest's pythonpath)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``tunewise ARGS`` in a fresh interpreter (the way users run it)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tunewise.advisor.cli", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=timeout,
    )


def write_distribution(site: Path, dist_name: str, modules: dict[str, str], entry_points: dict[str, str],
                       version: str = "1.0") -> Path:
    """Write a real installed distribution (modules + dist-info with entry points) into ``site``.

    importlib.metadata discovers it exactly like a pip-installed package once ``site`` is on
    sys.path (PYTHONPATH for a subprocess).
    """
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = ["[tunewise]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (info / "RECORD").write_text("")
    return site
