"""Results: before/after metrics, artifacts and the report of a finished run, read from its folder."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Markdown, Static
from tunewise.advisor.tui.run_watch import RunState, format_duration, read_run_state
from tunewise.advisor.tui.screens.base import TunewiseScreen


def metric_rows(before: dict[str, float], after: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """``(metric, before, after, change)`` for every metric either side reports."""
    rows = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        change = ""
        if b is not None and a is not None:
            delta = a - b
            change = f"{delta:+.4g}"
            if b:
                change += f" ({delta / abs(b):+.1%})"
        rows.append((name, "–" if b is None else f"{b:.4g}", "–" if a is None else f"{a:.4g}", change))
    return rows


class ResultsScreen(TunewiseScreen):
    """What a run produced; ``m`` shows its report."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "report", "Report"),
        Binding("t", "try_it", "Try it"),
        Binding("n", "new", "New consultation"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.state: RunState = RunState()

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="results"):
            yield Static("", id="results-head")
            yield Static("Evaluation on the held-out split", classes="section-title")
            yield DataTable(id="results-metrics", cursor_type="row", zebra_stripes=True)
            yield Static("Artifacts", classes="section-title")
            yield DataTable(id="results-artifacts", cursor_type="row")
            yield Static("", id="results-report")
            yield Markdown("", id="results-report-view")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.run_dir)
        self.query_one("#results-report-view").display = False
        self.run_slow("reading the run", lambda: read_run_state(self.run_dir), self._show)

    def _show(self, state: RunState) -> None:
        self.state = state
        result = state.result or {}
        status = result.get("status", state.status)
        head = f"[b]{result.get('method', state.method) or 'run'}[/b] · {status}"
        if state.wall_s is not None:
            head += f" in {format_duration(state.wall_s)}"
        if state.peak_memory_gb is not None:
            head += f" · peak memory {state.peak_memory_gb:.2f} GB"
        if result.get("message"):
            head += f"\n{result['message']}"
        if status == "waiting":
            head = f"No events in {self.run_dir}: is this a run folder?"
        self.query_one("#results-head", Static).update(head)

        before = dict(result.get("metrics_before") or state.evals.get("before") or {})
        after = dict(result.get("metrics_after") or state.evals.get("after") or {})
        metrics = self.query_one("#results-metrics", DataTable)
        metrics.clear(columns=True)
        metrics.add_columns("metric", "before", "after", "change")
        rows = metric_rows(before, after)
        for row in rows:
            metrics.add_row(*row)
        if not rows:
            metrics.add_row("no evaluation reported", "", "", "")

        artifacts = self.query_one("#results-artifacts", DataTable)
        artifacts.clear(columns=True)
        artifacts.add_columns("artifact", "path")
        for name, path in sorted((result.get("artifacts") or {}).items()):
            artifacts.add_row(name, str(path))
        for step, path in state.checkpoints[-1:]:
            artifacts.add_row(f"last checkpoint (step {step})", path)
        report = self._report_path()
        self.query_one("#results-report", Static).update(
            f"Report: {report}   (m to read it here)" if report else "No report was written.")

    def _report_path(self) -> Path | None:
        named = (self.state.result or {}).get("report")
        candidates = [Path(named)] if named else []
        candidates.append(self.run_dir / "report.md")
        for path in candidates:
            if not path.is_absolute() and not path.exists():
                path = self.run_dir / path
            if path.is_file():
                return path
        return None

    def action_report(self) -> None:
        report = self._report_path()
        view = self.query_one("#results-report-view", Markdown)
        if report is None:
            self.notify("This run has no report.", severity="warning")
            return
        view.display = not view.display
        if view.display:
            view.update(report.read_text(encoding="utf-8", errors="replace"))
            view.scroll_visible()

    def action_try_it(self) -> None:
        status = (self.state.result or {}).get("status", self.state.status)
        if status != "completed":
            self.notify(f"Try it needs a completed run (this one is {status}).", severity="warning")
            return
        self.tw.show_try_it(self.run_dir)

    def action_new(self) -> None:
        self.tw.go_home()
        self.tw.start_consultation()

    def action_back(self) -> None:
        self.app.pop_screen()
