"""``tunewise`` command line: a thin dispatcher that imports only the command being run."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "plugins": "list plugins, their methods and hooks, and plugin failures",
    "model": "show or prepare the model (default: the embedded SmolLM2-135M-Instruct)",
    "tui": "open the interactive app (default when no command is given)",
    "recommend": "rank all methods for an answers file, with quotes and reasons",
    "estimate": "quote one method: FLOPs, GPU-hours, wall time, dollars, memory",
    "audit": "check a data file or folder: shape, rows, tokens, duplicates, problems",
    "probe": "train a few real steps here and calibrate quotes for this hardware",
    "run": "run a plan file end to end: evaluate, train, evaluate, save, report",
    "rag": "index documents, search them, and answer questions from them with citations",
    "label": "pick the better of two answers per prompt: preference data for RLHF / DPO",
    "export": "write a plan as a LLaMA-Factory or Axolotl config (same method, model, data, hyperparameters)",
}
"""Subcommand -> one-line help; the code lives in ``tunewise.advisor.commands.<name>``."""


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tunewise")
    except metadata.PackageNotFoundError:
        return "unknown"


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="tunewise",
        description="Decide how to adapt a language model, get a quote, then run it. "
        "With no command, opens the interactive app.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--strict-plugins", action="store_true", help="treat any plugin failure as an error (default: report and skip)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, sub


def _chosen(argv: Sequence[str]) -> str | None:
    for token in argv:
        if token in COMMANDS:
            return token
        if not token.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tunewise`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if _chosen(argv) is None and any(t.split("=")[0] in ("--answers", "--run", "--label") for t in argv):
        argv.insert(0, "tui")  # `tunewise --answers FILE` opens the app like `tunewise tui --answers FILE`
    parser, sub = _parser()
    chosen = _chosen(argv)
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(f"tunewise.advisor.commands.{name}")
            module.configure(command_parser)
            command_parser.set_defaults(_module=module)
    args = parser.parse_args(argv)
    import os

    # tunewise never downloads behind the user's back: no hub requests and no telemetry, in this
    # process and every one it starts (training subprocesses, torchrun ranks). Set to 0 to allow.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if args.version:
        print(f"tunewise {_version()}")
        return 0
    if args.strict_plugins:
        os.environ["TUNEWISE_STRICT_PLUGINS"] = "1"
    if args.command is None:
        if "tui" in COMMANDS:
            module = importlib.import_module("tunewise.advisor.commands.tui")
            return int(module.main(args) or 0)
        parser.print_help()
        return 0
    from tunewise.plugins.errors import TunewiseError

    try:
        return int(args._module.main(args) or 0)
    except TunewiseError as exc:
        print(f"tunewise {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tunewise {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
