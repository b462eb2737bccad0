"""Time to first paint of the app (`tunewise` with no command) next to `python -c pass`, in one run.

Each sample starts the real console script in a pseudo-terminal of 80x24 and stops the clock when
the welcome screen's text has been written to the terminal; then it sends ctrl+q. The baseline
is `python -c pass` started the same way (spawn to exit). Samples alternate so machine noise
hits both alike.

Usage: python bench/tui_startup.py [--repeat 7]. Goal: first paint <= 1 s.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

MARKER = "Start a consultation"
ANSI = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])")


def _spawn(argv: list[str], env: dict[str, str]) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its terminal
        os.execve(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    return pid, fd


def _drain(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # the child closed the terminal
        return b""


def first_paint(exe: str, env: dict[str, str], limit: float = 30.0) -> float:
    """Seconds from spawn until the welcome screen's text reached the terminal."""
    started = time.perf_counter()
    pid, fd = _spawn([exe], env)
    seen = b""
    try:
        while time.perf_counter() - started < limit:
            seen += _drain(fd, 0.05)
            if MARKER.encode() in ANSI.sub(b"", seen):
                elapsed = time.perf_counter() - started
                os.write(fd, b"\x11")  # ctrl+q
                break
        else:
            raise RuntimeError(f"no welcome screen within {limit} s; output tail: {seen[-400:]!r}")
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline:
            _drain(fd, 0.05)
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return elapsed


def python_pass(env: dict[str, str]) -> float:
    started = time.perf_counter()
    pid, fd = _spawn([sys.executable, "-c", "pass"], env)
    try:
        while True:
            _drain(fd, 0.01)
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
    finally:
        os.close(fd)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    exe = shutil.which("tunewise") or str(Path(sys.executable).parent / "tunewise")
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "TERM": "xterm-256color", "TUNEWISE_DATA_DIR": data, "COLUMNS": "80", "LINES": "24"}
        first_paint(exe, env), python_pass(env)  # warm the page cache
        paints, base = [], []
        for _ in range(args.repeat):
            base.append(python_pass(env))
            paints.append(first_paint(exe, env))
    b, p = statistics.median(base), statistics.median(paints)
    print(f"python -c pass              median {b * 1000:7.1f} ms")
    print(f"tunewise first paint (80x24) median {p * 1000:7.1f} ms   (goal <= 1000 ms)  "
          f"min {min(paints) * 1000:.1f} ms  max {max(paints) * 1000:.1f} ms")
    print(f"ratio first paint/python    {p / b:.1f}x")
    return 0 if p <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
