"""``tunewise export PLAN --to llamafactory|axolotl``: the plan as a config for another training tool."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan file (YAML) of a full_finetune, lora, continual_pretraining or rlhf run")
    parser.add_argument("--to", required=True, choices=("llamafactory", "axolotl"), help="the tool to export for")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="config file to write (default: <plan name>.<tool>.yaml in the current folder); "
                             "LLaMA-Factory's dataset_info.json goes beside it")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="allow a plan to name paths (data, model, output_dir, config files) outside the "
                             "plan's folder and the working directory")


def main(args: argparse.Namespace) -> int:
    from tunewise.advisor.export import export_plan, write
    from tunewise.advisor.plans import load_plan

    plan = load_plan(args.plan, allow_outside_paths=args.allow_outside_paths or None)  # None: the environment's
    # `--out=~/x` reaches us unexpanded (the shell expands ~ only at a word's start).
    out = Path(args.out).expanduser() if args.out else Path.cwd() / f"{Path(args.plan).stem}.{args.to}.yaml"
    exported = export_plan(plan, args.to)
    for path in write(exported, plan, out):
        print(f"wrote {path}")
    for note in exported.notes:
        print(f"note: {note}")
    return 0
