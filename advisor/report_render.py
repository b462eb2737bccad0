"""Rankings and quotes as rich tables (terminal) and Markdown (files, issues); no textual.

Short figures for people: ``$1.2k–2.5k``, ``3.4 h``, ``18.7 GB ✓``. The JSON forms live on the
dataclasses (``Ranking.to_dict``, ``Quote.to_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tunewise.plugins.types import Quote

if TYPE_CHECKING:
    from rich.console import RenderableType
    from tunewise.advisor.ranking import Ranking


def money(x: float) -> str:
    if x != x or x in (float("inf"), float("-inf")):  # a plugin's unbounded figure: never "$infM"
        return "unbounded" if x == float("inf") else "unknown"
    if x == 0:
        return "$0"
    if x < 0.01:
        return f"${x:.4f}"
    if x < 100:
        return f"${x:,.2f}"
    if x < 10_000:
        return f"${x:,.0f}"
    if x < 1e6:
        return f"${x / 1e3:,.1f}k"
    return f"${x / 1e6:,.2f}M"


def money_range(low: float, high: float) -> str:
    return money(low) if abs(high - low) <= 0.005 * max(high, 1e-9) else f"{money(low)}–{money(high)}"


def hours(h: float) -> str:
    if h < 1 / 60:
        return f"{h * 3600:.0f} s"
    if h < 1:
        return f"{h * 60:.0f} min"
    if h < 48:
        return f"{h:.1f} h"
    if h < 24 * 60:
        return f"{h / 24:.1f} days"
    return f"{h / 24 / 365:.2f} years" if h > 24 * 365 else f"{h / 24 / 7:.1f} weeks"


def flops(x: float) -> str:
    for unit, scale in (("ZFLOP", 1e21), ("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} FLOP"


def quote_summary(quote: Quote) -> dict[str, str]:
    """The few figures a ranking row shows for a quote."""
    fit_mark = "fits" if quote.fits else "does not fit"
    out = {
        "cost": money_range(quote.usd_low, quote.usd_high),
        "compute": f"{quote.gpu_hours:,.1f} GPU-h" if quote.gpu_hours >= 0.1 else hours(quote.gpu_hours) + " GPU",
        "wall": hours(quote.wall_hours),
        "memory": f"{quote.peak_memory_gb:.1f} GB ({fit_mark})",
    }
    if quote.per_query:
        pq = quote.per_query
        # Per-query dollars are fractions of a cent: shown per 1,000 queries to stay readable.
        out["per query"] = (f"+{pq.get('extra_prompt_tokens', 0):,.0f} tokens, "
                            f"+{money_range(1000 * pq.get('extra_usd_per_query_low', 0), 1000 * pq.get('extra_usd_per_query_high', 0))}"
                            " per 1k queries")
        if "breakeven_days_low" in pq:
            low, high = f"{pq['breakeven_days_low']:.1f}", f"{pq.get('breakeven_days_high', 0):.1f}"
            out["break-even"] = f"{low if low == high else f'{low}–{high}'} days vs LoRA"
    return out


def ranking_table(ranking: Ranking) -> list[RenderableType]:
    """Renderables for a ranking: the methods table, combinations and assumptions."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Recommendations{_for(ranking)}", show_lines=True, expand=True)
    for name, kwargs in (("#", {"justify": "right", "width": 2}), ("method", {"style": "bold", "ratio": 2}),
                         ("score", {"justify": "right", "width": 5}), ("quote", {"ratio": 3}),
                         ("why", {"ratio": 6})):
        table.add_column(name, **kwargs)
    for rec in ranking.recommendations:
        if rec.quote is not None:
            summary = quote_summary(rec.quote)
            quote_text = "\n".join(f"{k}: {v}" for k, v in summary.items())
        else:
            quote_text = rec.error or "no quote"
        why = Text()
        for blocker in rec.blockers:
            why.append("✗ " + blocker + "\n", style="red")
        for reason in rec.reasons:
            why.append("• " + reason + "\n")
        style = "green" if rec.rank == 1 else ("dim" if rec.blockers else "")
        why.rstrip()
        table.add_row(str(rec.rank), rec.title, f"{rec.score:.2f}", quote_text, why, style=style)
    out: list[RenderableType] = [table]
    if ranking.combine:
        combos = Table(title="Combinations worth considering", show_header=False, expand=True)
        combos.add_column("methods", style="bold")
        combos.add_column("why")
        for combo in ranking.combine:
            combos.add_row(" + ".join(combo.methods), combo.reason)
        out.append(combos)
    out.append(_assumptions_table("Assumptions", ranking.assumptions))
    if ranking.problems:
        out.append(Text("\n".join("! " + p for p in ranking.problems), style="yellow"))
    return out


def _for(ranking: Ranking) -> str:
    use = ranking.profile.use_case
    return f' for "{use}"' if use else ""


def _assumptions_table(title: str, assumptions: Mapping[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=title, show_header=False, expand=True)
    table.add_column("what", style="bold")
    table.add_column("assumed")
    for key, value in assumptions.items():
        table.add_row(key.replace("_", " "), _value(value))
    return table


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def quote_tables(quote: Quote, title: str | None = None) -> list[RenderableType]:
    """Renderables for one quote: headline figures, memory breakdown, stages, fixes, assumptions."""
    from rich.table import Table

    head = Table(title=title or f"Quote: {quote.method}", show_header=False)
    head.add_column("figure", style="bold")
    head.add_column("value")
    head.add_row("compute", flops(quote.flops))
    head.add_row("GPU-hours", f"{quote.gpu_hours:,.2f}")
    head.add_row("wall time", hours(quote.wall_hours))
    head.add_row("cost", money_range(quote.usd_low, quote.usd_high))
    head.add_row("peak memory", f"{quote.peak_memory_gb:.2f} GB per device ({'fits' if quote.fits else 'does NOT fit'})")
    for part, gb in quote.memory_breakdown_gb.items():
        head.add_row(f"  {part}", f"{gb:.2f} GB")
    for key, value in quote.human_time.items():
        head.add_row("relative cost" if key == "cost" else key.replace("_", " "), value)
    out: list[RenderableType] = [head]
    if quote.fixes:
        fixes = Table(title="What would make it fit", show_header=False)
        fixes.add_column("fix")
        for fix in quote.fixes:
            fixes.add_row(fix)
        out.append(fixes)
    for caption, block in (("Stages", quote.stages), ("Alternatives", quote.alternatives)):
        if not block:
            continue
        table = Table(title=caption)
        for col in ("name", "compute", "GPU-hours", "cost", "memory"):
            table.add_column(col)
        for name, fig in block.items():
            table.add_row(name, flops(fig["flops"]), f"{fig['gpu_hours']:,.2f}",
                          money_range(fig["usd_low"], fig["usd_high"]),
                          f"{fig['peak_memory_gb']:.1f} GB ({'fits' if fig['fits'] else 'no fit'})")
        out.append(table)
    if quote.per_query:
        out.append(_assumptions_table("Per query", quote.per_query))
    out.append(_assumptions_table("Assumptions", quote.assumptions))
    return out


def print_renderables(items: list[RenderableType]) -> None:
    from rich.console import Console

    console = Console()
    for item in items:
        console.print(item)


# -- markdown ------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def ranking_markdown(ranking: Ranking) -> str:
    """The ranking as Markdown: table, reasons per method, combinations, assumptions."""
    lines = [f"# Recommendations{_for(ranking)}", "",
             "| # | method | score | cost | GPU-hours | wall time | peak memory |",
             "|---|---|---|---|---|---|---|"]
    for rec in ranking.recommendations:
        q = rec.quote
        if q is None:
            lines.append(f"| {rec.rank} | {rec.title} | {rec.score:.2f} | – | – | – | – |")
            continue
        lines.append(f"| {rec.rank} | {_md_cell(rec.title)} | {rec.score:.2f} | {money_range(q.usd_low, q.usd_high)} | "
                     f"{q.gpu_hours:,.2f} | {hours(q.wall_hours)} | {q.peak_memory_gb:.1f} GB"
                     f"{'' if q.fits else ' (does not fit)'} |")
    for rec in ranking.recommendations:
        lines += ["", f"## {rec.rank}. {rec.title} ({rec.score:.2f})", ""]
        lines += [f"- **blocker:** {b}" for b in rec.blockers]
        lines += [f"- {r}" for r in rec.reasons]
        if rec.quote is not None and rec.quote.fixes:
            lines.append(f"- would fit with: {'; '.join(rec.quote.fixes)}")
        if rec.quote is not None and rec.quote.per_query:
            lines += [f"- {k}: {v}" for k, v in quote_summary(rec.quote).items() if k in ("per query", "break-even")]
        if rec.error:
            lines.append(f"- error: {rec.error}")
    if ranking.combine:
        lines += ["", "## Combinations", ""]
        lines += [f"- **{' + '.join(c.methods)}**: {c.reason}" for c in ranking.combine]
    lines += ["", "## Assumptions", ""]
    lines += [f"- {k.replace('_', ' ')}: {_value(v)}" for k, v in ranking.assumptions.items()]
    if ranking.problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in ranking.problems]
    return "\n".join(lines) + "\n"


# -- a run's bake-off and spend (console end of ``tunewise run``, Results screen) ----------------------

VERDICT_STYLES = {"better": "bold green", "worse": "bold red", "not_better": "bold yellow"}
"""How a verdict is coloured everywhere (rich style names, which Textual markup also reads)."""


def _metric_value(value: Any, metric: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    size = abs(value)
    if metric in ("perplexity", "loss"):
        return f"{value:.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"
    return f"{value:.2f}" if size < 100 else f"{value:,.0f}"


def mappings(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a list read from a run's files (anything else, e.g. a damaged field, gives [])."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, (list, tuple)) else []


def bakeoff_figures(bake: Mapping[str, Any]) -> str:
    """``accuracy 0.05 → 0.87, +0.82 (95% interval +0.74 … +0.90); won 52 · tied 4 · lost 4 of 60``."""
    from tunewise.plugins.bakeoff import METRICS

    metric = str(bake.get("metric", "metric"))
    name = METRICS[metric].name if metric in METRICS else metric.replace("_", " ")
    before = (bake.get("before") or {}).get(metric) if isinstance(bake.get("before"), Mapping) else bake.get("before")
    after = (bake.get("after") or {}).get(metric) if isinstance(bake.get("after"), Mapping) else bake.get("after")
    key = next((k for k in bake if str(k).startswith("interval_")), None)
    interval = bake.get(key) if key else None
    if not (isinstance(interval, (list, tuple)) and len(interval) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in interval)):
        interval = None  # a hand-edited or damaged file: show what is readable
    text = f"{name} {_metric_value(before, metric)} → {_metric_value(after, metric)}"
    diff = bake.get("difference")
    if isinstance(diff, (int, float)) and not isinstance(diff, bool):
        text += f", {'+' if diff >= 0 else ''}{_metric_value(diff, metric)}"
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        lo, hi = interval
        level = str(key).removeprefix("interval_")
        text += (f" ({level}% interval {'+' if lo >= 0 else ''}{_metric_value(lo, metric)} … "
                 f"{'+' if hi >= 0 else ''}{_metric_value(hi, metric)})")
    counts = [bake.get(k) for k in ("wins", "ties", "losses", "examples")]
    if all(isinstance(c, int) for c in counts):
        text += f"; won {counts[0]} · tied {counts[1]} · lost {counts[2]} of {counts[3]}"
    return text


def bakeoff_console(bake: Mapping[str, Any] | None, message: str = "") -> list[RenderableType]:
    """The verdict sentence (coloured by verdict) and its figures; without a bake-off, why not."""
    from rich.text import Text

    if not bake:
        return [Text("No bake-off: " + (message or "the run did not compare the base and the result."),
                     style="yellow")]
    verdict = str(bake.get("verdict", ""))
    out: list[RenderableType] = [Text(str(bake.get("sentence", "")), style=VERDICT_STYLES.get(verdict, "bold")),
                                 Text("  " + bakeoff_figures(bake))]
    reasons = mappings(bake.get("reasons"))
    if verdict != "better" and reasons:
        top = reasons[0]
        setting = f" ({top.get('setting')})" if top.get("setting") else ""
        out.append(Text(f"  change{setting}: {top.get('change', '')}", style="yellow"))
    return out
