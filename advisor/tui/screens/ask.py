"""Ask: questions to an index (a RAG run's, or any index folder), answered with citations and the cited passages.

The path is checked at once (:func:`tunewise.advisor.asking.find_index`, no model loaded); the index and
its model load in a worker, and each question is answered in a thread worker that posts the model's text
as it is written, so keys work meanwhile. Questions typed while one is answered wait their turn. Every
answer stays on screen, oldest first, with how it was made (generated with checked citations, or
extractive) and the passages it cites.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option
from tunewise.advisor.tui.screens.base import TunewiseScreen
from tunewise.advisor.tui.widgets.ordered_input import OrderedInput

if TYPE_CHECKING:
    from tunewise.advisor.asking import Asked, Asker, IndexTarget

POST_INTERVAL_S = 0.05
"""The model's text is posted to the screen at most this often (a fast model must not flood the UI thread)."""
PASSAGE_CHARS = 400
"""A cited passage is shown up to this many characters (the whole of it is in the index)."""


def entry_text(question: str, asked: Asked | None, written: str, min_relevance: float, *,
               failed: str | None = None) -> Text:
    """One question and its answer as shown: the answer, how it was made, and the cited passages."""
    from tunewise.plugins.redaction import redact

    text = Text()
    text.append("Q: ", style="bold")
    text.append(question + "\n", style="bold")
    if failed is not None:
        text.append(f"could not answer: {failed}\n", style="red")
        return text
    if asked is None:
        text.append(written or "…", style="italic")
        text.append("\n(writing…)\n" if written else "\n(retrieving…)\n", style="dim")
        return text
    from tunewise.advisor.asking import how_answered

    answer = asked.answer
    text.append(redact(answer.text) + "\n")
    text.append(how_answered(asked, min_relevance) + "\n", style="dim italic")
    if answer.extractive and answer.generated:
        reply = redact(" ".join(answer.generated.split()))
        text.append(f"the model wrote: {reply[:200]}{'…' if len(reply) > 200 else ''}\n", style="dim")
    if answer.relevance is not None and answer.passages:
        text.append(f"best passage similarity {answer.relevance:.2f}\n", style="dim")
    cited = set(answer.cited)
    for passage in answer.passages:
        if passage.number in cited:
            text.append(f"[{passage.number}] {passage.label()}\n", style="bold cyan")
            body = redact(" ".join(passage.text.split()))  # before the cut, which could leave part of a secret
            text.append("    " + body[:PASSAGE_CHARS] + ("…" if len(body) > PASSAGE_CHARS else "") + "\n")
        else:
            text.append(f"[{passage.number}] {passage.label()} (retrieved, not cited)\n", style="dim")
    if answer.unknown_citations:
        text.append("citations naming no passage: " + ", ".join(f"[{n}]" for n in answer.unknown_citations) + "\n",
                    style="yellow")
    return text


class AskScreen(TunewiseScreen):
    """Questions to ``index_dir`` (an index folder or a RAG run folder); without one, the user names it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, index_dir: Path | None = None, *, model: str | None = None,
                 allow_outside_paths: bool | None = None) -> None:
        super().__init__()
        self.index_dir = Path(index_dir) if index_dir is not None else None
        self.model = model
        """The generator for a bare index folder (None: the embedded model); a run uses its plan's."""
        self.allow_outside_paths = allow_outside_paths
        self.target: IndexTarget | None = None
        self.asker: Asker | None = None
        self.load_error: str | None = None
        self.pending: deque[str] = deque()
        self.answering = False
        self.history: list[tuple[str, Asked | None]] = []
        """Every question asked here and its answer (None while it is answered or when it failed)."""
        self._cancel = threading.Event()
        self._written = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="ask"):
            yield Static(Text("Give an index folder or the output folder of a RAG run, then press Enter."),
                         id="ask-head")
            yield OrderedInput(value=str(self.index_dir or ""), placeholder="index folder or RAG run folder, e.g. "
                               "runs/rag", id="ask-index")
            yield OptionList(id="ask-recent")
            yield OrderedInput(placeholder="Type a question and press Enter", id="ask-question")
            yield VerticalScroll(id="ask-history")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Ask an index"
        recent = self.query_one("#ask-recent", OptionList)
        recent.display = False
        if self.index_dir is not None:
            self.open_index(str(self.index_dir))
            self.query_one("#ask-question", Input).focus()
            return
        self.query_one("#ask-index", Input).focus()
        self.run_slow("Finding recent RAG runs", self._recent, self._show_recent)

    def _recent(self) -> list[Path]:
        from tunewise.advisor.asking import recent_rag_runs

        return recent_rag_runs(self.tw.workdir, self.tw.decisions_dir)

    def _show_recent(self, runs: list[Path]) -> None:
        if not runs or self.asker is not None:
            return
        recent = self.query_one("#ask-recent", OptionList)
        recent.clear_options()
        workdir = self.tw.workdir.resolve()
        for run in runs:
            shown = run.relative_to(workdir) if run.is_relative_to(workdir) else run
            recent.add_option(Option(f"recent RAG run: {shown}", id=str(run)))
        recent.display = True

    def _head(self, message: str) -> None:
        self.query_one("#ask-head", Static).update(Text(message))

    # -- opening ---------------------------------------------------------------------------------

    def open_index(self, path: str) -> None:
        """Check ``path`` (a message names it when it is no index) and load it in a worker."""
        from tunewise.advisor.asking import AskError, find_index, open_asker

        try:
            target = find_index(path)
        except AskError as exc:
            self.load_error = str(exc)
            self._head(f"Not an index: {exc}")
            self.notify(str(exc), title="not an index", severity="error", markup=False)
            return
        self.target, self.asker, self.load_error = target, None, None
        self.query_one("#ask-recent", OptionList).display = False
        self._head(f"Opening {target.run_dir or target.index_dir} (loading the index and the model) …")
        model, outside = self.model, self.allow_outside_paths
        self.run_slow("Opening the index", lambda: open_asker(target, model=model, allow_outside_paths=outside),
                      self._opened, failed=self._open_failed)

    def _open_failed(self, error: BaseException) -> None:
        self.load_error = str(error)
        self._head(f"This index cannot be asked: {error}")
        if self.pending:  # typed while it loaded: say they were not asked, rather than keep them forever
            self.notify(f"{len(self.pending)} question(s) not asked: the index could not be opened.",
                        severity="warning")
            self.pending.clear()

    def _opened(self, asker: Asker) -> None:
        self.asker = asker
        lines = [f"Asking {asker.describe()}", *(f"note: {note}" for note in asker.notes)]
        self._head("\n".join(lines))
        self._next()

    # -- asking --------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "ask-index":
            if event.value.strip():
                self.open_index(event.value)
                self.query_one("#ask-question", Input).focus()
            return
        question = event.value.strip()
        if not question:
            return
        event.input.value = ""
        if self.load_error is not None and self.asker is None:
            self.notify("No index is open; give an index folder above.", severity="warning")
            return
        if self.target is None:
            self.notify("Give an index folder or a RAG run folder above first.", severity="warning")
            return
        self.pending.append(question)
        if self.asker is None or self.answering:
            self.notify("Your question is answered once " +
                        ("the index is loaded." if self.asker is None else "the current answer is done."))
        self._next()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        path = event.option.id or ""
        self.query_one("#ask-index", Input).value = path
        self.open_index(path)
        self.query_one("#ask-question", Input).focus()

    def _next(self) -> None:
        """Answer the oldest waiting question, when the index is loaded and nothing is being answered."""
        if self.asker is None or self.answering or not self.pending:
            return
        question = self.pending.popleft()
        self.answering = True
        self._written = ""
        number = len(self.history)
        self.history.append((question, None))
        entry = Static(entry_text(question, None, "", self.asker.config.min_relevance), classes="ask-entry",
                       id=f"ask-entry-{number}")
        history = self.query_one("#ask-history", VerticalScroll)
        history.mount(entry)
        history.scroll_end(animate=False)
        asker, cancel = self.asker, self._cancel
        self.run_worker(lambda: self._answer(asker, question, number, cancel), thread=True, group="ask",
                        name="ask answer", exit_on_error=False)

    def _answer(self, asker: Asker, question: str, number: int, cancel: threading.Event) -> None:
        """In a worker thread: the answer, the model's text posted as it is written."""
        buffer: list[str] = []
        posted = [0.0]

        def flush() -> None:
            if buffer:
                piece = "".join(buffer)
                buffer.clear()
                posted[0] = time.monotonic()
                self.app.call_from_thread(self._piece, number, piece)

        def stream(piece: str) -> None:
            buffer.append(piece)
            if time.monotonic() - posted[0] >= POST_INTERVAL_S:
                flush()

        try:
            asked = asker.ask(question, stream=stream, cancel=cancel)
            flush()
            self.app.call_from_thread(self._done, number, asked)
        except RuntimeError as exc:  # the app closed while the model was writing
            with contextlib.suppress(RuntimeError):
                self.app.call_from_thread(self._failed, number, exc)
        except Exception as exc:  # shown in the entry, never a crash
            with contextlib.suppress(RuntimeError):
                self.app.call_from_thread(self._failed, number, exc)

    # -- on the UI thread ------------------------------------------------------------------------

    def _entry(self, number: int) -> Static | None:
        if not self.is_mounted:
            return None
        found = self.query(f"#ask-entry-{number}")
        return found.first(Static) if found else None

    def _piece(self, number: int, piece: str) -> None:
        entry = self._entry(number)
        if entry is None or self.asker is None:
            return
        self._written = (self._written + piece).lstrip()
        entry.update(entry_text(self.history[number][0], None, self._written, self.asker.config.min_relevance))
        self.query_one("#ask-history", VerticalScroll).scroll_end(animate=False)

    def _done(self, number: int, asked: Asked) -> None:
        self.history[number] = (self.history[number][0], asked)
        entry = self._entry(number)
        if entry is not None and self.asker is not None:
            entry.update(entry_text(asked.answer.question, asked, "", self.asker.config.min_relevance))
            self.query_one("#ask-history", VerticalScroll).scroll_end(animate=False)
        self.answering = False
        self._next()

    def _failed(self, number: int, error: BaseException) -> None:
        entry = self._entry(number)
        if entry is not None:
            entry.update(entry_text(self.history[number][0], None, "", 0.0, failed=str(error) or type(error).__name__))
        self.answering = False
        self._next()

    # -- leaving -------------------------------------------------------------------------------

    def action_back(self) -> None:
        self._cancel.set()
        self.app.pop_screen()

    def on_unmount(self) -> None:
        self._cancel.set()
