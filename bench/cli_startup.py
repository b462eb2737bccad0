"""Wall time of `tunewise --help` next to `python -c pass`, measured alternately in one run.

Usage: python bench/cli_startup.py [--repeat 15]. Goal: tunewise --help <= 0.3 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _time(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("tunewise") or str(Path(sys.executable).parent / "tunewise")
    baseline_cmd = [sys.executable, "-c", "pass"]
    help_cmd = [exe, "--help"]
    _time(baseline_cmd), _time(help_cmd)  # warm the page cache
    base, helps = [], []
    for _ in range(args.repeat):  # interleaved so machine noise hits both alike
        base.append(_time(baseline_cmd))
        helps.append(_time(help_cmd))
    b, h = statistics.median(base), statistics.median(helps)
    print(f"python -c pass     median {b * 1000:7.1f} ms")
    print(f"tunewise --help    median {h * 1000:7.1f} ms   (goal <= 300 ms)")
    print(f"ratio help/python  {h / b:.2f}x")
    return 0 if h <= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
