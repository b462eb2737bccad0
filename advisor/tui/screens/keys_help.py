"""F1: every key of every screen, one entry per line, in a scrollable table (fits 80×24)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static
from tunewise.advisor.tui.key_help import key_entries

FOOTNOTE = ("`tunewise --run DIR` follows or resumes a run later; `tunewise --answers FILE` reopens answers. "
            "Closing the app never stops a run.")


def keys_table() -> Table:
    """The entries as a three-column table whose cells wrap inside their column, never across entries."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=True)
    table.add_column("screen", style="bold", no_wrap=True, ratio=2)
    table.add_column("key", no_wrap=True, ratio=2)
    table.add_column("what it does", ratio=5, overflow="fold")
    last = None
    for entry in key_entries():
        table.add_row(entry.screen if entry.screen != last else "", entry.keys, entry.what)
        last = entry.screen
    return table


class KeysHelp(ModalScreen[None]):
    """The key list over the current screen; Escape, Enter or F1 closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,f1", "close", "Close")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog keys-help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(keys_table(), id="keys-table")
                yield Static(FOOTNOTE, markup=False, classes="question-help")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", variant="primary", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
