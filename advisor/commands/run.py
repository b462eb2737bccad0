"""``tunewise run PLAN.yaml``: run a plan end to end (evaluate, train, evaluate, save, report)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from tunewise.advisor import limits

if TYPE_CHECKING:
    from pathlib import Path

    from tunewise.advisor.output_lock import OutputLock
    from tunewise.plugins.parallelism import DistributedSettings
    from tunewise.plugins.types import Plan


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan file (YAML): method, model, data, config, training, output_dir")
    parser.add_argument("--out", default=None,
                        help="output folder (default: the plan's output_dir); yours to choose, so it may lie anywhere")
    parser.add_argument("--max-steps", type=limits.flag(limits.STEPS), default=None,
                        help="stop after N optimizer steps (overrides the plan)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint in the output folder")
    parser.add_argument("--force", action="store_true",
                        help="resume even if the checkpoint came from a different model/data/config, or start "
                             "over in a folder that holds an earlier run")
    parser.add_argument("--events", choices=("-",), default=None,
                        help="also write the JSON-lines event stream to stdout (-)")
    parser.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    parser.add_argument("--processes", type=limits.flag(limits.PROCESSES), default=None, metavar="N",
                        help="train data-parallel on N processes (one per GPU; gloo CPU processes without one); "
                             "overrides the plan's distributed.processes")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a model whose config has auto_map to run the Python code shipped in its folder "
                             "(read that code first; refused otherwise)")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="allow a plan to name paths (data, model, output_dir, config files) outside the "
                             "plan's folder and the working directory")


def main(args: argparse.Namespace) -> int:
    from tunewise.advisor.plans import PlanError, load_plan
    from tunewise.advisor.runner import apply_overrides, report_plan_error, run_plan

    to_stdout = args.events == "-"
    _apply_opt_ins(args)
    try:
        plan = load_plan(args.plan, out=args.out)  # --out replaces the plan's output_dir unchecked
    except PlanError as exc:
        report_plan_error(str(exc), events_to_stdout=to_stdout)
        raise
    plan = apply_overrides(plan, out=args.out, max_steps=args.max_steps, resume=args.resume, force=args.force)
    from tunewise.plugins.parallelism import world_from_env

    rank, world, _ = world_from_env()
    if world == 1:
        from tunewise.advisor.launch import plan_settings

        settings = plan_settings(plan, args.processes)
        if settings.processes > 1:
            return _launch(args, plan, settings)
    elif rank != 0:  # a data-parallel worker: rank 0 speaks for the run
        to_stdout, args.quiet = False, True
    result, code = run_plan(plan, events_to_stdout=to_stdout, show_progress=not args.quiet,
                            on_accept=_accept_actions(plan, rank, world))
    if result.status in ("failed", "stopped") and args.quiet:
        # Quiet hides progress, never why a run ended early.
        print(f"tunewise run: {result.status}: {result.message}", file=sys.stderr)
    return code


def _apply_opt_ins(args: argparse.Namespace) -> None:
    """The user's explicit opt-ins, as environment settings the loaders and any worker processes read."""
    import os

    from tunewise.plugins.trust import OUTSIDE_PATHS_ENV, REMOTE_CODE_ENV

    if args.trust_remote_code:
        os.environ[REMOTE_CODE_ENV] = "1"
    if args.allow_outside_paths:
        os.environ[OUTSIDE_PATHS_ENV] = "1"


def _accept_actions(plan: Plan, rank: int, world: int) -> list[Callable[[], None]]:
    """Writes rank 0 makes once its run is accepted: the Accelerate config its launcher handed down."""
    import os
    from pathlib import Path

    from tunewise.advisor.launch import CONFIG_ENV, write_accelerate_config

    text = os.environ.get(CONFIG_ENV)
    if world == 1 or rank != 0 or not text:
        return []
    out = Path(plan.output_dir).expanduser().resolve()

    def write_config() -> None:
        write_accelerate_config(out, text)

    return [write_config]


def _launch(args: argparse.Namespace, plan: Plan, settings: DistributedSettings) -> int:
    """Start the data-parallel processes (each one runs this command again, as one rank).

    The launcher holds the output folder's lock for the whole run; its ranks know it from the
    environment and do not take it again.
    """
    from pathlib import Path

    from tunewise.advisor.output_lock import OutputLocked, acquire
    from tunewise.advisor.runner import report_plan_error

    out = Path(plan.output_dir).expanduser().resolve()
    try:
        lock = acquire(out)
    except OutputLocked as exc:
        report_plan_error(str(exc), events_to_stdout=args.events == "-", kind="locked")
        raise
    events = out / "events.jsonl"
    before = _stamp(events)
    code = 1
    try:
        code = _start_ranks(args, plan, settings, lock)
    finally:
        # Rank 0 writes events.jsonl only once it accepted the run: unchanged means refused.
        lock.release(accepted=code == 0 or _stamp(events) != before)
    return code


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _start_ranks(args: argparse.Namespace, plan: Plan, settings: DistributedSettings, lock: OutputLock) -> int:
    from pathlib import Path

    from tunewise.advisor.launch import launch
    from tunewise.plugins.models import resolve_model

    run_args = [args.plan, "--out", str(Path(plan.output_dir).expanduser().resolve())]
    if args.max_steps is not None:
        run_args += ["--max-steps", str(args.max_steps)]
    run_args += [flag for flag, on in (("--resume", args.resume), ("--force", args.force),
                                       ("--quiet", args.quiet)) if on]
    if args.events == "-":
        run_args += ["--events", "-"]
    device = str(plan.training.get("device", "auto"))
    cuda = False
    if device != "cpu":
        import torch

        cuda = torch.cuda.is_available()
    model_dir = resolve_model(plan.model, prepare=False).path
    return launch(plan, settings, run_args, cuda=cuda, model_dir=model_dir, extra_env=lock.launcher_env(),
                  lock_fd=lock.fd)
