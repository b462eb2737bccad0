"""Modal dialogs: an error with its details, a question for a path, a yes/no confirmation."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static
from tunewise.plugins.errors import TunewiseError


def describe_error(error: BaseException) -> tuple[str, str]:
    """The message for the user and, for unexpected errors, the traceback to show below it."""
    if isinstance(error, TunewiseError):
        return str(error), ""
    message = f"{type(error).__name__}: {error}"
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return message, details


class MessageDialog(ModalScreen[None]):
    """A message (and optional details) over the current screen; Enter or Escape closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "close", "Close")]
    DIALOG_CLASSES = "dialog"

    def __init__(self, title: str, message: str, details: str = "", *, overlay: bool = False) -> None:
        # ``overlay``: the screen underneath stays visible (dimmed), e.g. a run that goes on or ended.
        super().__init__(classes="dialog-screen dialog-overlay" if overlay else "dialog-screen")
        self.title_text = title
        self.message = message
        self.details = details

    def compose(self) -> ComposeResult:
        with Vertical(classes=self.DIALOG_CLASSES):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.message, markup=False, id="error-message")
                if self.details:
                    yield Static(self.details, markup=False, classes="error-details")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", variant="primary", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class ErrorDialog(MessageDialog):
    """Shows what failed; the app stays usable underneath."""

    DIALOG_CLASSES = "dialog error-dialog"

    @classmethod
    def for_exception(cls, title: str, error: BaseException) -> ErrorDialog:
        message, details = describe_error(error)
        return cls(title, message, details)


class PathDialog(ModalScreen[Path | None]):
    """Asks for a file or folder; returns the path, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, *, placeholder: str = "", value: str = "", must_exist: bool = True,
                 want: str = "file") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.placeholder = placeholder
        self.value = value
        self.must_exist = must_exist
        self.want = want

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(value=self.value, placeholder=self.placeholder, id="path")
            yield Label("", id="path-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Open", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def _submit(self) -> None:
        raw = self.query_one("#path", Input).value.strip()
        error = self.query_one("#path-error", Label)
        if not raw:
            error.update("type a path")
            return
        path = Path(raw).expanduser()
        if self.must_exist:
            if not path.exists():
                error.update(f"{path} does not exist")
                return
            if self.want == "file" and not path.is_file():
                error.update(f"{path} is not a file")
                return
            if self.want == "dir" and not path.is_dir():
                error.update(f"{path} is not a folder")
                return
        self.dismiss(path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question over the screen it is about, which stays visible (dimmed) and live behind it;
    Enter/y confirms, Escape/n declines."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(classes="dialog-screen dialog-overlay")
        self.title_text = title
        self.message = message
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.yes, variant="primary", id="yes")
                yield Button(self.no, id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
