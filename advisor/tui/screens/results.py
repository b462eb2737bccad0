"""Results: the bake-off first (verdict, interval, per-label counts, likely reasons), spent vs quoted,
then before/after metrics, artifacts and the report of a finished run, all read from its folder.

Works for any run folder, one this app session watched or an old one opened later: the bake-off
comes from the run's ``end`` event, else its ``bakeoff`` event, else ``metrics.json`` or the first
line of ``bakeoff.jsonl``; spent vs quoted from ``spend.json``, else worked out from ``events.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Markdown, Static
from tunewise.advisor.tui.run_watch import EVENTS_FILE, RunState, read_events, read_run_state
from tunewise.advisor.tui.screens.base import TunewiseScreen

BAKEOFF_FILE = "bakeoff.jsonl"
SHOWN_CONFUSIONS = 3


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


@dataclass
class RunResults:
    """What the Results screen shows of a run folder (read in a worker)."""

    state: RunState
    bakeoff: dict[str, Any] | None = None
    bakeoff_from: str = ""
    spend: dict[str, Any] | None = None
    status: str = "waiting"
    method: str = ""
    message: str = ""
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)


def _json_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _first_line(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.loads(stream.readline())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_bakeoff(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("sentence"), str) and "verdict" in value


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def find_bakeoff(run_dir: Path, events: list[dict[str, Any]], result: Mapping[str, Any] | None
                 ) -> tuple[dict[str, Any] | None, str]:
    """The run's bake-off (``BakeOff.to_dict()``) and where it was found, or ``(None, "")``."""
    if result and _is_bakeoff(result.get("bakeoff")):
        return dict(result["bakeoff"]), "the run's result"
    for event in reversed(events):
        if event.get("event") == "start":
            break  # an earlier session's bake-off is not this one's
        if event.get("event") == "bakeoff" and _is_bakeoff(event):
            return {k: v for k, v in event.items() if k not in ("event", "time")}, "events.jsonl"
    metrics = _json_file(run_dir / "metrics.json")
    if metrics and _is_bakeoff(metrics.get("bakeoff")):
        return dict(metrics["bakeoff"]), "metrics.json"
    header = _first_line(run_dir / BAKEOFF_FILE)
    if header and _is_bakeoff(header.get("bakeoff")):
        return dict(header["bakeoff"]), BAKEOFF_FILE
    return None, ""


def read_results(run_dir: Path) -> RunResults:
    """Everything the Results screen shows, from the run folder's files."""
    from tunewise.advisor import spend as spending

    run_dir = Path(run_dir)
    events = read_events(run_dir / EVENTS_FILE)
    state = read_run_state(run_dir)
    result = state.result or {}
    run_file = _json_file(run_dir / "run.json") or {}
    metrics = _json_file(run_dir / "metrics.json") or {}
    out = RunResults(state)
    out.status = str(result.get("status") or (state.status if state.status != "waiting" else "")
                     or run_file.get("status") or "waiting")
    out.method = str(result.get("method") or state.method or run_file.get("method")
                     or (run_file.get("identity") or {}).get("method", "") or "")
    out.message = str(result.get("message") or run_file.get("message") or "")
    out.before = _numbers(result.get("metrics_before")) or _numbers(state.evals.get("before")) \
        or _numbers(metrics.get("before")) or _numbers(run_file.get("metrics_before"))
    out.after = _numbers(result.get("metrics_after")) or _numbers(state.evals.get("after")) \
        or _numbers(metrics.get("after")) or _numbers(run_file.get("metrics_after"))
    out.bakeoff, out.bakeoff_from = find_bakeoff(run_dir, events, result)
    out.spend = spending.read_spend(run_dir)
    if (out.spend is None or not isinstance(out.spend.get("sentence"), str)) and events:  # absent or damaged
        out.spend = spending.spend_report(events).to_dict()
    return out


class ResultsScreen(TunewiseScreen):
    """What a run produced; ``m`` shows its report."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "report", "Report"),
        Binding("t", "try_it", "Try it"),
        Binding("a", "ask", "Ask", tooltip="ask a RAG run's index questions, with citations"),
        Binding("n", "new", "New consultation"),
        Binding("escape", "back", "Back"),
    ]

    DEFAULT_CSS = """
    #results-verdict, #results-figures, #results-confusions, #results-reasons, #results-evidence,
    #results-spend { height: auto; }
    #results-labels { height: auto; max-height: 10; }
    """

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.state: RunState = RunState()
        self.results: RunResults | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="results"):
            yield Static("", id="results-head")
            yield Static("Bake-off: base vs result on the held-out split", classes="section-title")
            yield Static("", id="results-verdict")
            yield Static("", id="results-figures")
            yield DataTable(id="results-labels", cursor_type="row", zebra_stripes=True)
            yield Static("", id="results-confusions")
            yield Static("", id="results-reasons")
            yield Static("", id="results-evidence")
            yield Static("Spent vs quoted", classes="section-title")
            yield Static("", id="results-spend")
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
        self.query_one("#results-labels").display = False
        self.run_slow("reading the run", lambda: read_results(self.run_dir), self._show)

    def _show(self, results: RunResults) -> None:
        self.results = results
        self.refresh_bindings()  # Ask shows in the footer once the run is known to be a RAG run
        self.state = state = results.state
        result = state.result or {}
        status = results.status
        spend = results.spend or {}
        spent = spend.get("spent") if isinstance(spend.get("spent"), dict) else {}
        head = Text.assemble((results.method or "run", "bold"), f" · {status}")
        if isinstance(spent.get("wall_s"), (int, float)):
            from tunewise.advisor.spend import duration

            sessions = spent.get("sessions")
            head.append(f" in {duration(spent['wall_s'])}"
                        + (f" ({sessions} sessions)" if isinstance(sessions, int) and sessions > 1 else ""))
        if state.peak_memory_gb is not None:
            head.append(f" · peak memory {state.peak_memory_gb:.2f} GB")
        sentence = str((results.bakeoff or {}).get("sentence", ""))
        if results.bakeoff is not None and results.message:
            rest = results.message.removeprefix(sentence).strip(" .") if sentence else results.message
            if rest:
                head.append("\n" + rest)
        if status == "waiting":
            head = Text(f"No events in {self.run_dir}: is this a run folder?")
        self.query_one("#results-head", Static).update(head)
        self._show_bakeoff(results)
        spent_sentence = spend.get("sentence")
        self.query_one("#results-spend", Static).update(
            Text(str(spent_sentence)) if spent_sentence else Text("Not recorded: the run folder has no events.", style="dim"))

        metrics = self.query_one("#results-metrics", DataTable)
        metrics.clear(columns=True)
        metrics.add_columns("metric", "before", "after", "change")
        rows = metric_rows(results.before, results.after)
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

    def _show_bakeoff(self, results: RunResults) -> None:
        from tunewise.advisor.report_render import VERDICT_STYLES, bakeoff_figures, mappings

        bake = results.bakeoff
        labels = self.query_one("#results-labels", DataTable)
        verdict = self.query_one("#results-verdict", Static)
        if bake is None:
            why = results.message or "the run did not compare the base and the result"
            verdict.update(Text(f"No bake-off for this run ({results.status}): {why}", style="yellow"))
            for name in ("#results-figures", "#results-confusions", "#results-reasons", "#results-evidence"):
                self.query_one(name, Static).update("")
            labels.display = False
            return
        style = VERDICT_STYLES.get(str(bake.get("verdict")), "bold")
        verdict.update(Text(str(bake.get("sentence", "")), style=style))
        self.query_one("#results-figures", Static).update(Text(bakeoff_figures(bake)))

        rows = mappings(bake.get("labels"))
        labels.clear(columns=True)
        labels.display = bool(rows)
        if rows:
            labels.add_columns("label", "examples", "base correct", "result correct")
            for row in rows:
                labels.add_row(str(row.get("label", "")), str(row.get("examples", "")),
                               str(row.get("base_correct", "")), str(row.get("result_correct", "")))
        confusions = mappings(bake.get("confusions"))[:SHOWN_CONFUSIONS]
        text = Text()
        if confusions:
            text.append("Most common mistakes of the result (gold → answered):")
            for c in confusions:
                text.append(f"\n  {c.get('gold')} → {c.get('predicted')}: {c.get('count')}"
                            f" (e.g. “{c.get('example') or '(empty answer)'}”)")
        self.query_one("#results-confusions", Static).update(text)

        reasons = mappings(bake.get("reasons"))
        why = Text()
        if reasons and bake.get("verdict") != "better":
            why.append("Why it may not be better, most likely first:", style="bold")
            for r in reasons:
                why.append(f"\n• {r.get('reason', '')}")
                setting = r.get("setting")
                why.append(f"\n  change {setting}: " if setting else "\n  ", style="yellow")
                why.append(str(r.get("change", "")), style="yellow")
        self.query_one("#results-reasons", Static).update(why)
        evidence = self.run_dir / BAKEOFF_FILE
        self.query_one("#results-evidence", Static).update(Text(
            f"Every example's answers and scores: {evidence}" if evidence.is_file()
            else f"(read from {results.bakeoff_from}; no {BAKEOFF_FILE} in the folder)", style="dim"))

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
        status = self.results.status if self.results is not None else self.state.status
        if status != "completed":
            self.notify(f"Try it needs a completed run (this one is {status}).", severity="warning")
            return
        self.tw.show_try_it(self.run_dir)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``a`` (Ask) only for a RAG run: other methods build no index to ask."""
        if action == "ask":
            method = self.results.method if self.results is not None else self.state.method
            return method == "rag"
        return True

    def action_ask(self) -> None:
        status = self.results.status if self.results is not None else self.state.status
        if status != "completed":
            self.notify(f"Ask needs a completed RAG run (this one is {status}).", severity="warning")
            return
        self.tw.show_ask(self.run_dir)

    def action_new(self) -> None:
        self.tw.go_home()
        self.tw.start_consultation()

    def action_back(self) -> None:
        self.app.pop_screen()
