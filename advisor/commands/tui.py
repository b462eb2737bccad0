"""``tunewise`` / ``tunewise tui``: open the interactive app (optionally with saved answers or a run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--answers", type=Path, default=None, metavar="FILE",
                        help="open a consultation with these saved answers (YAML)")
    parser.add_argument("--run", type=Path, default=None, metavar="DIR",
                        help="follow or resume the run whose output folder is DIR")
    parser.add_argument("--label", type=Path, default=None, metavar="PROMPTS",
                        help="open the preference labeling screen for these prompts")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="with --label: where preferences go (default PROMPTS.prefs.jsonl)")
    parser.add_argument("--model", default=None,
                        help="with --label: model that writes the candidates (default: the embedded model)")


def main(args: argparse.Namespace) -> int:
    from tunewise.plugins.errors import TunewiseError

    answers = getattr(args, "answers", None)
    run_dir = getattr(args, "run", None)
    label = getattr(args, "label", None)
    if answers is not None and not Path(answers).is_file():
        raise TunewiseError(f"--answers {answers}: file not found")
    if run_dir is not None and not Path(run_dir).is_dir():
        raise TunewiseError(f"--run {run_dir}: folder not found")
    if label is not None and not Path(label).is_file():
        raise TunewiseError(f"--label {label}: prompts file not found")
    problem = _terminal_problem()
    if problem is not None:
        # Printed here, not raised: a bare `tunewise` reaches this outside the CLI's error handling.
        print(f"tunewise{' tui' if getattr(args, 'command', None) == 'tui' else ''}: error: {problem}",
              file=sys.stderr)
        return 1

    from tunewise.advisor.tui.app import TunewiseApp

    labeling = None
    if label is not None:
        out = getattr(args, "out", None) or label.with_name(label.stem + ".prefs.jsonl")
        labeling = (label, out, getattr(args, "model", None))
    app = TunewiseApp(answers=answers, run_dir=run_dir, labeling=labeling)
    return int(app.run() or 0)


def _terminal_problem() -> str | None:
    """Why the app cannot run here, or None.

    Textual reads keys from the process's real standard input and draws on its real standard error;
    without a terminal there it would wait forever for keys and fill a pipe or file with escape codes.
    """
    for name, stream in (("standard input", sys.__stdin__), ("standard error", sys.__stderr__)):
        try:
            terminal = stream is not None and stream.isatty()
        except (ValueError, OSError):  # closed or detached
            terminal = False
        if not terminal:
            return (f"the interactive app needs a terminal and {name} is not one; without a terminal use the "
                    "commands: tunewise recommend --answers FILE, tunewise run PLAN, "
                    "tunewise label --keys-from-stdin ...")
    return None
