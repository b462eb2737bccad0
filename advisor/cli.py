"""``tunewise`` command line: a thin dispatcher that imports only the command being run."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunewise.advisor.console_guard import ConsoleGuard

COMMANDS: dict[str, str] = {
    "plugins": "list plugins, their methods and hooks, and plugin failures",
    "model": "show or prepare the model (default: the embedded SmolLM2-135M-Instruct)",
    "tui": "open the interactive app (default when no command is given)",
    "recommend": "rank all methods for an answers file, with quotes and reasons",
    "estimate": "quote one method: FLOPs, GPU-hours, wall time, dollars, memory",
    "audit": "check a data file or folder: shape, rows, tokens, duplicates, problems",
    "probe": "train a few real steps here and calibrate quotes for this hardware",
    "plan": "write a plan sized from the data audit, the model and the hardware (commented YAML)",
    "run": "run a plan file end to end: evaluate, train, evaluate, save, report",
    "chat": "try a finished run: its result (and with --compare its base) answers your prompts",
    "rag": "index documents, search them, and answer questions from them with citations",
    "label": "pick the better of two answers per prompt: preference data for RLHF / DPO",
    "export": "write a plan as a LLaMA-Factory or Axolotl config (same method, model, data, hyperparameters)",
}
"""Subcommand -> one-line help; the code lives in ``tunewise.advisor.commands.<name>``."""
DEBUG_ENV = "TUNEWISE_DEBUG"
"""Set to 1 to see the traceback of an unexpected error (redacted like everything else)."""
MESSAGE_LIMIT = 1000


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
    from tunewise.advisor.console_guard import ConsoleGuard

    # Every command's console output is redacted like its files (advisor/console_guard.py); the
    # TUI takes the terminal itself, so the guard comes off before it starts.
    guard = ConsoleGuard.install()
    try:
        return _main(list(sys.argv[1:] if argv is None else argv), guard)
    finally:
        guard.remove()


def _main(argv: list[str], guard: ConsoleGuard) -> int:
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
    if args.command in (None, "tui"):
        guard.remove()
    if args.command is None:
        if "tui" in COMMANDS:
            module = importlib.import_module("tunewise.advisor.commands.tui")
            return int(module.main(args) or 0)
        parser.print_help()
        return 0
    from tunewise.plugins.errors import TunewiseError
    from tunewise.plugins.redaction import redact

    try:
        return int(args._module.main(args) or 0)
    except TunewiseError as exc:
        print(f"tunewise {args.command}: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tunewise {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, or a library error no check foresaw: one line, not a traceback
        return _unexpected(args.command, exc)


def _unexpected(command: str, exc: Exception) -> int:
    """Print an unexpected error as one redacted line; ``TUNEWISE_DEBUG=1`` adds the (redacted) traceback.

    A traceback can hold a secret anywhere (a local's repr, a URL with a token in a library's
    message), so it is shown only when asked for.
    """
    import os

    from tunewise.plugins.redaction import redact

    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        import traceback

        print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
    detail = " ".join(redact(str(exc)).split())
    if len(detail) > MESSAGE_LIMIT:
        detail = detail[:MESSAGE_LIMIT] + "…"
    print(f"tunewise {command}: error: unexpected {type(exc).__name__}" + (f": {detail}" if detail else "")
          + ("" if os.environ.get(DEBUG_ENV, "") not in ("", "0") else f" (set {DEBUG_ENV}=1 for the traceback)"),
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
