"""Plan: the chosen method's settings with defaults and help, saved as a commented plan YAML, then run.

The plan is checked by the same loader ``tunewise run`` uses (:mod:`tunewise.advisor.plans`), so
what the app saves is what the command accepts; its problems show next to the fields they name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Collapsible, Footer, Header, Static
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
from tunewise.advisor.tui.widgets.question_field import QuestionField
from tunewise.plugins.redaction import redact


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
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, method_id: str) -> None:
        super().__init__()
        self.method_id = method_id
        self.sections: list[PlanSection] = []
        self.sized: dict[str, tuple[Any, str]] = {}
        self.plan_path: Path | None = None
        self.title_text = method_id

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
                with Collapsible(title=f"{section.title} ({len(section.questions)})", collapsed=collapsed):
                    for question in section.questions:
                        yield QuestionField(question)
        yield Static("", id="plan-command")
        with Horizontal(classes="nav-buttons"):
            yield Button("← Back", id="back", compact=True)
            yield Button("Save plan", id="save", compact=True)
            yield Button("Run it →", id="run", variant="primary", compact=True)
        yield Footer()

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
        text = self._build()
        if text is None or self.plan_path is None:
            return
        path = self._write(self.plan_path, text)
        out_dir = self.tw.workdir / self._output_dir()
        process = self.tw.start_run(path, out_dir)
        self.tw.show_run(out_dir, process)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        action = {"back": self.action_back, "save": self.action_save, "run": self.action_run}.get(
            event.button.id or "")
        if action:
            action()

    def action_back(self) -> None:
        self.app.pop_screen()
