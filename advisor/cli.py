"""``tunewise`` command line: a thin dispatcher that imports only the command being run."""

from __future__ import annotations

import argparse
import contextlib
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
    "pilot": "run the top candidates on a sample of your data, measure them on one held-out split, re-rank",
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

    _safe_stdout()
    argv = list(sys.argv[1:] if argv is None else argv)
    problem = _undecodable_argument(argv) or _unknown_home(argv)
    if problem:  # (the console guard is not installed yet: the argument is redacted where it is quoted)
        print(f"tunewise: error: {problem}", file=sys.stderr)
        return 2
    # Every command's console output is redacted like its files (advisor/console_guard.py); the
    # TUI takes the terminal itself, so the guard comes off before it starts.
    try:
        guard = ConsoleGuard.install()
        try:
            return _main(argv, guard)
        finally:
            guard.remove()
    except BrokenPipeError:
        # The reader went away (`tunewise ... | head`): stop quietly, as a shell tool does. Python
        # flushes stdout once more at exit, so point it at /dev/null first.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _safe_stdout() -> None:
    """Print anything a user gave us, even text that is not UTF-8, instead of failing mid-output.

    Argument bytes that are not UTF-8 reach Python as lone surrogates; stdout is ``strict`` in most
    UTF-8 locales (stderr already uses ``backslashreplace``), so echoing such a name would raise.
    """
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if callable(reconfigure):
        # a closed or detached stream: nothing to print to anyway
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="backslashreplace")


def _undecodable_argument(argv: Sequence[str]) -> str | None:
    """A message naming the first argument that is not valid UTF-8 (None when all are).

    Names, paths and text go on to tokenizers, FAISS and JSON/YAML writers, which all refuse lone
    surrogates deep inside a run; refusing here names the argument instead.
    """
    for position, token in enumerate(argv, start=1):
        try:
            token.encode("utf-8")
        except UnicodeEncodeError:
            from tunewise.plugins.redaction import redact

            shown = redact(token.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"))
            return (f"argument {position} ({shown[:80]}) is not valid UTF-8; tunewise takes names, paths and "
                    "text in UTF-8")
    return None


def _unknown_home(argv: Sequence[str]) -> str | None:
    """A message naming the first path argument that starts with ``~user`` for a user this machine lacks.

    ``pathlib`` raises deep inside whichever command reads the path; the shell leaves ``~nouser`` (and
    every ``--flag=~...``) unexpanded, so it is checked once here. Tokens with spaces are text, not paths.
    """
    import os

    for position, token in enumerate(argv, start=1):
        value = token.split("=", 1)[1] if token.startswith("--") and "=" in token else token
        if not value.startswith("~") or any(c.isspace() for c in value):
            continue
        head = value.split("/", 1)[0]
        if os.path.expanduser(head) == head:
            from tunewise.plugins.redaction import redact

            return (f"argument {position} ({redact(value)[:80]}): no home folder for {redact(head)[:80]} (no such "
                    "user on this machine)")
    return None


def _empty_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The first single-value option that argparse left holding a list (``--flag=--``), named.

    Walks the chosen sub-command (and its chosen action, e.g. ``rag search``), then the parser itself.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None) if action.dest != argparse.SUPPRESS else None
            inner = action.choices.get(chosen) if isinstance(chosen, str) else None
            found = _empty_values(inner, args) if isinstance(inner, argparse.ArgumentParser) else None
            if found:
                return found
        elif action.nargs is None and action.option_strings and isinstance(getattr(args, action.dest, None), list):
            return f"argument {'/'.join(action.option_strings)}: expected one argument"
    return None


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
    # argparse (3.11) drops the `--` of `--flag=--` and leaves the option an empty list.
    empty = _empty_values(parser, args)
    if empty:
        parser.error(empty)
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
    except BrokenPipeError:
        raise  # the reader went away: main() ends quietly
    except OSError as exc:
        # A path the user gave that the system refuses (name too long, a loop, permission, a full
        # disk) is their input's problem, not a bug: name the file and the system's reason.
        if not exc.strerror:
            return _unexpected(args.command, exc)
        where = f"{str(exc.filename)[:200]}: " if exc.filename else ""
        print(f"tunewise {args.command}: error: {redact(where + exc.strerror)}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        # Python 3.11's Path.resolve() reports a symbolic-link loop as RuntimeError, not OSError:
        # a path the user gave, named like the OSError case above.
        text = str(exc)
        if not text.startswith("Symlink loop from "):
            return _unexpected(args.command, exc)
        where = text.removeprefix("Symlink loop from ").strip()[:200]
        print(f"tunewise {args.command}: error: {redact(where)}: a loop of symbolic links", file=sys.stderr)
        return 1
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
