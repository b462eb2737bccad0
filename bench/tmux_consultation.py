"""Drive the real app in tmux through a consultation and save the recommendation screen as text.

Starts `tunewise` (the console script, no arguments) in a detached tmux session of 80x24, opens
saved answers from the welcome screen by typing their path, walks every interview topic with
ctrl+n (the data audit too, when the answers name a data path), waits for the recommendation
table and writes the captured pane to the output file. Skips with a message when tmux is missing.

Usage: python bench/tmux_consultation.py [--answers examples/answers/….yaml] [--out FILE]
       [--size 80x24]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SESSION = f"tunewise-bench-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def capture() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(*texts: str, timeout: float = 60.0) -> str:
    """The pane once any of ``texts`` shows on it; raises with the last capture otherwise."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture()
        if any(text in screen for text in texts):
            return screen
        time.sleep(0.2)
    raise TimeoutError(f"none of {texts} appeared within {timeout:.0f} s; the pane shows:\n{screen}")


def keys(*names: str, pause: float = 0.3) -> None:
    for name in names:
        tmux("send-keys", "-t", SESSION, name)
        time.sleep(pause)


def type_text(text: str) -> None:
    tmux("send-keys", "-t", SESSION, "-l", text)
    time.sleep(0.3)


def default_answers() -> Path:
    folder = REPO / "examples" / "answers"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise SystemExit(f"no answer files in {folder}; pass --answers FILE")
    return files[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tmux_recommendations.txt")
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--max-topics", type=int, default=20, help="stop pressing ctrl+n after this many screens")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("skipped: tmux is not installed (apt-get install -y tmux)")
        return 0
    answers = (args.answers or default_answers()).resolve()
    exe = shutil.which("tunewise") or str(Path(sys.executable).parent / "tunewise")
    width, height = args.size.split("x")
    data_dir = tempfile.mkdtemp(prefix="tunewise-tmux-")
    command = f"cd {shlex.quote(str(REPO))} && TUNEWISE_DATA_DIR={shlex.quote(data_dir)} {shlex.quote(exe)}"
    started = time.monotonic()
    tmux("new-session", "-d", "-s", SESSION, "-x", width, "-y", height, command)
    try:
        wait_for("Start a consultation")
        keys("o")
        wait_for("Open saved answers")
        type_text(str(answers))
        keys("Enter")
        for _ in range(args.max_topics):
            screen = wait_for("ctrl+n", "^n", "Recommendations", "Data audit", timeout=60)
            if "best first" in screen:
                break
            keys("C-n", pause=0.8)
        screen = wait_for("best first", timeout=120)
        time.sleep(1.0)  # let the detail pane fill in
        screen = capture()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(screen, encoding="utf-8")
        print(screen)
        print(f"captured {answers.name} -> recommendations in {time.monotonic() - started:.1f} s; "
              f"saved to {args.out}")
        keys("C-q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
