"""Run every benchmark under bench/ and regenerate BENCHMARKS.md from what they print.

Each benchmark runs in its own process, one after the other (they would distort each other's timings
side by side), with quick settings by default or its own longer defaults with ``--full``. The report
gives, per benchmark, what its figures are, the exact command, its wall time and exit status, the
figures it printed (progress bars dropped) and its ``RESULT {json}`` line when it prints one; plus
the machine (CPU model, cores, RAM, torch version, load average before and after) and the date.
GPU figures measured earlier on an H100 are included from ``bench/results/gpu_h100.md``, marked as such.

    python bench/run_all.py                         # quick settings, writes BENCHMARKS.md
    python bench/run_all.py --full                  # each benchmark's own (longer) defaults
    python bench/run_all.py --only mfu,cli_startup --output /tmp/B.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
GPU_RESULTS = BENCH / "results" / "gpu_h100.md"
TAIL_LINES = 60


@dataclass(frozen=True)
class Benchmark:
    name: str
    what: str
    quick: tuple[str, ...] = ()
    full: tuple[str, ...] = ()
    timeout_s: int = 3600
    needs: str = field(default="", metadata={"help": "an executable the benchmark needs (skipped without it)"})


BENCHMARKS = (
    Benchmark("cli_startup", "Wall time of `tunewise --help` next to `python -c pass`, alternated in one run "
                             "(goal ≤ 0.3 s).", quick=("--repeat", "5")),
    Benchmark("tui_startup", "Time to the welcome screen's first paint of the app in an 80×24 pseudo-terminal, "
                             "next to `python -c pass` (goal ≤ 1 s).", quick=("--repeat", "3")),
    Benchmark("estimator_accuracy", "tunewise's quotes (default MFU, nothing fitted) against published "
                                    "pretraining GPU-hours, fine-tuning throughput and peak memory; signed error "
                                    "per figure and the median absolute error (goal ≤ 20 %)."),
    Benchmark("mfu", "This device's matmul peak and tunewise's training throughput in the same run, as model "
                     "FLOPs utilisation (6·N·tokens/s ÷ peak for full fine-tuning, 4·N for LoRA) on the "
                     "embedded SmolLM2-135M (goal ≥ 30 % on this CPU).",
              quick=("--steps", "3", "--warmup", "1", "--repeats", "1", "--batch", "2", "--seq-len", "128")),
    Benchmark("train_throughput", "Training tokens/s of tunewise against trl's SFTTrainer on the same model, "
                                  "data, sequence length, batch and steps; ratio tunewise / trl.",
              quick=("--methods", "lora", "--steps", "3", "--warmup", "1", "--repeats", "1", "--batch", "2",
                     "--seq-len", "128")),
    Benchmark("probe_accuracy", "After `tunewise probe`, the quote's step time and peak memory for the probed "
                                "setup against a fresh run of it (goal within ±20 %).",
              quick=("--method", "lora", "--steps", "5", "--seq-len", "64", "--batch-size", "2"),
              full=("--method", "lora", "--transfer", "--repeat", "2")),
    Benchmark("estimate_vs_measured", "After `tunewise probe` (LoRA and full), predicted vs measured step time "
                                      "and peak memory (process peak RSS on a CPU) for random Llamas of other "
                                      "sizes and sequence lengths; share of rows within ±20 %.",
              quick=("--models", "30m,60m", "--seq-lens", "128,256", "--steps", "5", "--probe-steps", "5",
                     "--probe-seq-len", "128"),
              full=("--full",)),
    Benchmark("rag_retrieval", "RAG retrieval quality (recall@k, MRR) of bm25, dense and hybrid search on the "
                               "Python-docs corpus, and median query latency on ~10k chunks (goal ≤ 50 ms).",
              quick=("--repeats", "1")),
)
NOT_RUN = {"tmux_consultation": "drives the app in tmux and saves a screen capture "
                                "(bench/results/tmux_recommendations.txt); not a measurement — run it by hand"}

_NOISE = re.compile(r"(it/s\]|s/it\]|Loading weights|Writing model shards|FutureWarning|warnings\.warn\()")


def machine() -> dict[str, str]:
    """This machine, gathered now: CPU model, cores, RAM, Python, torch and its threads, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    probe = ("import json, torch; print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), "
             "'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    info = json.loads(proc.stdout) if proc.returncode == 0 else {"torch": "unavailable", "threads": "?", "gpu": "?"}
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = ", ".join(f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f" {f}" in text) or "none"
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                            check=False).stdout.strip()
    return {"CPU": cpu, "cores": str(os.cpu_count()), "CPU features": flags, "RAM": ram,
            "OS": f"{platform.system()} {platform.release()}", "Python": platform.python_version(),
            "torch": str(info["torch"]), "torch threads": str(info["threads"]), "GPU": str(info["gpu"]),
            "commit": commit or "unknown"}


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


@dataclass
class Outcome:
    bench: Benchmark
    command: list[str]
    status: str
    wall_s: float = 0.0
    output: list[str] = field(default_factory=list)
    result: dict | None = None
    load_before: str = ""
    load_after: str = ""


def run(bench: Benchmark, full: bool, timeout_s: int | None) -> Outcome:
    script = BENCH / f"{bench.name}.py"
    args = list(bench.full if full else bench.quick)
    command = [sys.executable, str(script.relative_to(REPO)), *args]
    shown = ["python", str(script.relative_to(REPO)), *args]
    if not script.exists():
        return Outcome(bench, shown, "not present")
    before = load_average()
    started = time.perf_counter()
    print(f"== {' '.join(shown)}", flush=True)
    try:
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False,
                              timeout=timeout_s or bench.timeout_s, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        text = proc.stdout + ("\n" + proc.stderr if proc.returncode != 0 else "")
    except subprocess.TimeoutExpired as exc:
        status = f"timed out after {exc.timeout:.0f} s"
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    wall = time.perf_counter() - started
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line.strip() and not _NOISE.search(line)]
    result = None
    for line in lines:
        if line.startswith("RESULT "):
            with contextlib.suppress(json.JSONDecodeError):
                result = json.loads(line[len("RESULT "):])
    print("\n".join(lines[-8:]), flush=True)
    return Outcome(bench, shown, status, wall, lines, result, before, load_average())


def render(outcomes: list[Outcome], info: dict[str, str], full: bool, started: datetime) -> str:
    out = ["# Benchmarks", "",
           f"Generated by `python bench/run_all.py{' --full' if full else ''}` on "
           f"{started.strftime('%Y-%m-%d %H:%M UTC')}; rerun it to regenerate this file. Every figure below is "
           "what the named command printed on this machine in that run"
           + (" with quick settings (fewer steps and repeats, shorter sequences; `--full` runs each benchmark's "
              "own defaults)." if not full else "."), "",
           "## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in info.items()]
    out += ["", "CPU timings here are sensitive to other work on the machine: the load average (1, 5, 15 min) "
            "before and after each benchmark is recorded with it. Ratios measured side by side in one run "
            "(startup vs `python -c pass`, tunewise vs trl) are the robust figures.", "",
            "## Summary", "", "| benchmark | status | wall | headline |", "|---|---|---:|---|"]
    for o in outcomes:
        headline = ""
        if o.result:
            keys = [k for k in o.result if k not in ("bench", "table", "rows_detail", "probe")][:6]
            headline = ", ".join(f"{k}={o.result[k]}" for k in keys)
        elif o.output:
            headline = o.output[-1][:140]
        out.append(f"| [{o.bench.name}](#{o.bench.name.replace('_', '-')}) | {o.status} | {o.wall_s:.0f} s | "
                   f"{headline.replace('|', '/')} |")
    for name, why in NOT_RUN.items():
        out.append(f"| {name} | not run | | {why} |")
    for o in outcomes:
        out += ["", f"## {o.bench.name.replace('_', '-')}", "", o.bench.what, "",
                f"- command: `{' '.join(o.command)}`",
                f"- status: {o.status}; wall time {o.wall_s:.1f} s; load average before {o.load_before or '–'}, "
                f"after {o.load_after or '–'}", ""]
        if o.output:
            shown = o.output if len(o.output) <= TAIL_LINES else ["…", *o.output[-TAIL_LINES:]]
            shown = [line if len(line) < 400 or not line.startswith("RESULT ") else line[:400] + " …"
                     for line in shown]
            out += ["```text", *shown, "```"]
    out += [""]
    if GPU_RESULTS.exists():
        text = GPU_RESULTS.read_text(encoding="utf-8").strip()
        out += ["---", "", "<!-- static: copied from bench/results/gpu_h100.md, not regenerated by run_all -->",
                text.replace("## GPU figures", "## GPU figures (static)", 1), ""]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--full", action="store_true", help="each benchmark's own defaults instead of quick ones")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per benchmark (default 3600)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    names = {b.name for b in BENCHMARKS}
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - names
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    started = datetime.now(timezone.utc)
    # The probes store calibrations; keep this run's apart from the user's own store.
    os.environ.setdefault("TUNEWISE_DATA_DIR", tempfile.mkdtemp(prefix="tunewise-run-all-"))
    info = machine()
    chosen = [b for b in BENCHMARKS if (not only or b.name in only) and b.name not in skip]
    outcomes = [run(b, args.full, args.timeout) for b in chosen]
    args.output.write_text(render(outcomes, info, args.full, started), encoding="utf-8")
    failed = [o.bench.name for o in outcomes if o.status not in ("ok", "not present")]
    summary = {"bench": "run_all", "output": str(args.output), "ran": len(outcomes), "failed": failed,
               "wall_s": round(sum(o.wall_s for o in outcomes), 1)}
    print("RESULT " + json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
