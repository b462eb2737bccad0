"""``tunewise run PLAN.yaml``: run a plan end to end (evaluate, train, evaluate, save, report)."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan file (YAML): method, model, data, config, training, output_dir")
    parser.add_argument("--out", default=None, help="output folder (default: the plan's output_dir)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps (overrides the plan)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint in the output folder")
    parser.add_argument("--force", action="store_true",
                        help="resume even if the checkpoint came from a different model/data/config, or start "
                             "over in a folder that holds an earlier run")
    parser.add_argument("--events", choices=("-",), default=None,
                        help="also write the JSON-lines event stream to stdout (-)")
    parser.add_argument("--quiet", action="store_true", help="no progress output on stderr")


def main(args: argparse.Namespace) -> int:
    from tunewise.advisor.plans import PlanError, load_plan
    from tunewise.advisor.runner import apply_overrides, report_plan_error, run_plan

    to_stdout = args.events == "-"
    if args.max_steps is not None and args.max_steps < 1:
        print("tunewise run: error: --max-steps must be at least 1", file=sys.stderr)
        return 2
    try:
        plan = load_plan(args.plan)
    except PlanError as exc:
        report_plan_error(str(exc), events_to_stdout=to_stdout)
        raise
    plan = apply_overrides(plan, out=args.out, max_steps=args.max_steps, resume=args.resume, force=args.force)
    result, code = run_plan(plan, events_to_stdout=to_stdout, show_progress=not args.quiet)
    if result.status == "failed" and args.quiet:
        print(f"tunewise run: failed: {result.message}", file=sys.stderr)
    return code
