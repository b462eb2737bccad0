"""Helpers for the app's tests: run Pilot coroutines without an async pytest plugin."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any


def async_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test in a fresh event loop (fixtures still resolve via ``__wrapped__``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def screen_text(app: Any) -> str:
    """The app's current screen (with the screens under a modal) as plain text, one line per row."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, legacy_windows=False,
                      safe_box=False, color_system=None)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_until(pilot: Any, condition: Callable[[], Any], what: str, timeout: float = 240.0) -> Any:
    """Let the app run until ``condition()`` is truthy (and return it); fail naming ``what`` after ``timeout`` s.

    Tests wait for conditions, never for a fixed time: on a loaded machine a screen can take seconds
    to mount its widgets after it becomes current. A condition that raises counts as not yet true.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # a widget not mounted yet: NoMatches, or a screen mid-switch
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        await pilot.pause(0.1)
