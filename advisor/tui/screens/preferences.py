"""Preferences: two answers side by side, pick the better one, skip or undo (RLHF labeling).

All state lives in :class:`tunewise.advisor.labeling.LabelingSession` (shared with
``tunewise label``); this screen draws it and turns keys into its calls.

A key only ever counts for the pair on screen. The screen opens a pair (``session.show``) once it
has been drawn and :data:`~tunewise.advisor.labeling.SETTLE_S` has passed with no key pressed;
``1``/``2``/``s`` hand the session that pair's token, so nothing else can be decided. Keys pressed
while the next pair is being written, or as it appears, are dropped (never queued) with a hint on
the status line; ``u`` (undo) works at any time. The next prompt's pair is written in a worker
while the person reads the current one, so there is usually no wait, and every decision is
confirmed on the status line ("pair 3: kept A (chosen) — saved").
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import Footer, Header, Static
from tunewise.advisor.labeling import (
    SETTLE_S,
    CandidateGenerator,
    Generate,
    LabelingError,
    LabelingSession,
    LabelPrompt,
)
from tunewise.advisor.tui.screens.base import TunewiseScreen

STILL_WRITING = "still writing the next pair — wait for it (key ignored; u undoes)"
JUST_SHOWN = "this pair just appeared — key ignored; read it, then choose"
NOT_WRITTEN = "its answers could not be written — s skips this prompt, u undoes"
WELCOME = "a key counts only for the pair on screen; each choice is saved at once"


class PreferencesScreen(TunewiseScreen):
    """Labels ``prompts`` into ``out`` (appended, flushed per decision; reopening resumes)."""

    DEFAULT_CSS = """
    #pref-status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    #pref-status.-saved {
        background: $success 35%;
        color: $text;
    }
    #pref-status.-hint {
        background: $warning 35%;
        color: $text;
    }
    .candidate.-loading {
        border: round $panel-lighten-2;
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1,a", "choose(0)", "A is better"),
        Binding("2,b", "choose(1)", "B is better"),
        Binding("s", "skip", "Skip"),
        Binding("u", "undo", "Undo"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, prompts: Path, out: Path, *, model: str | None = None,
                 session: LabelingSession | None = None, generator: Generate | None = None) -> None:
        super().__init__()
        self.prompts_path = Path(prompts)
        self.out = Path(out)
        self.model = model
        self.generator = generator
        """What writes the candidates (default: a :class:`CandidateGenerator` for ``model``)."""
        self.session = session
        self.current: LabelPrompt | None = None
        """The prompt on screen (its pair loading, drawn, or open for a decision)."""
        self.pair: tuple[str, str] | None = None
        """The pair drawn for ``current``; None while it is being written."""
        self._failed = False
        self.settle_s = SETTLE_S
        """How long a drawn pair must be on screen with no key pressed before a key decides it."""
        self.flash_s = 1.5
        """How long a confirmation stays highlighted (its text stays until the next one)."""
        self._epoch = 0
        """Bumped whenever the screen moves to another prompt: late callbacks for an older one do nothing."""
        self._settle: Timer | None = None
        self._flash: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="pref-head")
        yield Static("", id="pref-prompt")
        with Horizontal(id="pref-pair"):
            with VerticalScroll(classes="candidate", id="pref-a"):
                yield Static("", id="pref-a-text", markup=False)
            with VerticalScroll(classes="candidate", id="pref-b"):
                yield Static("", id="pref-b-text", markup=False)
        yield Static("", id="pref-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pref-a").border_title = "A  (1)"
        self.query_one("#pref-b").border_title = "B  (2)"
        if self.session is not None:
            self._opened(self.session)
            return
        self.query_one("#pref-head", Static).update(f"opening {self.prompts_path} …")
        generator = self.generator if self.generator is not None else CandidateGenerator(self.model)
        self.run_slow("opening the prompts",
                      lambda: LabelingSession.open(self.prompts_path, self.out, generator),
                      self._opened, failed=lambda _: self.app.pop_screen())

    def on_unmount(self) -> None:
        if self.session is not None:
            self.session.hide()

    def _opened(self, session: LabelingSession) -> None:
        self.session = session
        self._status(WELCOME)
        self._advance(session.next_prompt())

    @property
    def accepting(self) -> bool:
        """Whether a key now decides the pair on screen (it has been drawn and has settled)."""
        return self.session is not None and self.session.shown is not None

    # -- moving between prompts ----------------------------------------------------------------

    def _advance(self, prompt: LabelPrompt | None) -> None:
        """Put ``prompt`` on screen: its pair at once if written, else a loading state and a worker."""
        assert self.session is not None
        session = self.session
        session.hide()
        self._epoch += 1
        epoch = self._epoch
        if self._settle is not None:
            self._settle.stop()
            self._settle = None
        self.current, self.pair, self._failed = prompt, None, False
        self._head()
        a, b = self.query_one("#pref-a-text", Static), self.query_one("#pref-b-text", Static)
        if prompt is None:
            self.query_one("#pref-prompt", Static).update(
                f"All prompts have a decision. {session.chosen_count} preference pairs are in {session.out}.")
            a.update("")
            b.update("")
            self._loading(False)
            return
        self.query_one("#pref-prompt", Static).update(f"[b]Prompt {prompt.index + 1}:[/b] {_escape(prompt.prompt)}")
        pair = session.ready_candidates(prompt)
        if pair is not None:
            self._present(epoch, prompt, pair)
            return
        a.update("writing two answers … (the first one loads the model)")
        b.update("keys pressed now are ignored; the pair opens once it is shown")
        self._loading(True)
        self.run_slow("generating answers", lambda: session.candidates(prompt),
                      lambda written: self._present(epoch, prompt, written),
                      failed=lambda _: self._not_written(epoch, prompt))

    def _present(self, epoch: int, prompt: LabelPrompt, pair: tuple[str, str]) -> None:
        if epoch != self._epoch:
            return  # the person moved on (undo, back) while this was being written
        self.pair = pair
        self.query_one("#pref-a-text", Static).update(pair[0])
        self.query_one("#pref-b-text", Static).update(pair[1])
        self._loading(False)
        self._prefetch()
        # Open only after the pair has been painted, and SETTLE_S after that with no key pressed.
        self.call_after_refresh(self._start_settle, epoch)

    def _not_written(self, epoch: int, prompt: LabelPrompt) -> None:
        if epoch != self._epoch:
            return
        self._failed = True
        self.query_one("#pref-a-text", Static).update("(the answers could not be written)")
        self.query_one("#pref-b-text", Static).update("press s to skip this prompt")
        self._status(NOT_WRITTEN, "-hint")
        self.call_after_refresh(self._start_settle, epoch)

    def _start_settle(self, epoch: int) -> None:
        if epoch != self._epoch:
            return
        if self._settle is not None:
            self._settle.stop()
        self._settle = self.set_timer(max(self.settle_s, 0.001), lambda: self._open(epoch))

    def _open(self, epoch: int) -> None:
        """The pair on screen has settled: from now on (and only now) a key decides it."""
        self._settle = None
        if epoch != self._epoch or self.session is None or self.current is None:
            return
        if self.pair is None and not self._failed:
            return
        try:
            self.session.show(self.current, self.pair)
        except LabelingError as exc:  # decided by another path meanwhile: say so, open nothing
            self.notify(str(exc), severity="error")
            return
        if self.query_one("#pref-status").has_class("-hint") and not self._failed:
            self._status(f"pair {self.current.index + 1} is open: 1 = A is better, 2 = B is better, s = skip")

    def _prefetch(self) -> None:
        """Write the following prompt's pair while this one is read (a failure shows when it comes up)."""
        assert self.session is not None
        session = self.session
        upcoming = [p for p in session.pending() if p != self.current]
        if upcoming and session.generate is not None and session.ready_candidates(upcoming[0]) is None:
            nxt = upcoming[0]
            self.run_worker(lambda: session.candidates(nxt), name="preparing the next pair",
                            group="prefetch", thread=True, exit_on_error=False)

    # -- drawing -------------------------------------------------------------------------------

    def _head(self) -> None:
        assert self.session is not None
        s = self.session
        self.query_one("#pref-head", Static).update(
            f"[b]Preferences[/b] · {s.chosen_count} chosen · {s.skipped_count} skipped · "
            f"{len(s.pending())} to go of {s.total} · saving to {s.out.name}")

    def _loading(self, loading: bool) -> None:
        for box in self.query(".candidate"):
            box.set_class(loading, "-loading")

    def _status(self, text: str, flash: str = "") -> None:
        status = self.query_one("#pref-status", Static)
        status.update(text)
        status.remove_class("-saved", "-hint")
        if self._flash is not None:
            self._flash.stop()
            self._flash = None
        if flash:
            status.add_class(flash)
            if flash == "-saved":
                self._flash = self.set_timer(self.flash_s, lambda: status.remove_class("-saved"))

    def _dropped(self) -> None:
        """A decision key while no pair is open: drop it, say why, and (as a pair appears) wait longer."""
        if self.session is None or self.current is None:
            return
        if self.pair is None and not self._failed:
            self._status(STILL_WRITING, "-hint")
            return
        self._status(NOT_WRITTEN if self._failed else JUST_SHOWN, "-hint")
        self._start_settle(self._epoch)

    # -- actions ---------------------------------------------------------------------------

    def action_choose(self, preferred: int) -> None:
        shown = self.session.shown if self.session is not None else None
        if shown is None or shown.pair is None:
            self._dropped()
            return
        assert self.session is not None
        try:
            self.session.choose(shown, preferred)
        except LabelingError as exc:
            self.notify(str(exc), severity="error")
            return
        self._status(f"pair {shown.prompt.index + 1}: kept {'AB'[preferred]} (chosen) — saved", "-saved")
        self._advance(self.session.next_prompt())

    def action_skip(self) -> None:
        shown = self.session.shown if self.session is not None else None
        if shown is None:
            self._dropped()
            return
        assert self.session is not None
        try:
            self.session.skip(shown)
        except LabelingError as exc:
            self.notify(str(exc), severity="error")
            return
        self._status(f"pair {shown.prompt.index + 1}: skipped — saved", "-saved")
        self._advance(self.session.next_prompt())

    def action_undo(self) -> None:
        if self.session is None:
            return
        prompt = self.session.undo()
        if prompt is None:
            self.notify("Nothing to undo.", severity="warning")
            return
        self._status(f"pair {prompt.index + 1}: decision undone — it is open again", "-saved")
        self._advance(prompt)

    def action_back(self) -> None:
        self.app.pop_screen()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
