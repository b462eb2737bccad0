"""One interview question as a form field: text, help, default, the right input for its type, errors.

The field turns what is typed into a typed value (``int``, ``float``, ``bool``, a choice, a list of
choices, a path or None) and checks it against the question's own limits as you type; the
interview's full validation (the answers loader) still runs when leaving a topic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, SelectionList, Static, Switch
from tunewise.advisor.tui.widgets.checklist import Checklist
from tunewise.advisor.tui.widgets.ordered_input import OrderedInput
from tunewise.plugins.types import Question


def show_value(value: Any) -> str:
    """How a default reads in the form: lists joined, None as 'none'."""
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def show_input(value: Any) -> str:
    """A value as the text an input field starts with (whole floats without '.0')."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_value(question: Question, raw: Any) -> tuple[Any, str | None]:
    """``(value, error)`` for what the widget holds; ``error`` is None when it is valid."""
    kind = question.type
    if kind in ("int", "float"):
        text = str(raw).strip().replace("_", "").replace(",", "")
        if not text:
            return None, "a number is required"
        try:
            value: Any = int(text) if kind == "int" else float(text)
        except ValueError:
            return None, f"must be {'a whole number' if kind == 'int' else 'a number'}"
        if kind == "float" and not math.isfinite(value):  # "nan" passes the minimum below; "inf" overflows quotes
            return value, "must be a finite number"
        if question.minimum is not None and value < question.minimum:
            return value, f"must be ≥ {question.minimum:g}"
        return value, None
    if kind == "path":
        text = str(raw).strip()
        if not text:
            return None, None
        if not Path(text).expanduser().exists():
            return text, f"{text} does not exist"
        return text, None
    if kind == "multi":
        values = list(raw)
        if not values and question.choices:
            return values, "choose at least one"
        return values, None
    if kind == "bool":
        return bool(raw), None
    if kind == "choice":
        if raw not in question.choices:
            return raw, f"choose one of {', '.join(question.choices)}"
        return raw, None
    return str(raw), None


class QuestionField(Widget):
    """A question with its input; posts :class:`QuestionField.Changed` with the parsed value."""

    class Changed(Message):
        def __init__(self, field: QuestionField, value: Any, error: str | None) -> None:
            super().__init__()
            self.field = field
            self.value = value
            self.error = error

        @property
        def control(self) -> QuestionField:
            return self.field

    def __init__(self, question: Question, value: Any = None,
                 check: Callable[[Question, Any], Any] | None = None) -> None:
        """``check(question, raw)`` parses and validates (ValueError = invalid); default: :func:`parse_value`."""
        super().__init__(id=f"q-{question.id.replace('.', '-')}")
        self.question = question
        self.initial = question.default if value is None and question.type != "path" else value
        self.check = check
        self.error: str | None = None

    def _parse(self) -> tuple[Any, str | None]:
        raw = self.raw_value()
        if self.check is None:
            return parse_value(self.question, raw)
        try:
            return self.check(self.question, raw), None
        except ValueError as exc:
            return raw, str(exc)

    def compose(self) -> ComposeResult:
        q = self.question
        yield Label(q.text, classes="question-text")
        yield self._input()
        yield Label("", classes="field-error")
        if q.help:
            yield Static(q.help, classes="question-help", markup=False)
        if q.default not in (None, "", []) or q.type == "bool":
            yield Label(f"default: {show_value(q.default)}", classes="question-default", markup=False)

    def on_mount(self) -> None:
        self.query_one(".field-error", Label).display = False

    def _input(self) -> Widget:
        q, value = self.question, self.initial
        if q.type == "bool":
            return Switch(value=bool(value), id="input")
        if q.type == "choice":
            options = [(c, c) for c in q.choices]
            return Select(options, value=value if value in q.choices else Select.NULL, allow_blank=value not in q.choices,
                          id="input")
        if q.type == "multi":
            chosen = set(value or ())
            return Checklist[str](*((c, c, c in chosen) for c in q.choices), id="input")
        # With a checker, numbers are typed freely ("500M", "2e9") and the checker parses them.
        kind = "text" if self.check else {"int": "integer", "float": "number"}.get(q.type, "text")
        placeholder = "optional: a file or folder to audit" if q.type == "path" else ""
        return OrderedInput(value=show_input(value), type=kind, placeholder=placeholder,  # type: ignore[arg-type]
                            id="input")

    def raw_value(self) -> Any:
        widget = self.query_one("#input")
        if isinstance(widget, Switch):
            return widget.value
        if isinstance(widget, Select):
            return None if widget.value is Select.NULL else widget.value
        if isinstance(widget, SelectionList):
            return list(widget.selected)
        assert isinstance(widget, Input)
        return widget.value

    @property
    def value(self) -> Any:
        return self._parse()[0]

    def validate_now(self) -> str | None:
        """Check the current value, show or clear the error, and return it."""
        _, error = self._parse()
        self.show_error(error)
        return error

    def show_error(self, error: str | None) -> None:
        self.error = error
        label = self.query_one(".field-error", Label)
        label.update(error or "")
        label.display = error is not None
        self.set_class(error is not None, "-invalid")

    def focus_input(self) -> None:
        self.query_one("#input").focus()

    def _changed(self) -> None:
        value, error = self._parse()
        self.show_error(error)
        self.post_message(self.Changed(self, value, error))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        event.stop()
        self._changed()
