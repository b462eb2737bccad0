"""Preferences: two answers side by side, pick the better one, skip or undo (RLHF labeling).

All state lives in :class:`tunewise.advisor.labeling.LabelingSession` (shared with
``tunewise label``); this screen draws it and turns keys into its calls. Generation runs in a
worker, and the next prompt's pair is generated while the person reads the current one.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Static
from tunewise.advisor.labeling import CandidateGenerator, LabelingSession, LabelPrompt
from tunewise.advisor.tui.screens.base import TunewiseScreen


class PreferencesScreen(TunewiseScreen):
    """Labels ``prompts`` into ``out`` (appended, flushed per decision; reopening resumes)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1,a", "choose(0)", "A is better"),
        Binding("2,b", "choose(1)", "B is better"),
        Binding("s", "skip", "Skip"),
        Binding("u", "undo", "Undo"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, prompts: Path, out: Path, *, model: str | None = None,
                 session: LabelingSession | None = None) -> None:
        super().__init__()
        self.prompts_path = Path(prompts)
        self.out = Path(out)
        self.model = model
        self.session = session
        self.current: LabelPrompt | None = None
        self.pair: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="pref-head")
        yield Static("", id="pref-prompt")
        with Horizontal(id="pref-pair"):
            with VerticalScroll(classes="candidate", id="pref-a"):
                yield Static("", id="pref-a-text", markup=False)
            with VerticalScroll(classes="candidate", id="pref-b"):
                yield Static("", id="pref-b-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pref-a").border_title = "A  (1)"
        self.query_one("#pref-b").border_title = "B  (2)"
        if self.session is not None:
            self._opened(self.session)
            return
        self.query_one("#pref-head", Static).update(f"opening {self.prompts_path} …")
        generator = CandidateGenerator(self.model)
        self.run_slow("opening the prompts",
                      lambda: LabelingSession.open(self.prompts_path, self.out, generator),
                      self._opened, failed=lambda _: self.app.pop_screen())

    def _opened(self, session: LabelingSession) -> None:
        self.session = session
        self._show(session.next_prompt())

    # -- drawing -------------------------------------------------------------------------------

    def _head(self) -> None:
        assert self.session is not None
        s = self.session
        self.query_one("#pref-head", Static).update(
            f"[b]Preferences[/b] · {s.chosen_count} chosen · {s.skipped_count} skipped · "
            f"{len(s.pending())} to go of {s.total} · saving to {s.out.name}")

    def _show(self, prompt: LabelPrompt | None) -> None:
        assert self.session is not None
        self.current, self.pair = prompt, None
        self._head()
        a, b = self.query_one("#pref-a-text", Static), self.query_one("#pref-b-text", Static)
        if prompt is None:
            self.query_one("#pref-prompt", Static).update(
                f"All prompts have a decision. {self.session.chosen_count} preference pairs are in {self.session.out}.")
            a.update("")
            b.update("")
            return
        self.query_one("#pref-prompt", Static).update(f"[b]Prompt {prompt.index + 1}:[/b] {_escape(prompt.prompt)}")
        a.update("generating two answers … (the first one loads the model)")
        b.update("")
        session = self.session
        self.run_slow("generating answers", lambda: session.candidates(prompt),
                      lambda pair: self._show_pair(prompt, pair))

    def _show_pair(self, prompt: LabelPrompt, pair: tuple[str, str]) -> None:
        if prompt != self.current:
            return  # the person moved on (undo) while this was generating
        self.pair = pair
        self.query_one("#pref-a-text", Static).update(pair[0])
        self.query_one("#pref-b-text", Static).update(pair[1])
        self._prefetch()

    def _prefetch(self) -> None:
        """Generate the following prompt's pair while this one is read."""
        assert self.session is not None
        pending = [p for p in self.session.pending() if p != self.current]
        if pending and pending[0].candidates is None:
            session, upcoming = self.session, pending[0]
            self.run_slow("preparing the next prompt", lambda: session.candidates(upcoming), lambda _: None)

    # -- actions ---------------------------------------------------------------------------

    def _ready(self) -> bool:
        if self.session is None or self.current is None:
            return False
        if self.pair is None:
            self.notify("The answers are still being generated.", severity="warning")
            return False
        return True

    def action_choose(self, preferred: int) -> None:
        if not self._ready():
            return
        assert self.session is not None and self.current is not None
        self.session.choose(self.current, preferred)
        self._show(self.session.next_prompt())

    def action_skip(self) -> None:
        if self.session is None or self.current is None:
            return
        self.session.skip(self.current)
        self._show(self.session.next_prompt())

    def action_undo(self) -> None:
        if self.session is None:
            return
        prompt = self.session.undo()
        if prompt is None:
            self.notify("Nothing to undo.", severity="warning")
            return
        self.notify(f"Prompt {prompt.index + 1} is open again.")
        self._show(prompt)

    def action_back(self) -> None:
        self.app.pop_screen()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
