"""The decision log: one JSON-lines file per consultation in the user data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunewise.advisor.decision_log import DecisionLog, data_dir, list_decision_logs, read_decisions
from tunewise.plugins.types import Fit


def test_data_dir_follows_the_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))
    assert data_dir() == tmp_path / "data"
    log = DecisionLog.start()
    assert log.path.parent == tmp_path / "data" / "decisions"


def test_records_are_appended_in_order_with_dataclasses_as_dicts(tmp_path: Path) -> None:
    log = DecisionLog.start(tmp_path)
    assert not log.path.exists(), "no empty files for consultations that recorded nothing"
    log.record("answers", {"answers": {"goals": ["knowledge"]}, "source": None})
    log.record("ranking", {"ranking": [Fit("rag", 0.9, ("daily changes",))]})
    log.record("plan", {"method": "rag", "plan": "plan.yaml"})
    records = read_decisions(log.path)
    assert [r["kind"] for r in records] == ["answers", "ranking", "plan"]
    assert records[1]["ranking"][0] == {"method": "rag", "score": 0.9, "reasons": ["daily changes"], "blockers": []}
    assert {r["consultation"] for r in records} == {log.consultation}
    assert list(list_decision_logs(tmp_path)) == [log.path]


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown decision record kind 'guess'"):
        DecisionLog.start(tmp_path).record("guess", {})


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    log = DecisionLog.start(tmp_path)
    log.record("note", {"text": "kept"})
    with open(log.path, "a") as stream:
        stream.write(json.dumps({"kind": "run"})[:7])
    assert [r["text"] for r in read_decisions(log.path)] == ["kept"]
