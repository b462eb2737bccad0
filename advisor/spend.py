"""What a run spent (time, GPU-hours, dollars), summed over every session of its folder, next to its quote.

One definition of each figure, used by ``tunewise run``'s last lines, ``spend.json``, the report's
"Spent vs quoted" section and the Results screen:

- **wall time**: the seconds each ``tunewise run`` session of the folder ran (the runner's ``wall_s``
  in its ``end`` event; a session cut off without one counts from its ``start`` event's
  ``session_started``, else its first event, to its last event), summed
  over sessions, so a cancelled and resumed run counts both parts;
- **training time**: the seconds spent in training phases (``phase`` events counted in ``steps``:
  the optimizer steps with their mid-training evaluations and checkpoints), summed over sessions; not
  recorded for a run without such phases;
- **GPU-hours**: wall hours × GPUs (data-parallel processes on a GPU; 0 on a CPU);
- **dollars**: GPU-hours × the price per hour (``training.usd_per_hour``, else the catalogue's
  ``usd_per_hour`` range of ``training.budget_hardware``; a CPU run uses the catalogue's CPU entry).

The quote is recomputed at the end of the run with the same estimator the advisor and ``tunewise
estimate`` use (``Method.estimate``), for the plan's method, model, sequence length and hardware and
the tokens the run's settings process (its tokens per step × its planned steps). Recomputing works
for every plan, hand-written ones included, and quotes the hardware the run really used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunewise.plugins.types import Hardware, Quote

SPEND_FILE = "spend.json"
RAG_CHUNK_TOKENS = 200
"""RAG's default ``config.chunk_tokens`` (methods/rag/config.py), for an index whose plan does not set it."""
REPORT_START = "<!-- tunewise: spent vs quoted (written by tunewise run after the method) -->"
REPORT_END = "<!-- tunewise: end of spent vs quoted -->"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def duration(seconds: float | None) -> str:
    """``42 s``, ``4 min 12 s``, ``1 h 05 min``: how every screen and file shows a run's time."""
    if seconds is None:
        return "–"
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"


# -- sessions ----------------------------------------------------------------------------------------


def split_sessions(events: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """The events of each ``tunewise run`` session, in order: a session ends with its ``end`` event, or
    where the next one sends ``start`` (a session killed before it could write ``end``)."""
    sessions: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    started = False
    for event in events:
        kind = event.get("event")
        if kind == "start" and started:
            # Events a run sends before ``start`` reach the file with it: they belong to the new session.
            since = _number(event.get("session_started"))
            moved: list[Mapping[str, Any]] = []
            while since is not None and current and (_number(current[-1].get("time")) or 0.0) >= since \
                    and current[-1].get("event") != "start":
                moved.insert(0, current.pop())
            sessions.append(current)
            current, started = moved, False
        current.append(event)
        started = started or kind == "start"
        if kind == "end":
            sessions.append(current)
            current, started = [], False
    if current:
        sessions.append(current)
    return sessions


def _times(session: Sequence[Mapping[str, Any]]) -> list[float]:
    return [t for t in (_number(e.get("time")) for e in session) if t is not None]


def session_wall_s(session: Sequence[Mapping[str, Any]], now: float | None = None) -> float:
    """A session's wall seconds: its ``end`` event's ``wall_s``; else from when its process began (the
    ``session_started`` the runner adds to ``start``) or its first event, to its last event (or ``now``,
    for a session still running)."""
    for event in session:
        if event.get("event") == "end" and (wall := _number(event.get("wall_s"))) is not None:
            return max(0.0, wall)
    times = _times(session)
    began = [t for t in (_number(e.get("session_started")) for e in session if e.get("event") == "start")
             if t is not None]
    if not times:
        return 0.0
    return max(0.0, (now if now is not None else max(times)) - min(times + began[:1]))


def _is_training(event: Mapping[str, Any]) -> bool:
    return event.get("unit") == "steps"


def session_train_s(session: Sequence[Mapping[str, Any]], now: float | None = None) -> float | None:
    """Seconds of a session in training phases (see the module docstring); None when it never trained."""
    phases = [e for e in session if e.get("event") == "phase"]
    if not any(_is_training(e) for e in phases):
        return None  # no training phase (RAG, in-context), or a run from before phase events: not recorded
    total = 0.0
    current: Mapping[str, Any] | None = None
    since = last = 0.0
    ended = False
    for event in session:
        when = _number(event.get("time"))
        if when is None:
            continue
        last = when
        if event.get("event") == "end":
            ended = True
            break
        if event.get("event") == "phase" and (current is None or event.get("phase") != current.get("phase")):
            if current is not None and _is_training(current):
                total += max(0.0, when - since)
            current, since = event, when
    if current is not None and _is_training(current):
        total += max(0.0, (now if now is not None and not ended else last) - since)
    return total


# -- spent -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spent:
    """What the run's sessions spent, by the definitions of this module."""

    sessions: int
    wall_s: float
    train_s: float | None
    device: str
    """``cpu`` or ``gpu``."""
    gpus: int
    gpu_hours: float
    hardware: str
    usd_low: float | None
    usd_high: float | None
    """None when the price is unknown (a GPU run that names no hardware or price)."""
    price_source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _start(events: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    starts = [e for e in events if e.get("event") == "start"]
    return starts[-1] if starts else {}


def _plan(events: Sequence[Mapping[str, Any]], plan: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if plan:
        return plan
    found = _start(events).get("plan")
    return found if isinstance(found, Mapping) else {}


def _section(plan: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = plan.get(name)
    return value if isinstance(value, Mapping) else {}


def run_hardware(events: Sequence[Mapping[str, Any]], plan: Mapping[str, Any]) -> tuple[Hardware | None, str, int, str]:
    """``(catalogue entry or None, cpu/gpu, GPUs, why that entry)`` for the hardware the run used."""
    from tunewise.advisor.hardware import HardwareError, catalogue, find_hardware

    device = str(_start(events).get("device") or "cpu").lower()
    kind = "gpu" if device.startswith(("cuda", "gpu", "mps")) else "cpu"
    training = _section(plan, "training")
    named = training.get("budget_hardware")
    if kind == "cpu":
        cpu = next((hw for hw in catalogue().values() if hw.kind == "cpu"), None)
        return (None if cpu is None else find_hardware(cpu.name)), "cpu", 0, "the run's device (CPU)"
    processes = _number(_section(plan, "distributed").get("processes"))
    gpus = max(1, int(processes)) if processes else 1
    if isinstance(named, str) and named.strip():
        try:
            return find_hardware(named), "gpu", gpus, "training.budget_hardware"
        except HardwareError:
            return None, "gpu", gpus, f"training.budget_hardware {named!r} is not in the catalogue"
    return None, "gpu", gpus, "the plan names no hardware (set training.budget_hardware)"


def run_times(events: Sequence[Mapping[str, Any]], *, now: float | None = None) -> tuple[int, float, float | None]:
    """``(sessions, wall seconds, training seconds or None)`` of a run's events, summed over its sessions;
    ``now`` counts a session still running up to now (what a screen following the run shows as elapsed)."""
    sessions = [s for s in split_sessions(events) if any(e.get("event") == "start" for e in s)] \
        or split_sessions(events)
    last = len(sessions) - 1
    wall = math.fsum(session_wall_s(s, now if i == last else None) for i, s in enumerate(sessions))
    trains = [session_train_s(s, now if i == last else None) for i, s in enumerate(sessions)]
    train = math.fsum(t for t in trains if t is not None) if any(t is not None for t in trains) else None
    return len(sessions), wall, train


def compute_spent(events: Sequence[Mapping[str, Any]], plan: Mapping[str, Any] | None = None, *,
                  now: float | None = None) -> Spent:
    """Wall and training time, GPU-hours and dollars of every session in ``events``."""
    plan = _plan(events, plan)
    count, wall, train = run_times(events, now=now)
    hardware, kind, gpus, why = run_hardware(events, plan)
    gpu_hours = wall / 3600 * gpus
    per_hour = _number(_section(plan, "training").get("usd_per_hour"))
    hours = wall / 3600 * max(1, gpus)
    low: float | None
    high: float | None
    if per_hour is not None:
        low = high = hours * per_hour
        source = f"training.usd_per_hour ${per_hour:g}/h"
    elif hardware is not None:
        from tunewise.advisor.report_render import money_range

        low, high = hours * hardware.usd_per_hour_low, hours * hardware.usd_per_hour_high
        source = (f"{hardware.name} at {money_range(hardware.usd_per_hour_low, hardware.usd_per_hour_high)}/h "
                  f"from the hardware catalogue ({why})")
    else:
        low = high = None
        source = f"price unknown: {why}, or training.usd_per_hour"
    return Spent(count, round(wall, 2), None if train is None else round(train, 2), kind, gpus,
                 round(gpu_hours, 4), hardware.name if hardware is not None else "unknown GPU", low, high, source)


# -- quoted ------------------------------------------------------------------------------------------


class QuoteUnavailable(ValueError):
    """The run did not record what its quote needs (e.g. how many tokens it processes)."""


@dataclass(frozen=True)
class Quoted:
    """The estimator's figures for the plan as it ran."""

    covers: str
    """What the quote's time covers: ``training`` or ``setup`` (indexing; nothing for in-context)."""
    wall_s: float
    gpu_hours: float
    usd_low: float
    usd_high: float
    hardware: str
    tokens: int | None
    tokens_from: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def planned_tokens(events: Sequence[Mapping[str, Any]], plan: Mapping[str, Any]) -> tuple[float | None, str]:
    """Tokens the run's settings process in all: tokens per step (from its step reports) × planned steps,
    else the training tokens it counted × epochs."""
    start = _start(events)
    total = _number(start.get("total_steps")) or 0
    reports = [e for e in events if e.get("event") == "progress"
               and _number(e.get("tokens_seen")) and _number(e.get("step"))]
    if reports and total:
        last = reports[-1]
        per_step = float(last["tokens_seen"]) / float(last["step"])
        return per_step * total, f"{per_step:,.0f} tokens per step × {int(total):,} planned steps"
    counts = start.get("counts") if isinstance(start.get("counts"), Mapping) else {}
    tokens = _number(counts.get("train_tokens")) if counts else None
    if tokens:
        epochs = _number(_section(plan, "training").get("epochs")) or 1.0
        return tokens * epochs, f"{tokens:,.0f} training tokens × {epochs:g} epochs"
    chunks = [_number(e.get("total")) for e in events
              if e.get("event") == "phase" and e.get("unit") == "chunks" and _number(e.get("total"))]
    if chunks:  # a RAG index: what it embedded
        size = _number(_section(plan, "config").get("chunk_tokens")) or RAG_CHUNK_TOKENS
        return float(chunks[-1] or 0) * size, f"{chunks[-1]:,.0f} chunks × {size:g} tokens embedded"
    return None, "the run reported no token count"


def _model_name(plan: Mapping[str, Any]) -> str:
    from tunewise.plugins.models import EMBEDDED_MODEL

    model = plan.get("model")
    if not isinstance(model, str) or not model:
        return EMBEDDED_MODEL
    source = plan.get("source")
    if isinstance(source, str) and not Path(model).expanduser().is_absolute():
        beside = Path(source).expanduser().parent / model
        if beside.exists():
            return str(beside)
    return model


def compute_quote(events: Sequence[Mapping[str, Any]], plan: Mapping[str, Any] | None = None,
                  hardware: Hardware | None = None, gpus: int = 1) -> Quoted | None:
    """The quote for the plan as it ran (None when its method or hardware cannot be quoted)."""
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.types import DataProfile, HardwareChoice, ModelProfile, Profile

    plan = _plan(events, plan)
    method_id = plan.get("method") or _start(events).get("method")
    if not isinstance(method_id, str) or hardware is None:
        return None
    tokens, tokens_from = planned_tokens(events, plan)
    trains = bool(_number(_start(events).get("total_steps")))
    if tokens is None and method_id != "in_context":  # in-context processes nothing up front
        raise QuoteUnavailable(f"cannot quote the plan as it ran: {tokens_from}")
    seq_len = _number(_section(plan, "training").get("seq_len"))
    counts = _start(events).get("counts")
    counts = counts if isinstance(counts, Mapping) else {}
    data = DataProfile(labeled_examples=int(_number(counts.get("train_examples")) or 0),
                       preference_pairs=int(_number(counts.get("train_pairs")) or 0))
    profile = Profile(model=ModelProfile(name=_model_name(plan), params_b=0.135), data=data,
                      hardware=HardwareChoice(gpu=hardware.name, gpus=max(1, gpus)),
                      training_tokens=int(tokens) if tokens else None, seq_len=int(seq_len) if seq_len else None)
    quote: Quote = get_host().method(method_id).estimate(profile, hardware)
    shape = str(quote.assumptions.get("model_shape", ""))
    if "not found locally" in shape:
        from tunewise.plugins.errors import ModelNotFoundError

        raise ModelNotFoundError(f"cannot quote: the plan's model {profile.model.name!r} is not found from here")
    return Quoted("training" if trains else "setup", round(quote.wall_hours * 3600, 2), round(quote.gpu_hours, 4),
                  quote.usd_low, quote.usd_high, hardware.name, int(tokens) if tokens else None, tokens_from)


# -- spent vs quoted ---------------------------------------------------------------------------------


DEFINITIONS = {
    "wall time": "each tunewise run session of the folder, start to end, summed over sessions (resumes included)",
    "training time": "time in training phases (steps with their mid-training evaluations and checkpoints), "
                     "summed over sessions",
    "GPU-hours": "wall hours × GPUs (0 on a CPU)",
    "dollars": "GPU-hours × the price per hour",
}


@dataclass(frozen=True)
class SpendReport:
    spent: Spent
    quoted: Quoted | None
    quote_error: str | None = None
    definitions: Mapping[str, str] = field(default_factory=lambda: dict(DEFINITIONS))

    def to_dict(self) -> dict[str, Any]:
        return {"spent": self.spent.to_dict(), "quoted": None if self.quoted is None else self.quoted.to_dict(),
                "quote_error": self.quote_error, "sentence": self.sentence(), "definitions": dict(self.definitions)}

    def sentence(self) -> str:
        """``spent 4 min 12 s (training 3 min 02 s), $0 (CPU) — quoted 3 min of training, $0``."""
        from tunewise.advisor.report_render import money, money_range

        s = self.spent
        text = f"spent {duration(s.wall_s)}"
        extras = []
        if s.sessions > 1:
            extras.append(f"{s.sessions} sessions")
        if s.train_s is not None:
            extras.append(f"training {duration(s.train_s)}")
        if extras:
            text += f" ({', '.join(extras)})"
        if s.device == "gpu":
            text += f", {s.gpu_hours:.2g} GPU-hours"
        if s.usd_low is None or s.usd_high is None:
            text += ", $ unknown"
        else:
            text += f", {money_range(s.usd_low, s.usd_high) if s.usd_high >= 0.005 else money(0)}"
        text += " (CPU)" if s.device == "cpu" else f" ({s.gpus}× {s.hardware})"
        q = self.quoted
        if q is None:
            return text + f" — no quote ({self.quote_error or 'the method or hardware cannot be quoted'})"
        cost = money_range(q.usd_low, q.usd_high) if q.usd_high >= 0.005 else money(0)
        what = "of training" if q.covers == "training" else "of setup"
        return text + f" — quoted {duration(q.wall_s)} {what}, {cost}"

    def markdown(self) -> str:
        """The report section, between markers so a resumed run replaces it instead of adding another."""
        s, q = self.spent, self.quoted
        quoted_time = "–" if q is None else duration(q.wall_s)
        quoted_hours = "–" if q is None else "0 (CPU)" if s.device == "cpu" else f"{q.gpu_hours:.3g}"
        lines = [REPORT_START, "## Spent vs quoted", "", f"**{self.sentence()}**", "",
                 "| | spent | quoted |", "|---|---|---|",
                 f"| wall time | {duration(s.wall_s)} ({s.sessions} session{'s' if s.sessions != 1 else ''}) | "
                 f"{quoted_time if q is not None and q.covers == 'setup' else '–'}"
                 f"{' (setup)' if q is not None and q.covers == 'setup' else ''} |",
                 f"| training time | {duration(s.train_s)} | "
                 f"{quoted_time if q is not None and q.covers == 'training' else '–'} |",
                 f"| GPU-hours | {'0 (CPU)' if s.device == 'cpu' else f'{s.gpu_hours:.3g}'} | {quoted_hours} |",
                 f"| dollars | {_usd(s.usd_low, s.usd_high)} | {'–' if q is None else _usd(q.usd_low, q.usd_high)}"
                 f"{'' if q is None else ' (' + q.covers + ')'} |",
                 "", f"Price: {s.price_source}."]
        if q is not None:
            lines.append(f"Quote: recomputed for this plan on {q.hardware} from {q.tokens_from}.")
        elif self.quote_error:
            lines.append(f"No quote: {self.quote_error}.")
        lines += ["", "Definitions: " + "; ".join(f"{k}: {v}" for k, v in self.definitions.items()) + ".",
                  REPORT_END]
        return "\n".join(lines) + "\n"


def _usd(low: float | None, high: float | None) -> str:
    from tunewise.advisor.report_render import money, money_range

    if low is None or high is None:
        return "unknown"
    return money_range(low, high) if high >= 0.005 else money(0)


def spend_report(events: Sequence[Mapping[str, Any]], plan: Mapping[str, Any] | None = None, *,
                 now: float | None = None, quote: bool = True) -> SpendReport:
    """Spent (all sessions of ``events``) next to the quote for the plan; a quote that fails is named."""
    from tunewise.plugins.errors import TunewiseError

    plan = _plan(events, plan)
    spent = compute_spent(events, plan, now=now)
    if not quote:
        return SpendReport(spent, None, "not computed")
    hardware, _kind, gpus, why = run_hardware(events, plan)
    if hardware is None:
        return SpendReport(spent, None, why)
    try:
        quoted = compute_quote(events, plan, hardware, gpus)
    except (TunewiseError, ValueError, OSError) as exc:
        return SpendReport(spent, None, str(exc))
    return SpendReport(spent, quoted, None if quoted is not None else "the plan names no method")


def read_spend(run_dir: Path) -> dict[str, Any] | None:
    """``spend.json`` of a run folder, or None when absent or unreadable."""
    try:
        data = json.loads((Path(run_dir) / SPEND_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_spend(run_dir: Path, report: SpendReport) -> Path:
    path = Path(run_dir) / SPEND_FILE
    path.write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def append_to_report(report_path: Path, report: SpendReport) -> bool:
    """Put the "Spent vs quoted" section at the end of ``report_path`` (replacing an earlier one)."""
    try:
        text = report_path.read_text(encoding="utf-8")
    except OSError:
        return False
    start = text.find(REPORT_START)
    if start >= 0:
        end = text.find(REPORT_END, start)
        tail = text[end + len(REPORT_END):].lstrip("\n") if end >= 0 else ""
        text = text[:start].rstrip("\n") + ("\n\n" + tail if tail else "")
    report_path.write_text(text.rstrip("\n") + "\n\n" + report.markdown(), encoding="utf-8")
    return True
