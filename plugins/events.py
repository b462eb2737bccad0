"""The run event stream: what ``Method.run`` reports and what ``tunewise run`` writes as JSON lines.

A method calls ``events(kind, **fields)``; the runner stamps ``time`` and writes one JSON object per
line to ``<output_dir>/events.jsonl`` (and to stdout with ``--events -``). The TUI's run screen reads
the same lines. Every event has ``event`` (the kind) and ``time`` (Unix seconds). Kinds and their
fields (extra fields are allowed and ignored by readers that do not know them):

``start``       ``method``, ``total_steps``, ``plan`` (the plan as a dict), ``device``
``progress``    ``step``, ``total_steps``, ``loss``, ``lr``, ``tokens_per_s``, ``elapsed_s``, ``eta_s``,
                ``epoch``; optional ``peak_memory_gb``
``eval``        ``phase`` (``before`` / ``during`` / ``after``), ``step``, ``metrics`` (name -> float)
``checkpoint``  ``step``, ``path``
``log``         ``level`` (``info`` / ``warning``), ``message``
``error``       ``message`` (for the user: what happened and what to try), ``kind`` (e.g. ``oom``,
                ``non_finite_loss``, ``data``, ``internal``)
``phase``       ``phase`` (what the run is doing now, e.g. ``evaluating before``, ``training``,
                ``evaluating after``, ``indexing``, ``answering``), optional ``done``, ``total``, ``unit``
``bakeoff``     ``metric``, ``verdict`` (``better`` / ``worse`` / ``not_better``), ``sentence``; the rest of
                :meth:`BakeOff.to_dict <tunewise.plugins.bakeoff.BakeOff.to_dict>`
``end``         ``status`` (``completed`` / ``failed`` / ``cancelled``), ``result`` (RunResult as a
                dict), ``peak_memory_gb``, ``wall_s``
"""

from __future__ import annotations

import json
import time
from typing import IO, Any

from tunewise.plugins.redaction import redact, redact_data

EVENT_KINDS = ("start", "phase", "progress", "eval", "checkpoint", "log", "error", "bakeoff", "end")

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("method", "total_steps"),
    "phase": ("phase",),
    "progress": ("step", "total_steps", "loss", "tokens_per_s"),
    "eval": ("phase", "step", "metrics"),
    "checkpoint": ("step", "path"),
    "log": ("level", "message"),
    "error": ("message", "kind"),
    "bakeoff": ("metric", "verdict", "sentence"),
    "end": ("status",),
}


def make_event(kind: str, /, **fields: Any) -> dict[str, Any]:
    """A stamped event dict; unknown kinds and missing required fields raise ``ValueError``."""
    if kind not in REQUIRED_FIELDS:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
    missing = [f for f in REQUIRED_FIELDS[kind] if f not in fields]
    if missing:
        raise ValueError(f"{kind} event lacks {', '.join(missing)}")
    return {"event": kind, "time": round(time.time(), 3), **fields}


def parse_event_line(line: str) -> dict[str, Any] | None:
    """One event from a JSON line; None for blank lines or lines that are not events (e.g. stray prints)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and event.get("event") in REQUIRED_FIELDS else None


class JsonlEventWriter:
    """An ``EventSink`` that appends events to a stream as JSON lines, flushing each one."""

    def __init__(self, *streams: IO[str]) -> None:
        self.streams = streams

    def __call__(self, kind: str, /, **fields: Any) -> None:
        # Secrets are redacted in the data (before JSON escapes them) and in the text (objects str()-ed by default=str).
        line = redact(json.dumps(redact_data(make_event(kind, **fields)), default=str))
        for stream in self.streams:
            stream.write(line + "\n")
            stream.flush()
