"""Run the example plans and the plans `tunewise plan` writes, and print each run's bake-off.

Every run goes through the real CLI (`tunewise run PLAN --out DIR`) on the embedded model, one after
the other (side by side they would slow each other down). For each it prints the verdict sentence,
the main metric base → result with its 95 % interval, won/tied/lost and the wall time, and at the end
one table and a ``RESULT {json}`` line. The base and the result are scored on the same held-out
examples in the same run, so the comparison itself is not disturbed by a noisy machine; the wall
times are. The issue's goal: every supervised plan shows a significant gain within 15 minutes.

    python bench/bakeoffs.py                       # every example plan and every written plan
    python bench/bakeoffs.py --only lora,plan:lora-ticket-routing
    python bench/bakeoffs.py --list
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLANS = REPO / "examples" / "plans"
ANSWERS = REPO / "examples" / "answers"
DATA = REPO / "examples" / "data"

TIMEOUT_S = 15 * 60
"""The issue's budget per plan on a 2-core CPU."""


@dataclass(frozen=True)
class Case:
    name: str
    supervised: bool
    """A plan that trains on labelled examples: the goal is a significant gain."""
    plan: Path | None = None
    """An example plan, run as it is."""
    answers: Path | None = None
    method: str | None = None
    data: Path | None = None
    """With ``answers`` and ``method``: a plan written by ``tunewise plan`` first."""


CASES = (
    Case("lora", True, plan=PLANS / "lora.yaml"),
    Case("full_finetune", True, plan=PLANS / "full_finetune.yaml"),
    Case("continual_pretraining", False, plan=PLANS / "continual_pretraining.yaml"),
    Case("in_context", True, plan=PLANS / "in_context.yaml"),
    Case("rag", False, plan=PLANS / "rag.yaml"),
    Case("dpo", False, plan=PLANS / "dpo.yaml"),
    Case("rlhf", False, plan=PLANS / "rlhf.yaml"),
    Case("plan:lora-ticket-routing", True, answers=ANSWERS / "ticket-routing.yaml", method="lora",
         data=DATA / "support_intents.jsonl"),
    Case("plan:in_context-ticket-routing", True, answers=ANSWERS / "ticket-routing.yaml", method="in_context",
         data=DATA / "support_intents.jsonl"),
    Case("plan:full_finetune-brand-voice", True, answers=ANSWERS / "brand-voice-cpu.yaml",
         method="full_finetune", data=DATA / "support_chat.jsonl"),
    Case("plan:continual_pretraining-ops-runbooks", False, answers=ANSWERS / "ops-runbooks.yaml",
         method="continual_pretraining", data=DATA / "python_docs"),
    Case("plan:rlhf-helpful-harmless", False, answers=ANSWERS / "helpful-harmless.yaml", method="rlhf",
         data=DATA / "preferences.jsonl"),
)


def _tunewise(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "tunewise.advisor.cli", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _written_plan(case: Case, folder: Path) -> Path:
    """The plan `tunewise plan` writes for the case, sized for this CPU."""
    assert case.answers is not None and case.method is not None
    plan = folder / f"{case.method}.yaml"
    args = ["plan", "--answers", str(case.answers), "--method", case.method, "--hardware", "cpu",
            "--out", str(plan)]
    if case.data is not None:
        args += ["--data", str(case.data)]
    done = _tunewise(*args, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"tunewise plan failed: {done.stderr.strip()[-800:]}")
    return plan


def run_case(case: Case, work: Path, timeout: float) -> dict[str, object]:
    """Run one case; a dict of its figures (``error`` set when it could not finish)."""
    out = work / case.name.replace(":", "-")
    row: dict[str, object] = {"name": case.name, "supervised": case.supervised}
    try:
        plan = case.plan if case.plan is not None else _written_plan(case, work)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {**row, "error": str(exc)}
    row["plan"] = str(plan.relative_to(REPO) if plan.is_relative_to(REPO) else plan.name)
    start = time.perf_counter()
    try:
        done = _tunewise("run", str(plan), "--out", str(out), "--quiet", "--allow-outside-paths", timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"did not finish within {timeout / 60:.0f} min", "wall_s": timeout}
    row["wall_s"] = round(time.perf_counter() - start, 1)
    metrics_file = out / "metrics.json"
    if done.returncode != 0 or not metrics_file.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {**row, "error": f"exit {done.returncode}: " + " | ".join(tail)}
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    bake = metrics.get("bakeoff")
    if not isinstance(bake, dict):
        return {**row, "error": "no bake-off in metrics.json"}
    metric = bake["metric"]
    low, high = bake[next(k for k in bake if k.startswith("interval_"))]
    return {**row, "metric": metric, "before": bake["before"][metric], "after": bake["after"][metric],
            "interval": [low, high], "wins": bake["wins"], "ties": bake["ties"], "losses": bake["losses"],
            "examples": bake["examples"], "verdict": bake["verdict"], "significant": bake["significant"],
            "sentence": bake["sentence"]}


def _line(row: dict[str, object]) -> str:
    if "error" in row:
        return f"{row['name']:<42} ERROR {row['error']}"
    low, high = row["interval"]  # type: ignore[misc]
    goal = ""
    if row["supervised"]:
        goal = "  goal met" if row["verdict"] == "better" and float(row["wall_s"]) <= TIMEOUT_S else "  GOAL MISSED"
    return (f"{row['name']:<42} {row['metric']:<12} {row['before']:.3f} → {row['after']:.3f} "
            f"[{low:+.3f}, {high:+.3f}]  {row['wins']}/{row['ties']}/{row['losses']} of {row['examples']}  "
            f"{row['verdict']:<10} {float(row['wall_s']) / 60:5.1f} min{goal}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated case names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--timeout-min", type=float, default=TIMEOUT_S / 60, help="per-run limit in minutes")
    parser.add_argument("--keep", type=Path, help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.list:
        for case in CASES:
            print(case.name)
        return 0
    chosen = list(CASES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - {c.name for c in CASES})
        if unknown:
            parser.error(f"unknown case(s): {', '.join(unknown)} (see --list)")
        chosen = [c for c in CASES if c.name in names]
    work = args.keep or Path(tempfile.mkdtemp(prefix="tunewise-bakeoffs-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for case in chosen:
            print(f"running {case.name} …", flush=True)
            row = run_case(case, work, args.timeout_min * 60)
            rows.append(row)
            print(f"  {row.get('sentence') or row.get('error')}", flush=True)
            print(f"  {_line(row)}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    for row in rows:
        print(_line(row))
    supervised = [r for r in rows if r["supervised"]]
    met = sum(1 for r in supervised if r.get("verdict") == "better" and float(r.get("wall_s", 1e9)) <= TIMEOUT_S)
    print(f"\nsupervised plans with a significant gain within {TIMEOUT_S // 60} min: {met} of {len(supervised)}")
    print("RESULT " + json.dumps({"runs": rows, "supervised_goal_met": met, "supervised": len(supervised)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
