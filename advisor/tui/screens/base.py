"""What every tunewise screen shares: slow work in thread workers whose failures open a dialog."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from textual.screen import Screen
from textual.worker import Worker, WorkerState
from tunewise.advisor.tui.screens.dialogs import ErrorDialog

if TYPE_CHECKING:
    from tunewise.advisor.tui.app import TunewiseApp

T = TypeVar("T")


class TunewiseScreen(Screen[Any]):
    """A screen with :meth:`run_slow`: call ``fn`` in a thread, hand its result to ``done``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slow_done: dict[Worker[Any], tuple[str, Callable[[Any], None], Callable[[BaseException], None] | None]] = {}

    @property
    def tw(self) -> TunewiseApp:
        """The app, typed (``self.app`` is typed as a plain ``App``)."""
        return cast("TunewiseApp", self.app)

    def run_slow(self, what: str, fn: Callable[[], T], done: Callable[[T], None], *,
                 failed: Callable[[BaseException], None] | None = None) -> Worker[T]:
        """Run ``fn`` in a worker thread; ``done(result)`` runs on the UI thread when it returns.

        If ``fn`` raises, ``failed(error)`` runs (when given) and an error dialog titled
        ``what`` opens; the app never exits because of it. A newer call with the same ``what``
        cancels the older one's callback.
        """
        worker: Worker[T] = self.run_worker(fn, name=what, group=what, thread=True, exit_on_error=False,
                                            exclusive=True)
        self._slow_done[worker] = (what, done, failed)
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        entry = self._slow_done.get(event.worker)
        if entry is None:
            return
        what, done, failed = entry
        if event.state == WorkerState.SUCCESS:
            del self._slow_done[event.worker]
            done(event.worker.result)
        elif event.state == WorkerState.ERROR:
            del self._slow_done[event.worker]
            error = event.worker.error or RuntimeError("unknown error")
            if failed is not None:
                failed(error)
            self.app.push_screen(ErrorDialog.for_exception(f"{what} failed", error))
        elif event.state == WorkerState.CANCELLED:
            del self._slow_done[event.worker]
