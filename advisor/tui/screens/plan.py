"""Plan: the chosen method's settings with defaults and help, saved as a commented plan YAML, then run.

The plan is checked by the same loader ``tunewise run`` uses (:mod:`tunewise.advisor.plans`), so
what the app saves is what the command accepts; its problems show next to the fields they name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Collapsible, Footer, Header, Static, TextArea
from tunewise.advisor.tui.config_form import (
    TRAINING_PREFIX,
    PlanSection,
    plan_document,
    plan_problems,
    plan_sections,
    plan_yaml,
    with_defaults,
)
from tunewise.advisor.tui.run_watch import run_command
from tunewise.advisor.tui.screens.base import TunewiseScreen
from tunewise.advisor.tui.screens.dialogs import PathDialog
from tunewise.advisor.tui.widgets.ordered_input import OrderedInput
from tunewise.advisor.tui.widgets.question_field import QuestionField
from tunewise.plugins.redaction import redact

RAG_QUESTIONS_HELP = (
    "[b]Questions[/b] · this plan has no question file (config.questions), so the run would only build the "
    "index: nothing to show that answers with retrieval beat answers without. Type a few questions, "
    "{fmt}; then Write. Or name a question file in config.questions."
)


def _free_output_dir(workdir: Path, method_id: str) -> str:
    """``runs/<method>``, or ``runs/<method>-2`` … when an earlier run already used it."""
    candidate, n = f"runs/{method_id}", 1
    while (workdir / candidate).exists():
        n += 1
        candidate = f"runs/{method_id}-{n}"
    return candidate


class PlanScreen(TunewiseScreen):
    """Edit, save (ctrl+s) and run (ctrl+r) a plan for ``method_id``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save plan", priority=True),
        Binding("ctrl+r", "run", "Run it", priority=True),
        Binding("ctrl+e", "training_settings", "Training settings", priority=True,
                tooltip="open the training settings and go to the first one (again: close them)"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, method_id: str) -> None:
        super().__init__()
        self.method_id = method_id
        self.sections: list[PlanSection] = []
        self.sized: dict[str, tuple[Any, str]] = {}
        self.plan_path: Path | None = None
        self.title_text = method_id
        self.questions_written: Path | None = None
        """The question file this screen wrote from typed questions (rewritten in place when typed again)."""
        self.run_without_questions = False

    def compose(self) -> ComposeResult:
        from tunewise.plugins.manager import get_host

        app = self.tw
        cls = get_host().methods.get(self.method_id)
        config_class = getattr(cls, "config_class", None)
        self.title_text = str(getattr(cls, "title", self.method_id))
        consultation = app.consultation
        model = consultation.answers.get("model.name") if consultation else None
        data = consultation.data_path() if consultation else None
        self.sections = plan_sections(self.method_id, config_class, model=model, data=data,
                                      output_dir=_free_output_dir(app.workdir, self.method_id))
        self.sized = self._sized()
        self.sections = with_defaults(self.sections, {TRAINING_PREFIX + name: value
                                                      for name, (value, _) in self.sized.items()})
        self.plan_path = app.workdir / "plans" / f"{self.method_id}.yaml"
        yield Header()
        with VerticalScroll(id="plan-form"):
            yield Static(f"[b]Plan: {self.title_text}[/b] · defaults filled in; every setting has its help",
                         id="plan-title")
            if config_class is None:
                yield Static(f"{self.title_text} has no settings of its own: the plan names its model, data "
                             "and output folder.", classes="question-help")
            for section in self.sections:
                collapsed = section.prefix == "training."
                with Collapsible(title=f"{section.title} ({len(section.questions)})", collapsed=collapsed,
                                 id="plan-training" if section.prefix == "training." else None):
                    for question in section.questions:
                        yield QuestionField(question)
                if self.method_id == "rag" and section.prefix == "plan.":  # after the data it asks about
                    yield from self._rag_questions()
        yield Static("", id="plan-command")
        with Horizontal(classes="nav-buttons"):
            yield Button("← Back", id="back", compact=True)
            yield Button("Save plan", id="save", compact=True)
            yield Button("Run it →", id="run", variant="primary", compact=True)
        yield Footer()

    # -- RAG: questions typed when the plan has no question file ----------------------------------

    def _rag_questions(self) -> ComposeResult:
        from tunewise.advisor.typed_questions import FORMAT_HELP

        with Vertical(id="rag-questions"):
            yield Static(RAG_QUESTIONS_HELP.format(fmt=FORMAT_HELP), classes="question-help")
            yield TextArea(id="rag-typed", soft_wrap=True, show_line_numbers=True)
            yield Button("Write questions", id="rag-write", compact=True)
            yield Static("", id="rag-questions-status")

    def _field(self, question_id: str) -> QuestionField | None:
        return next((f for f in self.query(QuestionField) if f.question.id == question_id), None)

    def _no_question_file(self) -> bool:
        field = self._field("config.questions")
        return self.method_id == "rag" and field is not None and not str(field.raw_value() or "").strip()

    def _questions_path(self) -> Path:
        from tunewise.advisor.typed_questions import free_path

        plan = self.plan_path or self.tw.workdir / "plans" / f"{self.method_id}.yaml"
        path = plan.with_name(f"{plan.stem}.questions.jsonl")
        return path if path == self.questions_written else free_path(path)

    def write_typed_questions(self) -> None:
        """Check the typed questions against the plan's documents (in a worker) and write the question file."""
        from tunewise.advisor.typed_questions import (
            TypedQuestionsError,
            parse_typed,
            summary,
            write_questions,
        )

        text = self.query_one("#rag-typed", TextArea).text
        data_field = self._field("plan.data")
        data = [d.strip() for d in str(data_field.raw_value() if data_field else "").split(",") if d.strip()]
        workdir = self.tw.workdir
        paths = [str(p if Path(p).expanduser().is_absolute() else workdir / p) for p in data]
        target = self._questions_path()

        def write() -> str | TypedQuestionsError:
            try:
                questions = parse_typed(text, paths)
                written = write_questions(questions, target)
            except TypedQuestionsError as exc:
                return exc
            return summary(questions, written)

        self._questions_status("checking the questions against the plan's documents …")
        self.run_slow("Writing the questions", write, lambda outcome: self._typed_written(outcome, target))

    def _questions_status(self, message: str, *, error: bool = False) -> None:
        status = self.query_one("#rag-questions-status", Static)
        status.update(message)
        status.set_class(error, "field-error")

    def _typed_written(self, outcome: Any, path: Path) -> None:
        if not isinstance(outcome, str):  # nothing written; the typed text stays as it is
            self._questions_status(f"nothing written, fix these lines:\n{outcome}", error=True)
            self.notify(str(outcome).splitlines()[0], severity="error", title="questions not written", markup=False)
            return
        self.questions_written = path
        field = self._field("config.questions")
        if field is not None:
            field.query_one("#input", OrderedInput).value = str(path)
        self._questions_status(outcome)
        self.notify(outcome, title="questions written", markup=False)

    def _rag_without_questions(self) -> bool:
        """True (and the user told, once) when a RAG plan would run with no question file."""
        if not self._no_question_file() or self.run_without_questions:
            return False
        self.run_without_questions = True
        typed = self.query_one("#rag-typed", TextArea).text.strip()
        self.notify("This RAG plan has no question file, so its run shows no bake-off. "
                    + ("Press Write to save the questions you typed" if typed else
                       "Type a few questions under Questions and press Write")
                    + " (or name a file in config.questions); ctrl+r again runs without.",
                    severity="warning", title="no questions", markup=False, timeout=12)
        area = self.query_one("#rag-typed", TextArea)
        area.focus()
        area.scroll_visible()
        return True

    def _sized(self) -> dict[str, tuple[Any, str]]:
        """Training setting -> (value, reason) sized like `tunewise plan` does; empty when it cannot be."""
        from tunewise.advisor.plan_sizing import size_for
        from tunewise.plugins.errors import TunewiseError

        consultation = self.tw.consultation
        if consultation is None:
            return {}
        try:
            sized = size_for(self.method_id, consultation.profile(), consultation.audit)
        except (TunewiseError, ValueError):  # unusable answers or hardware: the settings' own defaults
            return {}
        return {name: (value, sized.reasons[name]) for name, value in sized.settings.items()}

    def on_mount(self) -> None:
        self.sub_title = f"plan · {self.method_id}"
        self._show_command()
        if self.method_id == "rag":
            self.query_one("#rag-questions").display = self._no_question_file()
        fields = list(self.query(QuestionField))
        if fields:
            fields[0].focus_input()

    def _values(self) -> dict[str, Any]:
        return {field.question.id: field.raw_value() for field in self.query(QuestionField)}

    def _output_dir(self) -> str:
        for field in self.query(QuestionField):
            if field.question.id == "plan.output_dir":
                return str(field.raw_value() or f"runs/{self.method_id}")
        return f"runs/{self.method_id}"

    def _command(self) -> str:
        path = self.plan_path or Path("plan.yaml")
        shown = path.relative_to(self.tw.workdir) if path.is_relative_to(self.tw.workdir) else path
        return " ".join(run_command(shown, Path(self._output_dir())))

    def _show_command(self) -> None:
        self.query_one("#plan-command", Static).update(f"outside the app: [b]{self._command()}[/b]")

    def on_question_field_changed(self, event: QuestionField.Changed) -> None:
        if event.field.question.id == "plan.output_dir":
            self._show_command()
        if event.field.question.id == "config.questions" and self.method_id == "rag":
            self.query_one("#rag-questions").display = self._no_question_file() or self.questions_written is not None

    def _build(self) -> str | None:
        """The plan YAML when every field is valid (checked by the plan loader), else None."""
        from tunewise.advisor.plans import PlanError, parse_plan

        for field in self.query(QuestionField):
            field.show_error(None)
        document, errors = plan_document(self.method_id, self.sections, self._values())
        training = document.get("training") or {}
        reasons = {TRAINING_PREFIX + name: reason for name, (value, reason) in self.sized.items()
                   if training.get(name) == value}  # a value the user changed no longer has the sizing's reason
        text = plan_yaml(document, self.sections, self._command(), reasons=reasons)
        if not errors:
            try:
                parse_plan(text, source=str(self.plan_path), base_dir=self.tw.workdir)
            except PlanError as exc:
                errors = plan_problems(str(exc)) or {"plan.data": str(exc)}
        if not errors:
            return text
        fields = {field.question.id: field for field in self.query(QuestionField)}
        first = None
        for qid, message in errors.items():
            field = fields.get(qid)
            if field is None:
                continue
            field.show_error(message)
            first = first or field
        if first is not None:
            for collapsible in first.ancestors_with_self:
                if isinstance(collapsible, Collapsible):
                    collapsible.collapsed = False
            first.focus_input()
            first.scroll_visible()
        where, message = next(iter(errors.items()))
        self.notify(f"{where}: {message}", severity="error", title="the plan needs fixing", markup=False)
        return None

    def _write(self, path: Path, text: str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(redact(text), encoding="utf-8")
        tmp.replace(path)
        self.plan_path = path
        consultation = self.tw.consultation
        if consultation is not None:
            consultation.plan_path = path
            consultation.log.record("plan", {"method": self.method_id, "plan_path": str(path), "plan": text})
        self._show_command()
        return path

    def action_save(self) -> None:
        text = self._build()
        if text is None:
            return

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            self.plan_path = Path(path)
            final = self._build()  # the command line in the file names the chosen path
            if final is not None:
                self._write(Path(path), final)
                self.notify(f"plan saved to {path}", title="saved")

        self.app.push_screen(PathDialog("Save the plan to (YAML)", value=str(self.plan_path), must_exist=False),
                             chosen)

    def action_run(self) -> None:
        if self._rag_without_questions():
            return
        text = self._build()
        if text is None or self.plan_path is None:
            return
        path = self._write(self.plan_path, text)
        out_dir = self.tw.workdir / self._output_dir()
        process = self.tw.start_run(path, out_dir)
        self.tw.show_run(out_dir, process)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        action = {"back": self.action_back, "save": self.action_save, "run": self.action_run,
                  "rag-write": self.write_typed_questions}.get(
            event.button.id or "")
        if action:
            action()

    def action_training_settings(self) -> None:
        """Open the (collapsed) training settings at their first field, or close them again: 30 settings
        are too many to show by default, and tabbing to the collapsed title past every field was slow."""
        found = self.query("#plan-training")
        if not found:
            self.notify("This method has no training settings.", severity="warning")
            return
        section = found.first(Collapsible)
        section.collapsed = not section.collapsed
        if not section.collapsed:
            fields = list(section.query(QuestionField))
            if fields:
                self.call_after_refresh(fields[0].focus_input)
                self.call_after_refresh(section.scroll_visible, top=True)

    def action_back(self) -> None:
        self.app.pop_screen()
