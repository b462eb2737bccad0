"""``tunewise pilot --answers FILE``: run the top candidates on a sample of the data, measure, re-rank."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tunewise.advisor import limits

PROGRESS_INTERVAL_S = 5.0


def _minutes(text: str) -> float:
    from tunewise.advisor.pilot import MAX_MINUTES

    return float(limits.flag(limits.Range(0, MAX_MINUTES, above_low=True))(text))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--answers", required=True, metavar="FILE", help="answers YAML (see README: The answers file)")
    parser.add_argument("--methods", default=None, metavar="A,B",
                        help="methods to pilot, comma-separated (default: the top two that apply)")
    parser.add_argument("--minutes", type=_minutes, default=None, metavar="N",
                        help="time budget for the whole pilot, split across the candidates (default: 10)")
    parser.add_argument("--data", default=None, metavar="PATH", help="data to sample (default: the answers' data.path)")
    parser.add_argument("--model", default=None,
                        help="local model folder or cached hub id (default: the answers' model, else the embedded one)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for the sample, plans and runs (default: runs/pilot-<time>; must be new or empty)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tunewise.advisor.answers import load_answers
    from tunewise.advisor.decision_log import DecisionLog
    from tunewise.advisor.pilot import DEFAULT_MINUTES, PilotError, PilotProgress, default_out, run_pilot
    from tunewise.advisor.ranking import rank

    methods = None
    if args.methods is not None:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if not methods:
            raise PilotError("--methods: name at least one method (e.g. --methods lora,in_context)")
    profile = load_answers(args.answers)
    data = args.data or profile.data.path
    if not data:
        raise PilotError(f"no data to pilot on: pass --data PATH or set data.path in {args.answers}")
    if profile.data.path and not args.data:
        from tunewise.advisor.audit import apply_audit, audit

        profile = apply_audit(profile, audit(profile.data.path, model=args.model or profile.model.name))
    ranking = rank(profile)
    out = Path(args.out).expanduser() if args.out else default_out(Path.cwd())
    log = DecisionLog.start()
    log.record("answers", {"source": str(args.answers), "profile": profile})
    log.record("ranking", {"ranking": ranking.to_dict()})

    shown: dict[str, Any] = {"phase": None, "at": 0.0}

    def progress(update: PilotProgress) -> None:
        # One line per phase, and training steps at most every few seconds (stderr is often a log file).
        import time

        now = time.monotonic()
        if (update.phase, update.method) == shown["phase"] and now - shown["at"] < PROGRESS_INTERVAL_S:
            return
        shown.update(phase=(update.phase, update.method), at=now)
        print(f"pilot: {update.describe()}", file=sys.stderr, flush=True)

    import signal

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # like Ctrl-C: the candidate's run (in its own session) is stopped on the way out

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        result = run_pilot(profile, ranking, methods=methods, minutes=args.minutes or DEFAULT_MINUTES, out=out,
                           model=args.model, data=str(data), progress=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.record_pilot(result)
    if args.format == "json":
        print(json.dumps({**result.to_dict(), "decision_log": str(log.path)}, indent=2, default=str))
        return 0
    _print_table(result)
    print(f"decision log: {log.path}", file=sys.stderr)
    return 0


def _print_table(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    sample = result.sample
    title = (f"Pilot on {sample.rows} of {sample.total_rows} rows of {sample.source}; every candidate evaluated on "
             f"the same {len(sample.held_ids)} held-out rows" if sample else "Pilot")
    table = Table(title=title, title_justify="left")
    for column in ("", "method", "quote (full data)", "measured here", "vs its base", "time", "cost"):
        table.add_column(column)
    for position, method in enumerate(result.order_after, start=1):
        candidate = next(c for c in result.candidates if c.method == method)
        m = result.measurement(method)
        quote = candidate.quote or {}
        quoted = _quoted(quote)
        vs = "–"
        if m is not None and m.measured and m.before is not None:
            vs = f"{m.before:.2f} → {m.after:.2f}" + (f" ({m.verdict.replace('_', ' ')})" if m.verdict else "")
        table.add_row(str(position), f"{candidate.title} (was {result.order_before.index(method) + 1})",
                      quoted, m.figure() if m else "–", vs,
                      f"{m.wall_s:.0f} s" if m else "–", f"${m.usd:.2f}" if m else "–")
    console.print(table)
    console.print(f"[b]Re-rank rule:[/b] {result.rule}", highlight=False)
    console.print("[b]What changed:[/b]")
    for line in result.changes:
        console.print(f"  • {line}", highlight=False, markup=False)
    for candidate in result.candidates:
        measured = result.measurement(candidate.method)
        for note in (*candidate.notes, *([measured.spend] if measured is not None and measured.spend else [])):
            console.print(f"  {candidate.title}: {note}", style="dim", highlight=False, markup=False)
    console.print(f"pilot folder: {result.out_dir}", highlight=False)


def _quoted(quote: dict[str, Any]) -> str:
    """``41 min, $0.12–0.30``: the quote's wall time and cost (for the full data on the answers' hardware)."""
    if not quote:
        return "–"
    hours = float(quote.get("wall_hours") or 0.0)
    wall = f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
    low, high = float(quote.get("usd_low") or 0.0), float(quote.get("usd_high") or 0.0)
    cost = f"${low:,.2f}" if abs(high - low) < 0.005 else f"${low:,.2f}–{high:,.2f}"
    return f"{wall}, {cost}"
