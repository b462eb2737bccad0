"""Recommendations: every registered method ranked with its quote; reasons, blockers and assumptions below.

The best method is first and highlighted, but any row can be planned: the user decides.
"""

from __future__ import annotations

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


def _figure(value: Any) -> str:
    return compact(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def detail_renderable(rec: Any, summary: str = "") -> Group:
    """Everything known about one recommendation: reasons, blockers, quote, fixes, assumptions."""
    head = Text.assemble((f"{rec.rank}. {rec.title}", "bold"), f"  fit {rec.score:.2f}")
    if abs(rec.fit_score - rec.score) > 0.005:
        head.append(f" (its own rules: {rec.fit_score:.2f})", style="dim")
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
    quote = rec.quote
    if quote is not None:
        parts.append(_heading("Quote"))
        figures = {
            "compute": f"{compact(quote.flops)} FLOPs, {compact(quote.gpu_hours)} GPU-hours, "
                       f"wall {duration(quote.wall_hours)}",
            "cost": money(quote.usd_low, quote.usd_high),
            "peak memory": f"{quote.peak_memory_gb:.1f} GB per device ({'fits' if quote.fits else 'does not fit'})",
        }
        if quote.memory_breakdown_gb:
            figures["memory"] = ", ".join(f"{k} {v:.1f} GB" for k, v in quote.memory_breakdown_gb.items())
        parts.append(_pairs(figures))
        if quote.fixes:
            parts += [_heading("What would make it fit or cheaper"), _items(quote.fixes)]
        if quote.per_query:
            parts += [_heading("Per query"), _pairs(quote.per_query, lambda v: f"{v:,.4g}")]
        if quote.human_time:
            parts += [_heading("People and calendar"), _pairs(quote.human_time)]
        for title, variants in (("Stages", quote.stages), ("Alternatives", quote.alternatives)):
            if variants:
                shown = {name: ", ".join(f"{k} {_figure(v)}" for k, v in figures_.items()
                                         if k in ("gpu_hours", "wall_hours", "usd_low", "usd_high",
                                                  "peak_memory_gb", "fits"))
                         for name, figures_ in variants.items()}
                parts += [_heading(title), _pairs(shown)]
        if quote.assumptions:
            parts += [_heading("Assumptions"), _pairs(quote.assumptions, _figure)]
    return Group(*parts)


def combinations_renderable(combine: Any) -> Group | str:
    if not combine:
        return ""
    return Group(Text(""), _heading("Combinations worth considering"),
                 _items(f"{' + '.join(c.methods)}: {c.reason}" for c in combine))


class RecommendationsScreen(TunewiseScreen):
    """The ranking table and the highlighted method's details; Enter plans the highlighted method."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "plan", "Plan this method", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.ranking: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("ranking every method for your answers …", id="reco-status")
        yield DataTable(id="reco-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="reco-detail"):
            yield Static("", id="reco-detail-text")
            yield Static("", id="reco-combine")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "recommendations"
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
        table = self.query_one(DataTable)
        table.clear()
        for index, rec in enumerate(ranking.recommendations):
            table.add_row(*table_row(rec, best=index == 0), key=rec.method)
        self.query_one("#reco-combine", Static).update(combinations_renderable(ranking.combine))
        if ranking.problems:
            self.notify("\n".join(ranking.problems), title="some methods could not be assessed",
                        severity="warning", markup=False)
        table.move_cursor(row=0)
        table.focus()
        self._detail(ranking.recommendations[0])

    def _detail(self, rec: Any) -> None:
        from tunewise.plugins.manager import get_host

        cls = get_host().methods.get(rec.method)
        summary = str(getattr(cls, "summary", "")) if cls is not None else ""
        self.query_one("#reco-detail-text", Static).update(detail_renderable(rec, summary))
        self.query_one("#reco-detail", VerticalScroll).scroll_home(animate=False)

    def _highlighted(self) -> Any:
        if self.ranking is None:
            return None
        table = self.query_one(DataTable)
        if not 0 <= table.cursor_row < len(self.ranking.recommendations):
            return None
        return self.ranking.recommendations[table.cursor_row]

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

    def action_back(self) -> None:
        self.app.pop_screen()
