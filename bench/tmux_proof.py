"""Drive the real app in tmux from welcome to a proven result, and save every screen on the way.

welcome → consultation (saved answers with a data file) → recommendations → pilot of the top two
→ plan of the top method → run → Results with the bake-off → Try it (one prompt, base vs result).
Each step's pane is captured as text into one file, headed by the step's name and the time it was
reached. With ``--run DIR`` only the last part is driven (`tunewise --run DIR`: the Run screen of a
finished run, its Results and Try it), e.g. to capture another terminal size without training again.

The default answers are examples/answers/ticket-routing.yaml pointed at examples/data/support_intents.jsonl
on this CPU. Skips with a message when tmux is missing.

    python bench/tmux_proof.py --size 80x24 --out bench/results/tmux_proof_80x24.txt
    python bench/tmux_proof.py --size 120x40 --run /tmp/proof/runs/lora --out bench/results/tmux_proof_120x40.txt
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SESSION = f"tunewise-proof-{os.getpid()}"
PROMPT = "My invoice shows a charge twice this month, can you refund one?"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def capture() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(*texts: str, timeout: float = 60.0, pattern: str | None = None) -> str:
    """The pane once any of ``texts`` (or ``pattern``) shows on it; raises with the last capture otherwise."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture()
        if any(text in screen for text in texts) or (pattern and re.search(pattern, screen)):
            return screen
        time.sleep(0.5)
    raise TimeoutError(f"none of {texts or pattern} appeared within {timeout:.0f} s; the pane shows:\n{screen}")


def keys(*names: str, pause: float = 0.4) -> None:
    for name in names:
        tmux("send-keys", "-t", SESSION, name)
        time.sleep(pause)


def type_text(text: str) -> None:
    tmux("send-keys", "-t", SESSION, "-l", text)
    time.sleep(0.4)


class Captures:
    """Screens in the order reached, written to one text file as they come (a crash keeps what was seen)."""

    def __init__(self, out: Path, started: float) -> None:
        self.out, self.started = out, started
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("", encoding="utf-8")

    def add(self, step: str, screen: str | None = None) -> None:
        screen = capture() if screen is None else screen
        head = f"=== {step} (at {time.monotonic() - self.started:.0f} s)"
        with open(self.out, "a", encoding="utf-8") as fh:
            fh.write(f"{head}\n{screen.rstrip()}\n\n")
        print(head, flush=True)


def answers_file(folder: Path) -> Path:
    """ticket-routing.yaml, pointed at the example intents and this CPU."""
    text = (REPO / "examples" / "answers" / "ticket-routing.yaml").read_text(encoding="utf-8")
    data = REPO / "examples" / "data" / "support_intents.jsonl"
    text = text.replace("  labeled_examples: 8000\n", f"  labeled_examples: 120\n  path: {data}\n")
    text = re.sub(r"^model: .*$", "model: {name: null, params_b: 0.135}", text, flags=re.M)
    text = re.sub(r"^hardware: .*$", "hardware: {gpu: cpu, gpus: 1}", text, flags=re.M)
    path = folder / "ticket-routing-here.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def consult_pilot_plan_run(shots: Captures, answers: Path, run_timeout: float) -> None:
    wait_for("Start a consultation")
    shots.add("welcome")
    keys("o")
    wait_for("Open saved answers")
    type_text(str(answers))
    keys("Enter")
    for _ in range(20):
        screen = wait_for("^n", "ctrl+n", "best first", timeout=120)
        if "best first" in screen:
            break
        if "Data audit" in screen or "audit" in screen.lower():
            shots.add("data audit", screen)
        keys("C-n", pause=1.0)
    wait_for("best first", timeout=180)
    time.sleep(1.5)
    shots.add("recommendations")
    keys("p")
    wait_for("pilot:", timeout=60)
    time.sleep(20)
    shots.add("pilot running")
    wait_for("Pilot (", "Pilot cancelled", "pilot failed", timeout=40 * 60)
    time.sleep(1.0)
    shots.add("pilot done, re-ranked")
    keys("Enter")
    wait_for("Plan:", timeout=60)
    time.sleep(1.0)
    shots.add("plan")
    keys("C-r")
    wait_for("evaluating", "training", "step", timeout=300)
    time.sleep(5)
    shots.add("run: first phase")
    wait_for("step", pattern=r"step \d+/\d+", timeout=30 * 60)
    time.sleep(3)
    shots.add("run: training")
    wait_for("press v", "completed", "Completed", "failed", timeout=run_timeout)
    time.sleep(2)
    shots.add("run: finished")


def results_and_try(shots: Captures, from_run_screen: bool) -> None:
    if from_run_screen:
        wait_for("completed", "Completed", "failed", "cancelled", timeout=120)
        time.sleep(2)
        shots.add("run screen")
    keys("v")
    wait_for("Bake-off", "bake-off", "beats the base", "not better", timeout=120)
    time.sleep(1.5)
    shots.add("results with the bake-off")
    keys("t")
    wait_for("Try it", "prompt", timeout=120)
    time.sleep(1.0)
    type_text(PROMPT)
    keys("Enter")
    time.sleep(5)
    shots.add("try it: answering")
    wait_for("done", "tokens/s", "finished", timeout=600)
    time.sleep(2)
    shots.add("try it: both answers")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=Path, help="answers YAML (default: ticket routing on the example data)")
    parser.add_argument("--run", type=Path, help="only open this finished run: Run screen, Results, Try it")
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--run-timeout-min", type=float, default=40.0)
    parser.add_argument("--workdir", type=Path, help="where plans and runs go (default: a temporary folder, kept)")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("skipped: tmux is not installed (apt-get install -y tmux)")
        return 0
    out = args.out or REPO / "bench" / "results" / f"tmux_proof_{args.size}.txt"
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="tunewise-proof-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("tunewise") or str(Path(sys.executable).parent / "tunewise")
    width, height = args.size.split("x")
    data_dir = workdir / "data"
    tail = f" --run {shlex.quote(str(args.run.resolve()))}" if args.run else ""
    command = (f"cd {shlex.quote(str(workdir))} && TUNEWISE_DATA_DIR={shlex.quote(str(data_dir))} "
               f"{shlex.quote(exe)}{tail}")
    started = time.monotonic()
    shots = Captures(out, started)
    tmux("new-session", "-d", "-s", SESSION, "-x", width, "-y", height, command)
    try:
        if args.run:
            results_and_try(shots, from_run_screen=True)
        else:
            answers = (args.answers or answers_file(workdir)).resolve()
            consult_pilot_plan_run(shots, answers, args.run_timeout_min * 60)
            results_and_try(shots, from_run_screen=False)
        keys("C-q")
        print(f"done in {time.monotonic() - started:.0f} s; screens in {out}; plans and runs in {workdir}")
    except TimeoutError as exc:
        shots.add("timed out here")
        print(f"stopped: {str(exc).splitlines()[0]}; screens so far in {out}", file=sys.stderr)
        return 1
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
