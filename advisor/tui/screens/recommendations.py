"""Recommendations: every registered method ranked with its quote; reasons, blockers and assumptions below.

The best method is first and highlighted, but any row can be planned: the user decides. ``p`` pilots
the top two (:mod:`tunewise.advisor.pilot`) in a worker: each runs on a sample of the user's data,
the measured figures appear beside the quotes and the rows take the re-ranked order, with what changed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static
from tunewise.advisor.tui.screens.base import TunewiseScreen

COLUMNS = ("method", "fit", "GPU-h", "wall", "cost $", "peak mem", "fits")
PILOT_COLUMN = "pilot here"
PILOT_COLUMNS = ("method", "fit", "wall", "cost $", PILOT_COLUMN)
"""After a pilot: the quote's wall time and cost beside what the pilot measured (GPU-h and memory stay in
the details), so the evidence fits 80 columns."""
SHORT_METRICS = {"accuracy": "acc", "exact_match": "EM", "rouge_l": "ROUGE-L", "perplexity": "ppl",
                 "citation_rate": "cited", "containment": "contains", "win_rate": "win", "loss": "loss"}
PILOT_MINUTES = 10.0
"""The app's pilot budget for both candidates together (``tunewise pilot --minutes`` chooses another)."""


def compact(value: float) -> str:
    """1234 -> 1.2k, 0.04 -> 0.04: short numbers for a narrow table."""
    if value != value or value in (float("inf"), float("-inf")):
        return "∞"
    magnitude = abs(value)
    if 0 < magnitude < 0.01:
        return "<0.01"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.1f}{suffix}"
    if magnitude >= 10 or value == 0:
        return f"{value:.0f}"
    return f"{value:.2g}" if magnitude < 1 else f"{value:.1f}"


def duration(hours: float) -> str:
    if hours != hours or hours == float("inf"):
        return "∞"
    if hours <= 0:
        return "0"
    if hours < 1 / 60:
        return "<1m"
    if hours < 1:
        return f"{hours * 60:.0f}m"
    if hours < 48:
        return f"{hours:.1f}h"
    return f"{hours / 24:.1f}d"


def money(low: float, high: float) -> str:
    if high <= 0:
        return "$0"
    if high < 0.01:
        return "<$0.01"
    if abs(high - low) < 0.005 * max(1.0, high):
        return f"${compact(low)}"
    return f"${compact(low)}–{compact(high)}"


def table_row(rec: Any, best: bool) -> list[Text]:
    quote = rec.quote
    marker = "★ " if best else "  "
    name = Text(marker + rec.title, style="bold" if best else "")
    fit = Text(f"{rec.score:.2f}", style="bold green" if best else ("red" if rec.blockers else ""))
    if quote is None:
        cells = ["–"] * 4 + [Text("?", style="yellow")]
    else:
        cells = [compact(quote.gpu_hours), duration(quote.wall_hours), money(quote.usd_low, quote.usd_high),
                 f"{quote.peak_memory_gb:.1f} GB", Text("yes", style="green") if quote.fits else Text("no", style="red")]
    return [name, fit, *(c if isinstance(c, Text) else Text(c) for c in cells)]


def _heading(text: str, style: str = "bold") -> Text:
    return Text(text, style=style)


def _items(items: Any, style: str = "") -> Table:
    """Bullets with a hanging indent, so wrapped lines stay under their text."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=3, justify="right")
    grid.add_column(ratio=1)
    for item in items:
        grid.add_row("•", Text(str(item), style=style))
    return grid


def _pairs(mapping: Any, fmt: Any = str) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", justify="right")
    grid.add_column(ratio=1)
    for key, value in mapping.items():
        grid.add_row(str(key), fmt(value))
    return grid


def detail_renderable(rec: Any, summary: str = "", hardware: Any = None, profile: Any = None) -> Group:
    """Everything known about one recommendation: reasons, blockers, quote, fixes, assumptions (the quote in
    words and units by :func:`~tunewise.advisor.report_render.quote_detail`)."""
    from tunewise.advisor.report_render import quote_detail, score_words

    head = Text.assemble((f"{rec.rank}. {rec.title}", "bold"), "  ")
    head.append(score_words(rec.score, rec.fit_score, bool(rec.blockers)), style="dim" if rec.blockers else "")
    if not rec.needs_training:
        head.append("  no training", style="green")
    parts: list[Any] = [head]
    if summary:
        parts.append(Text(summary, style="dim"))
    if rec.error:
        parts.append(Text(f"could not be assessed: {rec.error}", style="red"))
    if rec.blockers:
        parts += [_heading("Blockers", "bold red"), _items(rec.blockers, "red")]
    if rec.reasons:
        parts += [_heading("Why"), _items(rec.reasons)]
    if rec.quote is not None:
        for title, rows in quote_detail(rec.quote, hardware, profile):
            parts += [_heading(title), _pairs(rows) if isinstance(rows, dict) else _items(rows)]
    return Group(*parts)


def pilot_cell(measurement: Any) -> Text:
    """The pilot column: the measured figure (or why none), wall time and cost."""
    if measurement is None:
        return Text("")
    if not measurement.measured:
        return Text(measurement.status.replace("_", " "), style="red" if measurement.status == "failed" else "yellow")
    style = {"better": "green", "worse": "red"}.get(measurement.verdict or "", "")
    interval = measurement.after_interval
    figure = f"{SHORT_METRICS.get(measurement.metric, measurement.metric_name)} {measurement.after:.2f}"
    if interval is not None:
        figure += f" [{interval[0]:.2f},{interval[1]:.2f}]"
    took = f"{measurement.wall_s:.0f}s" if measurement.wall_s < 60 else duration(measurement.wall_s / 3600)
    return Text(f"{figure} {took} {money(measurement.usd, measurement.usd)}", style=style)


def pilot_renderable(pilot: Any, method: str) -> Group | str:
    """One candidate's pilot evidence for the detail pane (empty when it was not piloted)."""
    measurement = pilot.measurement(method) if pilot is not None else None
    if measurement is None:
        return ""
    candidate = next((c for c in pilot.candidates if c.method == method), None)
    figures = {"measured": measurement.figure(), "time": f"{measurement.wall_s:.0f} s here"
               + (f" on {measurement.device}" if measurement.device else ""), "cost": f"${measurement.usd:.2f}"}
    if measurement.spend:
        figures["spent"] = measurement.spend
    if measurement.before is not None and measurement.after is not None:
        figures["vs its base"] = f"{measurement.before:.2f} → {measurement.after:.2f}" + (
            f" ({measurement.verdict.replace('_', ' ')})" if measurement.verdict else "")
    if pilot.sample is not None:
        figures["sample"] = (f"{pilot.sample.rows} of {pilot.sample.total_rows} rows; {len(pilot.sample.held_ids)} "
                             "held out, the same for every candidate")
    parts: list[Any] = [Text(""), _heading("Pilot"), _pairs(figures)]
    if measurement.sentence:
        parts.append(_items([measurement.sentence]))
    if candidate is not None and candidate.notes:
        parts += [_items(candidate.notes, "dim")]
    return Group(*parts)


def combinations_renderable(combine: Any) -> Group | str:
    if not combine:
        return ""
    return Group(Text(""), _heading("Combinations worth considering"),
                 _items(f"{' + '.join(c.methods)}: {c.reason}" for c in combine))


class RecommendationsScreen(TunewiseScreen):
    """The ranking table and the highlighted method's details; Enter plans the highlighted method."""

    DEFAULT_CSS = """
    #reco-pilot { padding: 0 1; height: auto; max-height: 8; color: $text; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "plan", "Plan this method", priority=True),
        Binding("p", "pilot", "Pilot top 2", tooltip="pilot the top two on a sample of your data"),
        Binding("x", "stop_pilot", "Stop pilot"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.ranking: Any = None
        self.rows: list[Any] = []
        """The recommendations in the order shown (the ranking's, or the pilot's re-rank)."""
        self.pilot: Any = None
        self.pilot_cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("ranking every method for your answers …", id="reco-status")
        yield DataTable(id="reco-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="reco-pilot", markup=False)
        with VerticalScroll(id="reco-detail"):
            yield Static("", id="reco-detail-text")
            yield Static("", id="reco-combine")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "recommendations"
        self.query_one("#reco-pilot", Static).display = False
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        consultation = self.tw.consultation
        assert consultation is not None
        if consultation.ranking is not None:
            self._show(consultation.ranking)
        else:
            self.run_slow("ranking the methods", consultation.run_ranking, self._show)

    def _show(self, ranking: Any) -> None:
        self.ranking = ranking
        profile = ranking.profile
        status = (f"[b]Recommendations, best first[/b] · {ranking.hardware.name} ×{profile.hardware.gpus} · "
                  f"budget ${profile.budget.usd:,.0f} / {profile.budget.days:g} days")
        self.query_one("#reco-status", Static).update(status)
        self.rows = list(ranking.recommendations)
        self._fill_table()
        self.query_one("#reco-combine", Static).update(combinations_renderable(ranking.combine))
        if ranking.problems:
            self.notify("\n".join(ranking.problems), title="some methods could not be assessed",
                        severity="warning", markup=False)
        table = self.query_one(DataTable)
        table.move_cursor(row=0)
        table.focus()
        self._detail(self.rows[0])

    def _fill_table(self) -> None:
        table = self.query_one(DataTable)
        if self.pilot is not None and [str(c.label) for c in table.columns.values()] != list(PILOT_COLUMNS):
            table.clear(columns=True)
            table.add_columns(*PILOT_COLUMNS)
        table.clear()
        for index, rec in enumerate(self.rows):
            cells = table_row(rec, best=index == 0)
            if self.pilot is not None:  # method, fit, the quote's wall and cost, then the measured figures
                cells = [*(cells[i] for i in (0, 1, 3, 4)), pilot_cell(self.pilot.measurement(rec.method))]
            table.add_row(*cells, key=rec.method)

    def _detail(self, rec: Any) -> None:
        from tunewise.plugins.manager import get_host

        cls = get_host().methods.get(rec.method)
        summary = str(getattr(cls, "summary", "")) if cls is not None else ""
        ranking = self.ranking
        detail = detail_renderable(rec, summary, getattr(ranking, "hardware", None), getattr(ranking, "profile", None))
        evidence = pilot_renderable(self.pilot, rec.method)
        self.query_one("#reco-detail-text", Static).update(Group(evidence, detail) if evidence else detail)
        self.query_one("#reco-detail", VerticalScroll).scroll_home(animate=False)

    def _highlighted(self) -> Any:
        if self.ranking is None:
            return None
        table = self.query_one(DataTable)
        if not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        rec = self._highlighted()
        if rec is not None:
            self._detail(rec)

    def action_plan(self) -> None:
        rec = self._highlighted()
        if rec is None:
            return
        consultation = self.tw.consultation
        assert consultation is not None
        consultation.choose(rec.method)
        self.tw.show_plan(rec.method)

    # -- pilot ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``x`` only while a pilot runs, ``p`` only while none does (the footer shows the one that applies)."""
        running = self.pilot_cancel is not None
        if action == "stop_pilot":
            return running
        if action == "pilot":
            return not running
        return True

    def action_pilot(self) -> None:
        """Pilot the top two runnable methods on a sample of the data, in a worker (the app stays usable)."""
        consultation = self.tw.consultation
        if self.ranking is None or consultation is None:
            self.notify("The ranking is not ready yet.", severity="warning")
            return
        if self.pilot_cancel is not None:
            return
        from tunewise.advisor.pilot import default_out

        cancel = threading.Event()
        self.pilot_cancel = cancel
        self.refresh_bindings()
        ranking, profile = self.ranking, consultation.advised_profile()
        out = default_out(Path(self.tw.workdir))
        self._pilot_status(f"pilot: starting in {out} …")

        def work() -> Any:
            from tunewise.advisor.pilot import run_pilot

            def progress(update: Any) -> None:
                if not cancel.is_set():
                    self.app.call_from_thread(self._pilot_status, f"pilot: {update.describe()}  (x stops it)")

            return run_pilot(profile, ranking, minutes=PILOT_MINUTES, out=out, progress=progress, cancel=cancel)

        self.run_slow("piloting the top two", work, self._pilot_done, failed=self._pilot_failed)

    def action_stop_pilot(self) -> None:
        if self.pilot_cancel is not None:
            self.pilot_cancel.set()
            self._pilot_status("pilot: stopping (each run checkpoints and ends) …")

    def _pilot_status(self, text: str) -> None:
        status = self.query_one("#reco-pilot", Static)
        status.display = True
        status.update(text)

    def _pilot_done(self, result: Any) -> None:
        self.pilot_cancel = None
        self.refresh_bindings()
        self.pilot = result
        consultation = self.tw.consultation
        if consultation is not None:
            consultation.log.record_pilot(result)
        by_method = {rec.method: rec for rec in self.rows}
        slots = sorted(self.rows.index(by_method[m]) for m in result.order_after if m in by_method)
        rows = list(self.rows)
        for slot, method in zip(slots, result.order_after, strict=False):
            rows[slot] = by_method[method]
        self.rows = rows
        table = self.query_one(DataTable)
        self._fill_table()
        table.move_cursor(row=0)
        self._detail(self.rows[0])
        head = "Pilot cancelled" if result.cancelled else "Pilot"
        sample = result.sample
        where = (f"{sample.rows} rows, the same {len(sample.held_ids)} held out for each" if sample else "")
        self._pilot_status(f"{head} ({where}; {result.wall_s:.0f} s; {result.out_dir}):\n"
                           + "\n".join(f"• {line}" for line in result.changes))

    def _pilot_failed(self, error: BaseException) -> None:
        self.pilot_cancel = None
        self.refresh_bindings()
        self._pilot_status(f"pilot failed: {error}")

    def on_unmount(self) -> None:
        if self.pilot_cancel is not None:  # leaving the screen stops the pilot's runs too
            self.pilot_cancel.set()

    def action_back(self) -> None:
        self.app.pop_screen()
