"""``tunewise label``: judge two answers per prompt in the terminal, building RLHF / DPO preference data.

Keys: ``a`` / ``1`` answer A is better, ``b`` / ``2`` answer B is better, ``s`` skip, ``u`` undo the
last decision, ``q`` quit. Each decision is appended to ``--out`` and flushed to disk at once (the
shared :mod:`tunewise.advisor.labeling` session, also behind the app's Preferences screen), so Ctrl-C
or a crash loses nothing, and running the same command again continues at the first prompt without a
decision. The output holds ``prompt`` / ``chosen`` / ``rejected`` rows: the ``data:`` of an ``rlhf``
plan, for RLHF (reward model + GRPO/RLOO; PPO is not offered, trl 1.16 removed it) or DPO.

Without a terminal the command refuses, unless ``--keys-from-stdin`` is given: then each line of
standard input is one key (for scripts and tests).

In a terminal a key only ever counts for the pair on screen: keys typed while the next pair is being
written are read and dropped (``u`` and ``q`` still work), and whatever was typed before a new pair
was drawn, or within :data:`~tunewise.advisor.labeling.SETTLE_S` of it, is flushed unread; the
``[a] A is better …`` line under a pair says input is open.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from tunewise.advisor import limits

KEYS = {"a": "A", "1": "A", "b": "B", "2": "B", "s": "skip", "u": "undo", "q": "quit"}
HELP_LINE = "[a] A is better   [b] B is better   [s] skip   [u] undo   [q] quit"
STILL_WRITING = "still writing the next pair — wait for it (keys pressed now are ignored; u undoes, q quits)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "keys: a/1 = A is better, b/2 = B is better, s = skip, u = undo, q = quit. Every decision is on disk at\n"
        "once; run the same command again to continue. A key counts only for the pair on screen: keys typed\n"
        "while the next pair is written, or as it appears, are ignored (the key line under a pair says it is\n"
        "open). The output is the data of an rlhf plan\n"
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
    """Single keypresses from a terminal (no Enter, no echo), or lines from a pipe with ``--keys-from-stdin``.

    Use it as a context manager: in a terminal it holds cbreak mode for the whole session, so keys
    typed while a pair is being written neither echo into the screen nor wait in a line buffer.
    """

    def __init__(self, stream: IO[str], lines: bool) -> None:
        self.stream = stream
        self.lines = lines
        self._fd: int | None = None
        self._saved: Any = None

    def __enter__(self) -> KeyReader:
        if not self.lines:
            try:
                import termios
                import tty
            except ImportError:  # no termios (Windows): line input, no type-ahead guard
                return self
            fd = self.stream.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # also flushes what was typed before the session started
            self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._fd = None

    @property
    def interactive(self) -> bool:
        """True for a terminal in cbreak mode: keys can be waited for, counted and flushed."""
        return self._fd is not None

    def read(self) -> str | None:
        """The next key, lower-cased (an escape sequence whole, starting with ESC); None at end of input."""
        if self._fd is None:
            line = self.stream.readline()
            if not line:
                return None
            return line.strip().lower()[:1]
        # os.read, not the text stream: a buffered reader would pull type-ahead into Python where
        # tcflush cannot reach it.
        try:
            first = os.read(self._fd, 1)
        except OSError:  # the terminal went away (hang-up): nothing more will be typed
            return None
        if not first:
            return None
        if first == b"\x1b":  # an arrow or function key: take the whole sequence, or its "A" would count
            return self._escape_sequence()
        raw = first
        if first[0] >= 0xC0:  # the continuation bytes of one UTF-8 character
            raw += os.read(self._fd, 1 if first[0] < 0xE0 else 2 if first[0] < 0xF0 else 3)
        char = raw.decode("utf-8", "replace")
        if char == "\x03":
            raise KeyboardInterrupt
        if char == "\x04":
            return None
        return char.lower()

    def _escape_sequence(self) -> str:
        """The rest of a key that began with ESC (CSI ``ESC [ … final``, SS3 ``ESC O x``, or Alt+key), no more.

        Read byte by byte up to the sequence's final byte, so a key typed right after it is not swallowed.
        """
        assert self._fd is not None
        sequence = b"\x1b"
        if not self.key_waiting(0.05):
            return "\x1b"  # the Esc key alone
        second = os.read(self._fd, 1)
        sequence += second
        if second == b"O" and self.key_waiting(0.05):
            sequence += os.read(self._fd, 1)
        elif second == b"[":
            while len(sequence) < 32 and self.key_waiting(0.05):
                byte = os.read(self._fd, 1)
                sequence += byte
                if byte and 0x40 <= byte[0] <= 0x7E:  # CSI final byte
                    break
        return sequence.decode("utf-8", "replace")

    def key_waiting(self, timeout: float) -> bool:
        """Whether a key arrives within ``timeout`` seconds (terminal only)."""
        import select

        assert self._fd is not None
        ready, _, _ = select.select([self._fd], [], [], timeout)
        return bool(ready)

    def discard(self) -> int:
        """Flush keys typed but not read yet; returns how many bytes were dropped (terminal only)."""
        import fcntl
        import struct
        import termios

        assert self._fd is not None
        waiting = struct.unpack("i", fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        termios.tcflush(self._fd, termios.TCIFLUSH)
        return int(waiting)


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


def _prefetch(session: Any, current: Any) -> None:
    """Generate the next prompt's candidates while the person reads this pair (errors surface later)."""
    upcoming = [p for p in session.pending() if p != current]
    if not upcoming or session.generate is None:
        return

    def work() -> None:
        # A failure here shows when that prompt comes up and is generated again.
        with contextlib.suppress(Exception):
            session.candidates(upcoming[0])

    _start(work)


_THREADS: list[threading.Thread] = []
"""Threads writing pairs ahead; joined before the command returns (see :func:`main`)."""


def _start(target: Callable[[], None]) -> None:
    thread = threading.Thread(target=target, daemon=True)
    _THREADS.append(thread)
    thread.start()


class _Background:
    """``fn()`` in a daemon thread (Ctrl-C or quitting never waits for a generation to end)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        self.done = threading.Event()
        _start(self._run)

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the main thread by result()
            self._error = exc
        finally:
            self.done.set()

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


def _wait_for_pair(session: Any, prompt: Any, keys: KeyReader, console: Any) -> tuple[str, str] | str:
    """The pair for ``prompt``, or ``undo`` / ``quit`` typed while it was being written.

    Any other key typed meanwhile is read and dropped (it cannot be meant for a pair not yet shown),
    with a hint the first time.
    """
    if not keys.interactive:
        pair: tuple[str, str] = session.candidates(prompt)
        return pair
    job = _Background(lambda: session.candidates(prompt))
    hinted = False
    while not job.done.is_set():
        if not keys.key_waiting(0.1):
            continue
        key = keys.read()
        action = "quit" if key is None else KEYS.get(key)
        if action in ("undo", "quit"):
            return action
        if not hinted:
            console.print(STILL_WRITING, style="yellow")
            hinted = True
    value: tuple[str, str] = job.result()
    return value


def _settle(keys: KeyReader) -> int:
    """Drop what was typed before the pair was drawn or within SETTLE_S of it; how many bytes were dropped."""
    from tunewise.advisor.labeling import SETTLE_S

    if not keys.interactive:
        return 0  # a script's keys are meant in order
    dropped = keys.discard()
    while keys.key_waiting(SETTLE_S):  # a key pressed meanwhile starts the wait again
        dropped += max(keys.discard(), 1)
    return dropped


def run_session(session: Any, keys: KeyReader, console: Any) -> None:
    """Label until every prompt has a decision or the person quits; each decision carries the pair on screen."""
    from rich.text import Text

    message = ""
    while True:
        prompt = session.next_prompt()
        if prompt is None:
            console.print(f"all {session.total} prompts have a decision")
            break
        pair = session.ready_candidates(prompt)
        if pair is None:
            console.print(f"writing two answers to prompt {prompt.index + 1} …"
                          + (" (keys pressed now are ignored)" if keys.interactive else ""), style="dim")
            waited = _wait_for_pair(session, prompt, keys, console)
            if waited == "quit":
                break
            if waited == "undo":
                undone = session.undo()
                console.print(Text(f"undid the decision on prompt {undone.index + 1}" if undone
                                   else "nothing to undo", style="yellow"))
                continue
            assert isinstance(waited, tuple)
            pair = waited
        if message:
            console.print(Text(message, style="yellow"))
            message = ""
        _show(console, session, prompt, pair)
        _prefetch(session, prompt)
        dropped = _settle(keys)
        if dropped:
            console.print(Text(f"ignored {dropped} key{'s' if dropped != 1 else ''} pressed before this pair was "
                               "on screen; choose now", style="yellow"))
        shown = session.show(prompt, pair)
        console.print(Text(HELP_LINE, style="dim"))
        action = None
        while action is None:
            key = keys.read()
            if key is None:
                action = "quit"
                break
            action = KEYS.get(key)
            if action is None:
                name = "an arrow or function key" if key.startswith("\x1b") else repr(key)
                console.print(Text(f"unknown key {name}; {HELP_LINE}", style="yellow"))
        if action == "quit":
            break
        if action == "skip":
            session.skip(shown)
            console.print(Text(f"pair {prompt.index + 1}: skipped — saved", style="green"))
        elif action == "undo":
            undone = session.undo()
            message = f"undid the decision on prompt {undone.index + 1}" if undone else "nothing to undo"
        else:
            session.choose(shown, 0 if action == "A" else 1)
            console.print(Text(f"pair {prompt.index + 1}: kept {action} (chosen) — saved", style="green"))
    console.print(Text(f"{session.chosen_count} preference pairs in {session.out}"
                       + (f"; {session.skipped_count} skipped (in {session.skipped_out})"
                          if session.skipped_count else "")))


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tunewise.advisor.labeling import CandidateGenerator, LabelingError, LabelingSession

    stdin = sys.stdin
    if not args.keys_from_stdin and not (stdin is not None and stdin.isatty()):
        raise LabelingError("tunewise label is interactive and standard input is not a terminal; run it in a "
                            "terminal, or pass --keys-from-stdin to read one key per line (a, b, s, u, q) from a "
                            "pipe")
    generator = CandidateGenerator(args.model, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                   seed=args.seed)
    session = LabelingSession.open(args.prompts, args.out, generator, labeler=args.labeler)
    console = Console(highlight=False, markup=False)  # prompts and answers are shown as written
    if session.decisions:
        console.print(f"continuing {session.out}: {session.chosen_count} labelled and {session.skipped_count} "
                      f"skipped earlier")
    try:
        with KeyReader(stdin, lines=args.keys_from_stdin) as keys:
            run_session(session, keys, console)
    finally:
        # A thread still inside torch when the interpreter exits aborts the process (SIGABRT): stop
        # the pair being written ahead at its next token and wait for every such thread to end.
        generator.close()
        for thread in _THREADS:
            thread.join(timeout=60)
    return 0
