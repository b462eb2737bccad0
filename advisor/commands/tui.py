"""``tunewise`` / ``tunewise tui``: open the interactive app (optionally with saved answers or a run)."""

from __future__ import annotations

import argparse
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

    from tunewise.advisor.tui.app import TunewiseApp

    labeling = None
    if label is not None:
        out = getattr(args, "out", None) or label.with_name(label.stem + ".prefs.jsonl")
        labeling = (label, out, getattr(args, "model", None))
    app = TunewiseApp(answers=answers, run_dir=run_dir, labeling=labeling)
    return int(app.run() or 0)
