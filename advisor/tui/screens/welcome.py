"""Welcome: what tunewise does, and the ways in (new consultation, saved answers, a run, labeling, an index)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option
from tunewise.advisor.tui.screens.base import TunewiseScreen

INTRO = (
    "tunewise asks about your data, budget, hardware and goals, ranks six ways to adapt a "
    "language model (RAG, in-context learning, full fine-tuning, LoRA, continual pretraining, "
    "RLHF) with a quote for each, then runs the one you pick and shows before/after results."
)

ACTIONS = (
    ("new", "Start a consultation", "n"),
    ("open", "Open saved answers…", "o"),
    ("run", "Resume or watch a run…", "r"),
    ("label", "Label preferences for RLHF…", "l"),
    ("ask", "Ask an existing index…", "a"),
    ("quit", "Quit", "q"),
)


class WelcomeScreen(TunewiseScreen):
    """The first screen; it imports nothing heavy so it paints fast."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "choose('new')", "New"),
        Binding("o", "choose('open')", "Open answers"),
        Binding("r", "choose('run')", "Run"),
        Binding("l", "choose('label')", "Label"),
        Binding("a", "choose('ask')", "Ask"),
        Binding("q", "choose('quit')", "Quit", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Center(), Vertical(id="welcome"):
            yield Static("tunewise", id="welcome-title")
            yield Static("choose how to adapt a language model, then do it", id="welcome-subtitle")
            yield Static(INTRO, id="welcome-intro")
            yield OptionList(
                *(Option(f"[b]{key}[/b]  {label}", id=action) for action, label, key in ACTIONS),
                id="welcome-actions",
            )
            yield Static("", id="welcome-methods")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.run_slow("loading plugins", self.tw.load_plugins, self._show_methods)

    def _show_methods(self, summary: str) -> None:
        self.query_one("#welcome-methods", Static).update(summary)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_choose(event.option.id or "")

    def action_choose(self, action: str) -> None:
        app = self.tw
        if action == "new":
            app.start_consultation()
        elif action == "open":
            app.ask_answers_file()
        elif action == "run":
            app.ask_run_dir()
        elif action == "label":
            app.ask_labeling()
        elif action == "ask":
            app.show_ask()
        elif action == "quit":
            app.exit(0)
