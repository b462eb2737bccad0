"""Try it: type a prompt, the base and the run's result answer it side by side as they write.

The models load in a worker (:func:`tunewise.advisor.tryout.open_run`); each prompt is answered in
a thread worker that posts every new piece of text to the panes with ``call_from_thread``, so keys
work while the models write. A new prompt cancels the answer still being written (its pieces are
dropped by generation number), and leaving the screen cancels it too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, Static
from tunewise.advisor.tui.screens.base import TunewiseScreen
from tunewise.advisor.tui.widgets.ordered_input import OrderedInput

if TYPE_CHECKING:
    from tunewise.advisor.tryout import Reply, TryOut

SIDES = ("base", "result")
POST_INTERVAL_S = 0.05
"""Pieces are posted to the screen at most this often: a fast model must not flood the UI thread."""


class TryItScreen(TunewiseScreen):
    """Base and result answering the same prompt (only the result without ``compare``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    #try-it { height: 1fr; }
    #try-head { height: auto; color: $text-muted; }
    #try-prompt { margin: 1 0 0 0; }
    #try-panes { height: 1fr; }
    .try-side { width: 1fr; height: 1fr; }
    .try-title { text-style: bold; color: $accent; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    .try-scroll { height: 1fr; border: round $primary; padding: 0 1; }
    .try-stats { height: auto; color: $text-muted; }
    """

    def __init__(self, run_dir: Path, *, compare: bool = True, allow_outside_paths: bool | None = None,
                 max_new_tokens: int | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.compare = compare
        self.allow_outside_paths = allow_outside_paths
        self.max_new_tokens = max_new_tokens
        """Longest answer in tokens (None: the length the run's own evaluation used)."""
        self.tryout: TryOut | None = None
        self.load_error: str | None = None
        self.pending: str | None = None
        self.generation = 0
        self.generating = False
        self.replies: dict[str, Reply] = {}
        """The finished answers to the current prompt."""
        self.history: list[tuple[str, Reply]] = []
        """Every answer given here, oldest first: (prompt, reply), cancelled ones included."""
        self._cancel = threading.Event()
        self._texts: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="try-it"):
            yield Static(Text(f"Loading the run in {self.run_dir} …"), id="try-head")
            yield OrderedInput(placeholder="Type a prompt and press Enter (a new prompt replaces the answer being written)",
                        id="try-prompt")
            with Horizontal(id="try-panes"):
                for which in SIDES:
                    with Vertical(classes="try-side", id=f"try-{which}"):
                        yield Static(which, classes="try-title", id=f"try-{which}-title")
                        with VerticalScroll(classes="try-scroll", id=f"try-{which}-scroll"):
                            yield Static("", id=f"try-{which}-answer")
                        yield Static("", classes="try-stats", id=f"try-{which}-stats")
        yield Footer()

    def on_mount(self) -> None:
        from tunewise.advisor.tryout import open_run

        self.sub_title = f"Try it · {self.run_dir}"
        self.query_one(f"#try-{SIDES[0]}").display = self.compare
        self.query_one("#try-prompt", Input).focus()
        self.run_slow("Loading the run's models",
                      lambda: open_run(self.run_dir, compare=self.compare,
                                       allow_outside_paths=self.allow_outside_paths), self._loaded,
                      failed=self._load_failed)

    def _load_failed(self, error: BaseException) -> None:
        self.load_error = str(error)
        self.query_one("#try-head", Static).update(Text(f"This run cannot be tried: {error}"))

    def _loaded(self, tryout: TryOut) -> None:
        self.tryout = tryout
        lines = [f"{tryout.method} run · answers up to {self.max_new_tokens or tryout.max_new_tokens} tokens, greedy"]
        lines += [f"note: {note}" for note in tryout.notes]
        self.query_one("#try-head", Static).update(Text("\n".join(lines)))
        for which in SIDES:
            if which in tryout.sides:
                self.query_one(f"#try-{which}-title", Static).update(Text(f"{which}: {tryout.sides[which].what}"))
        if self.pending is not None:
            prompt, self.pending = self.pending, None
            self.ask(prompt)

    # -- asking --------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        if self.load_error is not None:
            self.notify("This run cannot be tried; the reason is above. Escape goes back.", severity="warning")
            return
        if self.tryout is None:
            self.pending = prompt
            self.notify("The models are still loading; your prompt is answered once they are ready.")
            return
        self.ask(prompt)

    def ask(self, prompt: str) -> None:
        """Answer ``prompt`` on every side, cancelling the answer still being written."""
        assert self.tryout is not None
        self._cancel.set()
        self._cancel = cancel = threading.Event()
        self.generation += 1
        self.replies = {}
        order = [w for w in SIDES if w in self.tryout.sides]
        for which in order:
            self._texts[which] = ""
            self.query_one(f"#try-{which}-answer", Static).update("")
            self.query_one(f"#try-{which}-stats", Static).update("waiting…" if which != order[0] else "writing…")
        self.generating = True
        generation = self.generation
        self.run_worker(lambda: self._answer_all(self.tryout, prompt, order, generation, cancel), thread=True,
                        group="try-it", name="try-it answers", exit_on_error=False)

    def _answer_all(self, tryout: Any, prompt: str, order: list[str], generation: int,
                    cancel: threading.Event) -> None:
        """In a worker thread: each side answers in turn, its pieces posted to the UI as they come."""
        counts = {"tokens": 0, "seconds": 0.0}
        buffer: list[str] = []
        posted = [0.0]

        def progress(tokens: int, seconds: float) -> None:
            counts.update(tokens=tokens, seconds=seconds)

        def flush(which: str) -> None:
            if buffer:
                text = "".join(buffer)
                buffer.clear()
                posted[0] = time.monotonic()
                self.app.call_from_thread(self._piece, generation, which, text, counts["tokens"], counts["seconds"])

        try:
            for which in order:
                if cancel.is_set():
                    break

                def piece(text: str, which: str = which) -> None:
                    buffer.append(text)
                    if time.monotonic() - posted[0] >= POST_INTERVAL_S:
                        flush(which)

                reply = tryout.answer(prompt, which, stream=piece, progress=progress, cancel=cancel,
                                      max_new_tokens=self.max_new_tokens)
                self.history.append((prompt, reply))
                flush(which)
                self.app.call_from_thread(self._done, generation, which, reply)
        except RuntimeError:  # the app closed while a side was writing
            cancel.set()
        except Exception as exc:  # shown on the screen, never a crash
            cancel.set()
            with contextlib.suppress(RuntimeError):
                self.app.call_from_thread(self._failed, generation, exc)
        finally:
            with contextlib.suppress(RuntimeError):  # RuntimeError: the app is gone
                self.app.call_from_thread(self._stopped, generation)

    # -- on the UI thread ----------------------------------------------------------------------

    def _current(self, generation: int) -> bool:
        """Whether pieces of ``generation`` still belong on screen (not an earlier prompt's, not after leaving)."""
        return generation == self.generation and self.is_mounted

    def _piece(self, generation: int, which: str, text: str, tokens: int, seconds: float) -> None:
        if not self._current(generation):
            return
        shown = self._texts.get(which, "")
        if not shown.strip():
            text = text.lstrip()
        self._texts[which] = shown + text
        self.query_one(f"#try-{which}-answer", Static).update(Text(self._texts[which]))
        self.query_one(f"#try-{which}-scroll", VerticalScroll).scroll_end(animate=False)
        speed = f" · {tokens / seconds:.1f} tokens/s" if seconds > 0 else ""
        self.query_one(f"#try-{which}-stats", Static).update(f"writing… {tokens} tokens{speed}")

    def _done(self, generation: int, which: str, reply: Reply) -> None:
        if not self._current(generation):
            return
        self.replies[which] = reply
        answer = reply.answer or "(empty answer)"
        self.query_one(f"#try-{which}-answer", Static).update(Text(answer))
        parts = [f"{reply.tokens} tokens", f"{reply.tokens_per_s:.1f} tokens/s", f"{reply.seconds:.1f} s"]
        if reply.cancelled:
            parts.append("cancelled")
        if "examples" in reply.details:
            parts.append(f"{len(reply.details['examples'])} examples in the prompt")
        if reply.details.get("extractive"):
            parts.append("extractive")
        self.query_one(f"#try-{which}-stats", Static).update(" · ".join(parts))

    def _failed(self, generation: int, error: BaseException) -> None:
        from tunewise.advisor.tui.screens.dialogs import ErrorDialog

        if self._current(generation):
            self.app.push_screen(ErrorDialog.for_exception("Answering failed", error))

    def _stopped(self, generation: int) -> None:
        if generation == self.generation:
            self.generating = False

    # -- leaving -------------------------------------------------------------------------------

    def action_back(self) -> None:
        self._stop()
        self.app.pop_screen()

    def on_unmount(self) -> None:
        self._stop()

    def _stop(self) -> None:
        """Cancel the answer being written and drop whatever it still posts."""
        self._cancel.set()
        self.generation += 1
        self.generating = False
