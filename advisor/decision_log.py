"""The decision log: what was asked, what was recommended, what was chosen and how the run ended.

Every consultation gets one JSON-lines file in ``<data dir>/decisions/`` (the data dir is
``$TUNEWISE_DATA_DIR`` or platformdirs' ``user_data_dir("tunewise")``). Each line is one record
``{"kind", "time", "consultation", ...}`` with kind ``answers``, ``audit``, ``ranking``, ``plan``,
``pilot``, ``run`` or ``note``. Records are appended and flushed one by one (and fsynced), so a crash loses at most the
record being written and a reader never sees a half-written file other than a torn last line,
which :func:`read_decisions` skips.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.plugins.redaction import redact, redact_data
from tunewise.plugins.types import to_jsonable

DATA_DIR_ENV = "TUNEWISE_DATA_DIR"
RECORD_KINDS = ("answers", "audit", "ranking", "plan", "pilot", "run", "note")


def data_dir() -> Path:
    """tunewise's user data dir (``$TUNEWISE_DATA_DIR`` or the platform's user data dir)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("tunewise"))


def decisions_dir() -> Path:
    return data_dir() / "decisions"


@dataclass
class DecisionLog:
    """One consultation's log file; create with :meth:`start`, add records with :meth:`record`."""

    path: Path
    consultation: str
    kinds_written: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, directory: Path | None = None) -> DecisionLog:
        """A new log named ``<UTC time>-<random id>.jsonl``; the file appears with the first record."""
        consultation = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
        return cls(path=(directory or decisions_dir()) / f"{consultation}.jsonl", consultation=consultation)

    def record(self, kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Append one record (dataclasses inside ``payload`` become dicts) and flush it to disk."""
        if kind not in RECORD_KINDS:
            raise ValueError(f"unknown decision record kind {kind!r}; expected one of {', '.join(RECORD_KINDS)}")
        entry = {"kind": kind, "time": round(time.time(), 3), "consultation": self.consultation,
                 **to_jsonable(dict(payload))}
        line = redact(json.dumps(redact_data(entry), default=str, ensure_ascii=False))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(line + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        self.kinds_written.append(kind)
        return entry

    def record_pilot(self, pilot: Any) -> dict[str, Any]:
        """Record a pilot (:class:`tunewise.advisor.pilot.PilotResult`): candidates and their plans, the
        shared held-out ids, what each run measured, the head-to-heads, the order before and after with
        the rule that moved it, and how long it took."""
        return self.record("pilot", pilot.to_dict() if hasattr(pilot, "to_dict") else dict(pilot))


def read_decisions(path: Path) -> list[dict[str, Any]]:
    """The records of one log, oldest first; a torn last line (crash mid-write) is skipped."""
    from tunewise.plugins.bounded_load import InputError, load_json, read_lines

    records = []
    for line in read_lines(path):  # bounded: a log is read back, and may have been edited
        if line.problem or not line.text.strip():
            continue
        try:
            entry = load_json(line.text, str(path), line.number)
        except InputError:
            continue
        if isinstance(entry, dict) and "kind" in entry:
            records.append(entry)
    return records


def list_decision_logs(directory: Path | None = None) -> Iterator[Path]:
    """Logs in the decisions dir, newest first (names start with their UTC time)."""
    folder = directory or decisions_dir()
    if folder.is_dir():
        yield from sorted(folder.glob("*.jsonl"), reverse=True)
