"""No secret on the console: a command's stdout and stderr pass the same redaction as its files.

:class:`ConsoleGuard` replaces ``sys.stdout`` and ``sys.stderr`` with :class:`RedactingStream`
for the length of a command, so every output path (``print``, ``--format json``, argparse errors,
warnings, logging, rich tables and progress bars) is covered at one boundary instead of at each
call site. rich lays text out before it reaches the stream, and a long secret wrapped over two
lines of a table or panel would no longer match, so the guard also makes rich redact text before
layout. Nothing is wrapped when the environment holds no secret.

Not covered: bytes written to ``sys.stdout.buffer`` (tunewise writes none) or to file descriptors
1 and 2 directly (C extensions, child processes that are not tunewise; tunewise's own children,
training subprocesses and torchrun ranks, run the same CLI and install their own guard).
"""

from __future__ import annotations

import re
import sys
import threading
from typing import IO, Any

from tunewise.plugins.redaction import REDACTED, redact, secret_forms, secret_values

_HOLD_LIMIT = 8192
"""Text without a line end is passed on once this much is pending (a secret is far shorter)."""


class RedactingStream:
    """A text stream that redacts ``secrets`` before passing text to ``raw``.

    Text is passed on at each line end (``\\n`` or ``\\r``, so progress lines still show) and on
    :meth:`flush`; a flush holds back only a tail that could be the start of a secret, so a secret
    written in two pieces, even with a flush between them, is still caught whole.
    """

    def __init__(self, raw: IO[str], secrets: tuple[str, ...]) -> None:
        self.raw = raw
        self.secrets = secrets
        self._forms = secret_forms(secrets)
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._pending += text
            end = max(self._pending.rfind("\n"), self._pending.rfind("\r"))
            if end >= 0:
                self.raw.write(redact(self._pending[: end + 1], self.secrets))
                self._pending = self._pending[end + 1:]
            if len(self._pending) > _HOLD_LIMIT:
                self._release(final=False)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            self._release(final=False)
        self.raw.flush()

    def close_guard(self) -> None:
        """Pass on everything still pending (the command is over; a partial secret is not one)."""
        with self._lock:
            self._release(final=True)
        self.raw.flush()

    def _release(self, final: bool) -> None:
        text = redact(self._pending, self.secrets)
        keep = 0 if final else self._secret_start(text)
        if len(text) > keep:
            self.raw.write(text[: len(text) - keep])
        self._pending = text[len(text) - keep:] if keep else ""

    def _secret_start(self, text: str) -> int:
        """Length of the longest tail of ``text`` that begins some written form of a secret."""
        lowered = text.lower()
        longest = 0
        for form in self._forms:
            for size in range(min(len(form) - 1, len(lowered)), longest, -1):
                if lowered.endswith(form[:size]):
                    longest = size
                    break
        return longest

    def __getattr__(self, name: str) -> Any:
        # encoding, isatty, fileno, errors, reconfigure, ...: the real stream's.
        return getattr(self.raw, name)


class ConsoleGuard:
    """Install with :meth:`install`, take off with :meth:`remove` (idempotent)."""

    def __init__(self, streams: dict[str, RedactingStream]) -> None:
        self.streams = streams

    @classmethod
    def install(cls) -> ConsoleGuard:
        secrets = secret_values()
        streams: dict[str, RedactingStream] = {}
        if secrets:
            for name in ("stdout", "stderr"):
                raw = getattr(sys, name)
                if raw is not None and not isinstance(raw, RedactingStream):
                    streams[name] = RedactingStream(raw, secrets)
                    setattr(sys, name, streams[name])
            _redact_rich(secrets)
        return cls(streams)

    def remove(self) -> None:
        """Pass on what is pending and put the real streams back (before the TUI takes the terminal)."""
        for name, stream in self.streams.items():
            stream.close_guard()
            if getattr(sys, name) is stream:
                setattr(sys, name, stream.raw)
        self.streams = {}
        _redact_rich(())


_RICH: dict[str, Any] = {"secrets": ()}
_BARE_MARKER = re.compile(r"(?<!\\)" + re.escape(REDACTED))


def _redact_rich(secrets: tuple[str, ...]) -> None:
    """Make rich redact ``secrets`` in strings and ``Text`` before wrapping them (``()``: stop)."""
    _RICH["secrets"] = secrets
    if not secrets or "render" in _RICH:
        return
    from rich.console import Console
    from rich.text import Text

    render, render_str = Console.render, Console.render_str
    _RICH.update(render=render, render_str=render_str)

    def redacting_render_str(self: Any, text: str, **kwargs: Any) -> Any:
        active = _RICH["secrets"]
        if active:
            text = redact(text, active)
            markup = kwargs.get("markup")
            if REDACTED in text and (getattr(self, "_markup", True) if markup is None else markup):
                text = _BARE_MARKER.sub(lambda m: "\\" + m.group(0), text)  # else markup would eat it
        return render_str(self, text, **kwargs)

    def redacting_render(self: Any, renderable: Any, options: Any = None) -> Any:
        active = _RICH["secrets"]
        if active and isinstance(renderable, Text):
            plain = redact(renderable.plain, active)
            if plain != renderable.plain:
                renderable = renderable.copy()
                renderable.plain = plain
        return render(self, renderable, options)

    Console.render_str = redacting_render_str  # type: ignore[method-assign]
    Console.render = redacting_render  # type: ignore[method-assign]
