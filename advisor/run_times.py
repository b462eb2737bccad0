"""A run's elapsed (wall) and training time from its ``events.jsonl``, summed over every session.

The definitions are :mod:`tunewise.advisor.spend`'s (one per figure, used by ``tunewise run``'s last
lines, ``spend.json``, the report and the Results screen); this is the sum the Run screen reads live,
many times a second, without the hardware and price look-ups of :func:`~tunewise.advisor.spend.compute_spent`:

- **wall time**: each session's ``end`` ``wall_s``; a session without one counts from when it began to
  its last event, or to ``now`` while it is still running;
- **training time**: the seconds in training phases (``phase`` events counted in ``steps``); None when
  no session had one (RAG, in-context, or a stream from before ``phase`` events).

A session ends with its ``end`` event or where the next one sends ``start``; sessions that never sent
``start`` count only when none did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tunewise.advisor.spend import session_train_s, session_wall_s, split_sessions


@dataclass(frozen=True)
class RunTimes:
    sessions: int
    wall_s: float
    train_s: float | None


def counted_sessions(events: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """The sessions that count: those that sent ``start`` (all of them when none did)."""
    sessions = split_sessions(events)
    return [s for s in sessions if any(e.get("event") == "start" for e in s)] or sessions


def run_times(events: Iterable[Mapping[str, Any]], now: float | None = None) -> RunTimes:
    """Wall and training time of every session in ``events``; ``now`` extends a last session still running."""
    sessions = counted_sessions(events)
    last = len(sessions) - 1
    wall = math.fsum(session_wall_s(s, now if i == last else None) for i, s in enumerate(sessions))
    trains = [session_train_s(s, now if i == last else None) for i, s in enumerate(sessions)]
    kept = [t for t in trains if t is not None]
    return RunTimes(len(sessions), wall, math.fsum(kept) if kept else None)
