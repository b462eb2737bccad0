"""Running plugin code so that nothing it does can end or freeze tunewise: its own thread, a time
limit, every exception caught.

Why a thread: a call that never returns (an endless loop, a blocking read) can only be given up on
if tunewise is not the one executing it. A thread cannot be killed, so a call past its limit is
*abandoned*: its daemon thread runs on until it returns or tunewise exits. Its result is never
read: :func:`run_isolated` returns only what the call returned in time, so a late result (or a
late ``register(...)`` into a private list the caller already discarded) changes nothing.

Why every ``BaseException``: ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit`` or a custom
``BaseException`` subclass raised by plugin code is the plugin's failure, not a request to stop
tunewise. A real Ctrl-C is still honoured: Python runs signal handlers in the main thread only and
plugin code never runs there, so a ``KeyboardInterrupt`` caught in the worker was raised by the
plugin, while the user's Ctrl-C interrupts the caller's wait and propagates as usual. (A plugin
that sends the process a real SIGINT, ``os.kill(os.getpid(), SIGINT)``, is indistinguishable from
the user and interrupts too; ``os._exit`` cannot be isolated in-process at all.)
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """How an isolated call ended: returned ``value``, raised ``error``, or ``timed_out``."""

    value: Any = None
    error: BaseException | None = None
    error_text: str = ""
    """``Type: message (file:line)`` of ``error``, made in the worker (a hostile ``__str__`` hangs there, not here)."""
    timed_out: bool = False
    elapsed: float = 0.0
    limit: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out

    @property
    def problem(self) -> str:
        """What went wrong, in words: the error, or the time limit it ran past ("" when ok)."""
        if self.timed_out:
            return f"did not return within {self.limit:g} s (abandoned)"
        return self.error_text


def describe_error(exc: BaseException) -> str:
    """``Type: message (file:line)``, where the line is the innermost frame of the traceback."""
    try:
        message = str(exc)
    except BaseException:  # an exception whose __str__ raises still gets reported
        message = "<unprintable>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})"
    return text


def run_isolated(fn: Callable[[], Any], limit: float | None, *, name: str = "tunewise-plugin") -> Outcome:
    """Call ``fn()`` in a daemon thread; wait at most ``limit`` seconds (None: no limit).

    Context variables are copied into the thread. Interrupting the wait (Ctrl-C) propagates to the
    caller; the thread is then abandoned like a timed-out one.
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as exc:  # see the module docstring
            box["error"] = exc
            box["error_text"] = describe_error(exc)
        finally:
            done.set()

    started = time.perf_counter()
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError as exc:  # no thread to be had (resource limits): not the plugin's fault, but say so
        return Outcome(error=exc, error_text=f"could not start a thread to run the plugin: {exc}", limit=limit)
    finished = done.wait(limit)
    elapsed = time.perf_counter() - started
    if not finished:
        return Outcome(timed_out=True, elapsed=elapsed, limit=limit)
    if "error" in box:
        return Outcome(error=box["error"], error_text=box["error_text"], elapsed=elapsed, limit=limit)
    return Outcome(value=box.get("value"), elapsed=elapsed, limit=limit)
