"""Interview: one topic per screen, defaults filled in, help under each question, inline validation.

Answers live in the consultation, not in the widgets: going back and forth keeps them, and
ctrl+s saves them to YAML at any point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Label, Static
from tunewise.advisor.tui.screens.base import TunewiseScreen
from tunewise.advisor.tui.screens.dialogs import PathDialog
from tunewise.advisor.tui.widgets.question_field import QuestionField


class InterviewScreen(TunewiseScreen):
    """The questions of topic number ``index`` of the consultation."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Next", priority=True),
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "save", "Save answers", priority=True),
        Binding("ctrl+r", "recommend", "Recommend now", priority=True),
    ]

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    @property
    def topic(self) -> Any:
        assert self.tw.consultation is not None
        return self.tw.consultation.topics[self.index]

    def compose(self) -> ComposeResult:
        consultation = self.tw.consultation
        assert consultation is not None
        topic = self.topic
        yield Header()
        with Horizontal(id="topic-head"):
            yield Label(topic.title, id="topic-title")
            yield Label(f"topic {self.index + 1} of {len(consultation.topics)}", id="topic-step")
        if topic.intro:
            yield Static(topic.intro, id="topic-intro", markup=False)
        with VerticalScroll(id="questions"):
            for question in topic.questions:
                field = QuestionField(question, consultation.value(question), consultation.check)
                field.display = consultation.asked(question)
                yield field
        with Horizontal(classes="nav-buttons"):
            yield Button("← Back", id="back", compact=True)
            yield Button("Save answers", id="save", compact=True)
            yield Button("Next →", id="next", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "interview"
        fields = [f for f in self.query(QuestionField) if f.display]
        if fields:
            fields[0].focus_input()

    def on_question_field_changed(self, event: QuestionField.Changed) -> None:
        consultation = self.tw.consultation
        assert consultation is not None
        if event.error is None:
            consultation.set(event.field.question.id, event.value)
        # Later questions may depend on this answer (ask_if).
        for field in self.query(QuestionField):
            field.display = consultation.asked(field.question)

    def _check(self) -> bool:
        """Validate this topic's visible fields, then the answers as a whole; True when all is well."""
        consultation = self.tw.consultation
        assert consultation is not None
        first_bad: QuestionField | None = None
        for field in self.query(QuestionField):
            if not field.display:
                continue
            error = field.validate_now()
            if error is None:
                consultation.set(field.question.id, field.value)
            elif first_bad is None:
                first_bad = field
        if first_bad is None:
            errors = consultation.errors_for(q.id for q in self.topic.questions)
            for field in self.query(QuestionField):
                if field.question.id in errors:
                    field.show_error(errors[field.question.id])
                    first_bad = first_bad or field
        if first_bad is not None:
            first_bad.focus_input()
            first_bad.scroll_visible()
            self.notify(f"{first_bad.question.text}: {first_bad.error}", severity="error", title="check this answer")
            return False
        return True

    def action_next(self) -> None:
        if not self._check():
            return
        consultation = self.tw.consultation
        assert consultation is not None
        if self.index + 1 < len(consultation.topics):
            self.tw.show_topic(self.index + 1)
        else:
            self._finish()

    def action_recommend(self) -> None:
        if self._check():
            self._finish()

    def _finish(self) -> None:
        consultation = self.tw.consultation
        assert consultation is not None
        problems = consultation.all_errors()
        if problems:
            where, message = next(iter(problems.items()))
            index = consultation.topic_of(where)
            self.notify(f"{where}: {message}", severity="error", title="an answer needs fixing")
            if index is not None and index != self.index:
                self.tw.show_topic(index)
            return
        consultation.record_answers()
        self.tw.after_interview()

    def action_back(self) -> None:
        for field in self.query(QuestionField):  # keep what is valid, even when going back
            if field.display and field.validate_now() is None:
                self.tw.consultation.set(field.question.id, field.value)
        self.app.pop_screen()

    def action_save(self) -> None:
        consultation = self.tw.consultation
        assert consultation is not None
        for field in self.query(QuestionField):
            if field.display and field.validate_now() is None:
                consultation.set(field.question.id, field.value)
        default = str(consultation.source or Path.cwd() / "tunewise-answers.yaml")

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            try:
                consultation.save_answers(path)
            except OSError as exc:
                self.notify(f"cannot write {path}: {exc}", severity="error")
                return
            self.notify(f"answers saved to {path}", title="saved")

        self.app.push_screen(PathDialog("Save answers to (YAML)", value=default, must_exist=False), chosen)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        action = {"back": self.action_back, "save": self.action_save, "next": self.action_next}.get(event.button.id or "")
        if action:
            action()
