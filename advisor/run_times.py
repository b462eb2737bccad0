"""A run's times from its ``events.jsonl``: one definition of elapsed (wall) time and of training time.

A folder's events file holds every ``tunewise run`` session of it (a resume appends). Both figures are
summed over the sessions, so a cancelled and resumed run counts both parts and never goes backwards:

- **wall time** of a session: its ``end`` event's ``wall_s`` (the runner's own clock); a session cut
  off without one (still running, or killed) counts from its first event to its last, or to ``now``
  while it is still running;
- **training time** of a session: the seconds spent in training phases (``phase`` events counted in
  ``steps``: the optimizer steps with their mid-training evaluations and checkpoints); a session
  without such phase events counts from its first to its last ``progress`` event; None when the
  session never trained.

Sessions: one ends with its ``end`` event, or where the next one sends ``start``. Events that belong
to no started session (when some session did start) are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Event = Mapping[str, Any]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def is_training_phase(event: Event) -> bool:
    """Whether a ``phase`` event names a training phase (counted in optimizer steps)."""
    return event.get("unit") == "steps"


def split_sessions(events: Iterable[Event]) -> list[list[Event]]:
    """The events of each ``tunewise run`` session, in order (see the module docstring)."""
    sessions: list[list[Event]] = []
    current: list[Event] = []
    started = False
    for event in events:
        kind = event.get("event")
        if kind == "start" and started:
            sessions.append(current)
            current, started = [], False
        current.append(event)
        started = started or kind == "start"
        if kind == "end":
            sessions.append(current)
            current, started = [], False
    if current:
        sessions.append(current)
    return sessions


def _times(session: Sequence[Event]) -> list[float]:
    return [t for t in (_number(e.get("time")) for e in session) if t is not None]


def session_ended(session: Sequence[Event]) -> bool:
    return any(e.get("event") == "end" for e in session)


def session_wall_s(session: Sequence[Event], now: float | None = None) -> float:
    """A session's wall seconds: its ``end`` event's ``wall_s``; else first to last event (or to ``now``,
    for a session still running)."""
    for event in session:
        if event.get("event") == "end" and (wall := _number(event.get("wall_s"))) is not None:
            return max(0.0, wall)
    times = _times(session)
    if not times:
        return 0.0
    last = max(times) if now is None or session_ended(session) else max(now, max(times))
    return max(0.0, last - min(times))


def session_train_s(session: Sequence[Event], now: float | None = None) -> float | None:
    """A session's seconds in training phases (see the module docstring); None when it never trained."""
    phases = [e for e in session if e.get("event") == "phase"]
    if not any(is_training_phase(e) for e in phases):
        steps = _times([e for e in session if e.get("event") == "progress"])
        return max(steps) - min(steps) if len(steps) >= 2 else None
    total = 0.0
    current: Event | None = None
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
            if current is not None and is_training_phase(current):
                total += max(0.0, when - since)
            current, since = event, when
    if current is not None and is_training_phase(current):
        total += max(0.0, (max(now, last) if now is not None and not ended else last) - since)
    return total


@dataclass(frozen=True)
class RunTimes:
    """A run's times by the definitions of this module."""

    sessions: int
    wall_s: float
    train_s: float | None
    """None when no session trained (RAG, in-context)."""


def counted_sessions(events: Iterable[Event]) -> list[list[Event]]:
    """The sessions that count: those that sent ``start`` (all of them when none did)."""
    sessions = split_sessions(events)
    return [s for s in sessions if any(e.get("event") == "start" for e in s)] or sessions


def run_times(events: Iterable[Event], now: float | None = None) -> RunTimes:
    """Wall and training time of every session in ``events``; ``now`` extends a last session still running."""
    sessions = counted_sessions(events)
    last = len(sessions) - 1
    wall = math.fsum(session_wall_s(s, now if i == last else None) for i, s in enumerate(sessions))
    trains = [session_train_s(s, now if i == last else None) for i, s in enumerate(sessions)]
    kept = [t for t in trains if t is not None]
    return RunTimes(len(sessions), wall, math.fsum(kept) if kept else None)
