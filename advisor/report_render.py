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


def quote_summary(quote: Quote, profile: Any | None = None) -> dict[str, str]:
    """The few figures a ranking row shows for a quote (the break-even vs LoRA only when ``profile`` has
    labeled examples to fine-tune on, or is not given)."""
    fit_mark = "fits" if quote.fits else "does not fit"
    out = {
        "cost": money_range(quote.usd_low, quote.usd_high),
        "compute": ("none" if quote.gpu_hours <= 0 else f"{quote.gpu_hours:,.1f} GPU-h" if quote.gpu_hours >= 0.1
                    else hours(quote.gpu_hours) + " GPU"),
        "wall": hours(quote.wall_hours),
        "memory": f"{quote.peak_memory_gb:.1f} GB ({fit_mark})",
    }
    if quote.per_query:
        pq = quote.per_query
        # Per-query dollars are fractions of a cent: shown per 1,000 queries to stay readable.
        out["per query"] = (f"+{pq.get('extra_prompt_tokens', 0):,.0f} tokens, "
                            f"+{money_range(1000 * pq.get('extra_usd_per_query_low', 0), 1000 * pq.get('extra_usd_per_query_high', 0))}"
                            " per 1k queries")
        if "breakeven_days_low" in pq and (profile is None or profile.data.labeled_examples > 0):
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
            summary = quote_summary(rec.quote, ranking.profile)
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


def quote_tables(quote: Quote, title: str | None = None, hardware: Any | None = None,
                 profile: Any | None = None) -> list[RenderableType]:
    """Renderables for one quote, in words and units (:func:`quote_detail`): headline figures, memory,
    fixes, per-query costs, calendar, stages, other variants, assumptions."""
    from rich.table import Table

    out: list[RenderableType] = []
    for index, (caption, rows) in enumerate(quote_detail(quote, hardware, profile)):
        table = Table(title=(title or f"Quote: {quote.method}") if index == 0 else caption, show_header=False)
        if isinstance(rows, dict):
            table.add_column("figure", style="bold")
            table.add_column("value")
            for key, value in rows.items():
                table.add_row(key, value)
        else:
            table.add_column(caption)
            for line in rows:
                table.add_row(line)
        out.append(table)
    return out


# -- the quote in words (the app's detail pane) -----------------------------------------------------

def _power(x: float) -> str:
    """'2.1 × 10²²' for a positive figure of 10⁶ or more."""
    exponent = len(f"{x:.0f}") - 1
    mantissa = x / 10 ** exponent
    if round(mantissa, 1) >= 10:  # 9.96 rounds up to the next power
        exponent, mantissa = exponent + 1, mantissa / 10
    digits = str(exponent).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{mantissa:.1f} × 10{digits}"


def number(x: float) -> str:
    """A figure in words people read: 1,234 / 8.0 billion / 0.000063 (never 8.0G or 6.3e-05)."""
    if x != x or x in (float("inf"), float("-inf")):
        return "unbounded" if x == float("inf") else "unknown"
    size = abs(x)
    if size >= 1e15:
        return ("-" if x < 0 else "") + _power(size)
    for scale, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if size >= scale:
            return f"{x / scale:,.1f} {word}"
    if size >= 100 or float(x).is_integer():
        return f"{x:,.0f}"
    if size >= 0.01:
        return f"{x:.3g}"
    if size < 1e-6:
        return "less than 0.000001" if x > 0 else "more than -0.000001"
    return f"{x:.7f}".rstrip("0")


def operations(x: float) -> str:
    """FLOPs in words: '2.1 × 10²² floating-point operations'."""
    if x != x or x == float("inf") or x <= 0:
        return "none" if x == 0 else number(x)
    return f"{x:,.0f} floating-point operations" if x < 1e6 else f"{_power(x)} floating-point operations"


MEMORY_PARTS = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer state",
                "activations": "activations", "overhead": "runtime overhead", "kv_cache": "KV cache"}
STAGE_NAMES = {"sft": "supervised fine-tuning (SFT)", "reward_model": "reward model", "grpo": "GRPO policy training",
               "dpo": "DPO"}
HUMAN_TIME_NAMES = {"cost": "relative cost", "data_prep": "data preparation", "training": "training",
                    "evaluation": "evaluation", "expertise": "expertise"}


def _tokens(v: Any) -> str:
    return f"{number(float(v))} tokens"


def _sequences(v: Any) -> str:
    return f"{number(float(v))} sequence{'' if float(v) == 1 else 's'}"


def _share(v: Any) -> str:
    return f"{100 * float(v):.0f}% of the device's peak"


ASSUMPTION_WORDS: dict[str, tuple[str, Any]] = {
    "variant": ("variant quoted", str),
    "variant_why": ("why this variant", str),
    "plan_config": ("plan settings", lambda v: f"config: {{{v}}}"),
    "pipeline": ("pipeline", str),
    "tokens": ("tokens processed", _tokens),
    "tokens_from": ("tokens from", str),
    "sft": ("SFT data", str),
    "epochs": ("passes over the data", lambda v: f"{number(float(v))} epochs"),
    "tokens_per_example": ("tokens per example", _tokens),
    "nominal_data": ("data size", str),
    "mfu": ("hardware utilisation", _share),
    "prefill_mfu": ("prompt-processing utilisation", _share),
    "grpo_mfu": ("GRPO utilisation", _share),
    "dtype": ("number format", str),
    "seq_len": ("sequence length", _tokens),
    "grpo_seq_len": ("GRPO sequence length", _tokens),
    "micro_batch": ("micro-batch", lambda v: f"{_sequences(v)} per device per step"),
    "grpo_micro_batch": ("GRPO micro-batch", lambda v: f"{_sequences(v)} per device per step"),
    "gpus": ("devices", lambda v: number(float(v))),
    "recompute": ("activation recompute", lambda v: "on" if v else "off"),
    "recompute_note": ("activation recompute", str),
    "flops_per_token": ("work per token", lambda v: operations(float(v))),
    "model_params": ("model size", lambda v: f"{number(float(v))} parameters"),
    "model_shape": ("model shape", str),
    "hardware": ("hardware", str),
    "scaling": ("scaling", str),
    "strategy": ("parallelism", str),
    "sharding": ("sharding", str),
    "peak_stage": ("largest stage in memory", lambda v: STAGE_NAMES.get(str(v), str(v))),
    "samples_per_prompt": ("answers sampled per prompt", lambda v: number(float(v))),
    "completion_tokens": ("tokens per sampled answer", _tokens),
    "rollout_batch": ("generation batch", _sequences),
    "generation_hours": ("answer generation time", lambda v: hours(float(v))),
    "generation": ("generation", str),
    "lora_rank": ("LoRA rank", lambda v: number(float(v))),
    "trainable_params": ("trainable parameters", lambda v: f"{number(float(v))} (the adapters)"),
    "serving_batch": ("serving batch", lambda v: f"{number(float(v))} queries at a time"),
    "base_prompt_tokens": ("prompt before additions", _tokens),
    "output_tokens": ("answer length", _tokens),
    "queries_per_day": ("queries a day", lambda v: number(float(v))),
    "context_tokens": ("context per query", _tokens),
    "examples_in_prompt": ("examples in each prompt", lambda v: number(float(v))),
    "retrieval": ("retrieval", str),
    "index": ("index", str),
    "freshness": ("freshness", str),
    "calibration": ("calibration", str),
    "mfu_source": ("utilisation from", str),
}
"""Words and units for the assumption keys built-in quotes use; other keys are shown with their name in words."""
HIDDEN_ASSUMPTIONS = frozenset({"breakeven", "breakeven_against"})
"""Said with the break-even itself (only when that comparison applies)."""


def _words(key: str) -> str:
    return key.replace("_", " ")


def _any_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return number(float(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def assumption_rows(assumptions: Mapping[str, Any]) -> dict[str, str]:
    """Every assumption as (words, value with units); mfu and its source share a row."""
    rows: dict[str, str] = {}
    for key, value in assumptions.items():
        if key in HIDDEN_ASSUMPTIONS or (key == "tokens" and not value) or key in ("mfu_source", "recompute_note"):
            continue
        label, fmt = ASSUMPTION_WORDS.get(key, (_words(key), _any_value))
        try:
            text = fmt(value)
        except (TypeError, ValueError):
            text = _any_value(value)
        if key == "mfu" and assumptions.get("mfu_source"):
            text += f" ({assumptions['mfu_source']})"
        if key == "recompute" and assumptions.get("recompute_note"):
            text += f" ({assumptions['recompute_note']})"
        rows[label if label not in rows else f"{label} ({_words(key)})"] = text
    return rows


def _fit_words(fits: bool, hardware: Any | None) -> str:
    where = f" the {hardware.memory_gb:g} GB of one {hardware.name}" if hardware is not None else " the device"
    return f"fits in{where}" if fits else f"does NOT fit in{where}"


def _variant_line(fig: Mapping[str, Any], hardware: Any | None) -> str:
    """A stage's or alternative's figures in one line (a plugin's missing or odd figures are left out)."""
    def num(key: str) -> float | None:
        value = fig.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    parts: list[str] = []
    gpu_h, wall, low, high, peak = (num(k) for k in ("gpu_hours", "wall_hours", "usd_low", "usd_high",
                                                     "peak_memory_gb"))
    if gpu_h is not None:
        parts.append(f"{gpu_h:,.1f} GPU-hours" if gpu_h >= 0.1 else f"{hours(gpu_h)} of GPU time")
    if wall is not None:
        parts.append(f"{hours(wall)} wall-clock")
    if low is not None:
        parts.append(money_range(low, high if high is not None else low))
    if peak is not None:
        fits = fig.get("fits")
        parts.append(f"{peak:.1f} GB per device" + ("" if not isinstance(fits, bool) else
                                                     " (fits)" if fits else " (does not fit)"))
    if fig.get("config"):
        parts.append(f"settings: config: {{{fig['config']}}}")
    return ", ".join(parts) or "no figures"


def per_query_rows(quote: Quote, profile: Any | None = None) -> dict[str, str]:
    """What each query costs on top, per 1,000 queries and per day; the break-even only when it applies."""
    pq = dict(quote.per_query)
    rows: dict[str, str] = {}
    known = set()
    if "extra_prompt_tokens" in pq:
        latency = pq.get("extra_latency_s")
        rows["longer prompt"] = (f"+{number(pq['extra_prompt_tokens'])} tokens per query"
                                 + (f", about +{latency:.2f} s to answer" if latency else ""))
        known |= {"extra_prompt_tokens", "extra_latency_s"}
    if "usd_per_query_low" in pq:
        rows["serving cost"] = (f"{money_range(1000 * pq['usd_per_query_low'], 1000 * pq.get('usd_per_query_high', 0))}"
                                " per 1,000 queries")
        known |= {"usd_per_query_low", "usd_per_query_high"}
    if "extra_usd_per_query_low" in pq:
        rows["of which the additions"] = (
            f"{money_range(1000 * pq['extra_usd_per_query_low'], 1000 * pq.get('extra_usd_per_query_high', 0))}"
            " per 1,000 queries")
        known |= {"extra_usd_per_query_low", "extra_usd_per_query_high"}
    if "extra_usd_per_day_low" in pq:
        per_day = quote.assumptions.get("queries_per_day")
        rows["per day"] = (f"+{money_range(pq['extra_usd_per_day_low'], pq.get('extra_usd_per_day_high', 0))} a day"
                           + (f" at {number(float(per_day))} queries a day" if per_day else ""))
        known |= {"extra_usd_per_day_low", "extra_usd_per_day_high"}
    known |= {"setup_usd_low", "setup_usd_high"}  # the quote's own figures: the set-up row above
    known |= {"breakeven_days_low", "breakeven_days_high"}
    # The break-even compares with a fine-tune on labeled examples: meaningless without any.
    has_examples = profile is None or getattr(getattr(profile, "data", None), "labeled_examples", 0) > 0
    if "breakeven_days_low" in pq and has_examples:
        low, high = pq["breakeven_days_low"], pq.get("breakeven_days_high", pq["breakeven_days_low"])
        days = f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}–{high:.1f}"
        rows["vs fine-tuning"] = (f"after {days} days of queries, one LoRA fine-tune on your labeled examples would "
                                  "have cost less than the longer prompts (see the LoRA quote)")
    for key, value in pq.items():
        if key not in known:
            rows[_words(key)] = _any_value(value)
    return rows


def score_words(score: float, own: float, blocked: bool) -> str:
    """The score and where it came from: 'score 0.10 of 1: its own rules 0.05, budget and hardware +0.05'."""
    text = f"score {score:.2f} of 1"
    if blocked:
        return text + f" (capped by a blocker; its own rules gave {own:.2f})"
    if abs(own - score) > 0.005:
        return text + f" (its own rules {own:.2f}, budget, memory and calendar {score - own:+.2f})"
    return text


def quote_detail(quote: Quote, hardware: Any | None = None, profile: Any | None = None) -> list[tuple[str, Any]]:
    """The quote in sections of (title, rows) for a detail pane: every figure with its unit and in words,
    and only the comparisons that apply (rows: a dict of label → text, or a list of sentences)."""
    sections: list[tuple[str, Any]] = []
    head: dict[str, str] = {}
    gpu_h = f"{quote.gpu_hours:,.1f} GPU-hours" if quote.gpu_hours >= 0.1 else f"{hours(quote.gpu_hours)} of GPU time"
    if quote.per_query:  # an inference-time method: what it costs up front, then per query below
        head["training"] = "none: nothing is trained"
        if quote.flops > 0 or quote.usd_high > 0:
            head["set-up, once"] = (f"{gpu_h}, {money_range(quote.usd_low, quote.usd_high)} "
                                    f"({operations(quote.flops)})")
    else:
        head["compute"] = f"{gpu_h} ({operations(quote.flops)})"
        head["time"] = f"{hours(quote.wall_hours)} wall-clock"
        head["cost"] = f"{money_range(quote.usd_low, quote.usd_high)} of compute (low to high hourly price)"
    head["peak memory"] = f"{quote.peak_memory_gb:.1f} GB per device: {_fit_words(quote.fits, hardware)}"
    if quote.memory_breakdown_gb:
        head["made of"] = ", ".join(f"{MEMORY_PARTS.get(k, _words(k))} {v:.1f} GB"
                                    for k, v in quote.memory_breakdown_gb.items())
    sections.append(("Quote", head))
    if quote.fixes:
        sections.append(("What would make it fit" if not quote.fits else "What would make it cheaper",
                         list(quote.fixes)))
    if quote.per_query:
        sections.append(("Per query", per_query_rows(quote, profile)))
    if quote.human_time:
        sections.append(("People and calendar", {HUMAN_TIME_NAMES.get(k, _words(k)): str(v)
                                                 for k, v in quote.human_time.items()}))
    if quote.stages:
        sections.append(("Stages, one after another", {STAGE_NAMES.get(k, _words(k)): _variant_line(v, hardware)
                                                       for k, v in quote.stages.items()}))
    if quote.alternatives:
        sections.append(("Other ways to run it", {str(v.get("title", STAGE_NAMES.get(k, _words(k)))):
                                                  _variant_line(v, hardware) for k, v in quote.alternatives.items()}))
    if quote.assumptions:
        sections.append(("Assumptions", assumption_rows(quote.assumptions)))
    return sections


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
            lines += [f"- {k}: {v}" for k, v in quote_summary(rec.quote, ranking.profile).items()
                      if k in ("per query", "break-even")]
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
