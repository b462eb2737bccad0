"""Data audit: shape, counts, token statistics and problems (``file:line``) of the data path given."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static
from tunewise.advisor.tui.screens.base import TunewiseScreen


class AuditScreen(TunewiseScreen):
    """Audits the consultation's data path in a worker; ctrl+n goes on to the recommendations."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Recommendations", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report: Any = None
        self.failed = False

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="audit"):
            yield Static("", id="audit-head")
            yield DataTable(id="audit-summary", cursor_type="none", show_header=False)
            yield Static("", id="audit-problems-title", classes="section-title")
            yield Static("", id="audit-problems", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "data audit"
        consultation = self.tw.consultation
        assert consultation is not None
        self.query_one("#audit-head", Static).update(
            f"auditing {consultation.data_path()} with the model's tokenizer …")
        table = self.query_one(DataTable)
        table.add_columns("what", "value")
        if consultation.audit is not None:
            self._show(consultation.audit)
        else:
            self.run_slow("auditing the data", consultation.run_audit, self._show, failed=self._failed)

    def _failed(self, error: BaseException) -> None:
        self.failed = True
        self.query_one("#audit-head", Static).update(
            "[red]The audit failed.[/red] Esc goes back to fix the data path; ctrl+n ranks the methods "
            "with the counts you typed.")

    def _show(self, report: Any) -> None:
        from tunewise.advisor.audit import audit_lines

        self.report = report
        verdict = "[green]no problems found[/green]" if report.ok else f"[yellow]{len(report.problems)} problem(s)[/yellow]"
        self.query_one("#audit-head", Static).update(
            f"[b]Data audit[/b] · {verdict} · its counts replace your answers for this kind of data · "
            "ctrl+n: recommendations")
        table = self.query_one(DataTable)
        table.clear()
        for label, value in audit_lines(report):
            table.add_row(label, value)
        if report.problems:
            self.query_one("#audit-problems-title", Static).update("Problems")
            self.query_one("#audit-problems", Static).update("\n".join(report.problems))

    def action_next(self) -> None:
        if self.report is None and not self.failed:
            self.notify("The audit is still running.", severity="warning")
            return
        self.tw.show_recommendations()

    def action_back(self) -> None:
        self.app.pop_screen()
