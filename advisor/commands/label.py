"""``tunewise label``: judge two answers per prompt in the terminal, building RLHF / DPO preference data.

Keys: ``a`` / ``1`` answer A is better, ``b`` / ``2`` answer B is better, ``s`` skip, ``u`` undo the
last decision, ``q`` quit. Each decision is appended to ``--out`` and flushed to disk at once (the
shared :mod:`tunewise.advisor.labeling` session, also behind the app's Preferences screen), so Ctrl-C
or a crash loses nothing, and running the same command again continues at the first prompt without a
decision. The output holds ``prompt`` / ``chosen`` / ``rejected`` rows: the ``data:`` of an ``rlhf``
plan, for RLHF (reward model + GRPO/RLOO; PPO is not offered, trl 1.16 removed it) or DPO.

Without a terminal the command refuses, unless ``--keys-from-stdin`` is given: then each line of
standard input is one key (for scripts and tests).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from typing import IO, Any

KEYS = {"a": "A", "1": "A", "b": "B", "2": "B", "s": "skip", "u": "undo", "q": "quit"}
HELP_LINE = "[a] A is better   [b] B is better   [s] skip   [u] undo   [q] quit"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
from tunewise.advisor import limits

        "keys: a/1 = A is better, b/2 = B is better, s = skip, u = undo, q = quit. Every decision is on disk at\n"
        "once; run the same command again to continue. The output is the data of an rlhf plan\n"
        "(config.algorithm: grpo | rloo | dpo; see examples/plans/rlhf.yaml and dpo.yaml).\n\n"
        "PPO is not offered: trl 1.16 has no PPOTrainer (moved to trl.experimental, then removed in\n"
        "huggingface/trl#7020). GRPO and RLOO stand in: the same KL-regularised reward, with the baseline taken\n"
        "from the other samples of each prompt instead of a learned value model (one model fewer to train)."
    )
    parser.add_argument("--prompts", required=True,
                        help="prompts to label: .jsonl/.json with 'prompt' (and optionally 'candidates': two "
                             "pre-written answers) or .txt with one prompt per line")
    parser.add_argument("--out", required=True,
                        help="preference file to append to (prompt/chosen/rejected jsonl); skips go to "
                             "<name>.skipped.jsonl; an existing file is continued, not overwritten")
    parser.add_argument("--model", default=None,
                        help="model that writes the two candidates (local folder or cached hub id; default: the "
                             "embedded SmolLM2-135M-Instruct); not loaded when every prompt brings candidates")
    parser.add_argument("--max-new-tokens", type=limits.flag(limits.GENERATED_TOKENS),
                        default=96, help="longest generated candidate, in tokens")
    parser.add_argument("--temperature", type=limits.flag(limits.TEMPERATURE),
                        default=0.9, help="sampling temperature of the candidates")
    parser.add_argument("--seed", type=limits.flag(limits.SEED),
                        default=0, help="sampling seed (the same prompt gets the same pair)")
    parser.add_argument("--labeler", default="", help="your name or id, stored with every decision")
    parser.add_argument("--keys-from-stdin", action="store_true",
                        help="read one key per line from standard input instead of the keyboard (scripts, tests)")


class KeyReader:
    """Single keypresses from a terminal (no Enter needed), or lines from a pipe with ``--keys-from-stdin``."""

    def __init__(self, stream: IO[str], lines: bool) -> None:
        self.stream = stream
        self.lines = lines

    def read(self) -> str | None:
        """The next key, lower-cased; None at end of input."""
        if self.lines:
            line = self.stream.readline()
            if not line:
                return None
            return line.strip().lower()[:1] or ""
        return self._read_raw()

    def _read_raw(self) -> str | None:
        try:
            import termios
            import tty
        except ImportError:  # no termios (Windows): fall back to line input
            line = self.stream.readline()
            return line.strip().lower()[:1] if line else None
        fd = self.stream.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            char = self.stream.read(1)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if char == "\x03":
            raise KeyboardInterrupt
        if char in ("", "\x04"):
            return None
        return char.lower()


def _show(console: Any, session: Any, prompt: Any, pair: tuple[str, str]) -> None:
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.text import Text

    done = session.chosen_count + session.skipped_count
    console.rule(Text(f"prompt {prompt.index + 1} of {session.total}  ·  {session.chosen_count} labelled, "
                      f"{session.skipped_count} skipped, {session.total - done} to go"))
    console.print(Panel(Text(prompt.prompt), title="prompt", title_align="left"))
    width = max(30, (console.width - 4) // 2)
    panels = [Panel(Text(text), title=f"answer {name}", title_align="left", width=width)
              for name, text in zip("AB", pair, strict=True)]
    console.print(Columns(panels, equal=True, expand=True))
    console.print(Text(HELP_LINE, style="dim"))


def _prefetch(session: Any, current: Any) -> None:
    """Generate the next prompt's candidates while the person reads this pair (errors surface later)."""
    upcoming = [p for p in session.pending() if p != current]
    if not upcoming or session.generate is None:
        return

    def work() -> None:
        # A failure here shows when that prompt comes up and is generated again.
        with contextlib.suppress(Exception):
            session.candidates(upcoming[0])

    threading.Thread(target=work, daemon=True).start()


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.text import Text
    from tunewise.advisor.labeling import CandidateGenerator, LabelingError, LabelingSession

    stdin = sys.stdin
    if not args.keys_from_stdin and not (stdin is not None and stdin.isatty()):
        raise LabelingError("tunewise label is interactive and standard input is not a terminal; run it in a "
                            "terminal, or pass --keys-from-stdin to read one key per line (a, b, s, u, q) from a "
                            "pipe")
    if args.max_new_tokens < 1:
        raise LabelingError("--max-new-tokens must be at least 1")
    if args.temperature <= 0:
        raise LabelingError("--temperature must be above 0")
    generator = CandidateGenerator(args.model, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                   seed=args.seed)
    session = LabelingSession.open(args.prompts, args.out, generator, labeler=args.labeler)
    console = Console(highlight=False, markup=False)  # prompts and answers are shown as written
    if session.decisions:
        console.print(f"continuing {session.out}: {session.chosen_count} labelled and {session.skipped_count} "
                      f"skipped earlier")
    keys = KeyReader(stdin, lines=args.keys_from_stdin)
    message = ""
    while True:
        prompt = session.next_prompt()
        if prompt is None:
            console.print(f"all {session.total} prompts have a decision")
            break
        if prompt.candidates is None and session.generate is not None:
            console.print(f"writing two answers to prompt {prompt.index + 1} …", style="dim")
        pair = session.candidates(prompt)
        if message:
            console.print(Text(message, style="yellow"))
            message = ""
        _show(console, session, prompt, pair)
        _prefetch(session, prompt)
        action = None
        while action is None:
            key = keys.read()
            if key is None:
                action = "quit"
                break
            action = KEYS.get(key)
            if action is None:
                console.print(Text(f"unknown key {key!r}; {HELP_LINE}", style="yellow"))
        if action == "quit":
            break
        if action == "skip":
            session.skip(prompt)
        elif action == "undo":
            undone = session.undo()
            message = f"undid the decision on prompt {undone.index + 1}" if undone else "nothing to undo"
        else:
            session.choose(prompt, 0 if action == "A" else 1)
    console.print(Text(f"{session.chosen_count} preference pairs in {session.out}"
                       + (f"; {session.skipped_count} skipped (in {session.skipped_out})"
                          if session.skipped_count else "")))
    return 0
