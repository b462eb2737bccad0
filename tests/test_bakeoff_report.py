"""bakeoff.jsonl and the report section every method writes for its bake-off."""

from __future__ import annotations

import json

from tunewise.plugins.bakeoff import bake_off, classification_bake_off
from tunewise.plugins.bakeoff_report import ExampleOutcome, bakeoff_markdown, write_bakeoff


def _outcomes(base: dict[str, float], result: dict[str, float]) -> list[ExampleOutcome]:
    return [ExampleOutcome(k, f"prompt {k}", "billing", "no idea", "billing" if result[k] else "refund",
                           base[k], result[k]) for k in base]


def test_file_holds_header_then_every_example_sorted_and_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcdefghijklmnopqrstuvwxyz012345")
    base = {f"data.jsonl:{i}": 0.0 for i in range(1, 13)}
    result = {k: 1.0 if i < 10 else 0.0 for i, k in enumerate(base)}
    bake = bake_off(base, result, "accuracy", method="LoRA", unit="held-out messages")
    examples = _outcomes(base, result)
    examples[0] = ExampleOutcome(examples[0].id, "my key is sk-abcdefghijklmnopqrstuvwxyz012345", "billing",
                                 "x", "billing", 0.0, 1.0)
    path = write_bakeoff(tmp_path, bake, list(reversed(examples)))
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["bakeoff"]["verdict"] == "better" and lines[0]["bakeoff"]["wins"] == 10
    ids = [line["id"] for line in lines[1:]]
    assert ids == sorted(base) and len(ids) == 12
    assert "sk-abcdefghijklmnopqrstuvwxyz012345" not in path.read_text(encoding="utf-8")


def test_markdown_leads_with_the_verdict_and_shows_both_directions():
    base = {f"d:{i}": 0.0 if i < 8 else 1.0 for i in range(10)}
    result = {f"d:{i}": 1.0 if i < 8 else 0.0 for i in range(10)}
    bake = bake_off(base, result, "accuracy", method="LoRA", unit="held-out messages")
    text = bakeoff_markdown(bake, _outcomes(base, result), shown=2)
    first = text.splitlines()[2]
    assert first == f"**{bake.sentence}**"
    assert "Improved (8), first 2:" in text and "Got worse (2), first 2:" in text
    assert "| accuracy | 0.200 | 0.800 |" in text


def test_markdown_classification_tables_and_reasons():
    golds = {"f:1": "billing", "f:2": "refund", "f:3": "billing", "f:4": "outage"}
    base = {k: "hello" for k in golds}
    result = {"f:1": "billing", "f:2": "billing", "f:3": "billing", "f:4": "outage | down"}
    bake = classification_bake_off(golds, base, result, ["billing", "refund", "outage"], method="LoRA")
    text = bakeoff_markdown(bake)
    assert "| billing | 2 | 0 | 2 |" in text
    assert "refund → billing: 1" in text
    assert "outage \\| down" not in text or "\\|" in text  # table cells never break the row
    assert bake.verdict == "not_better" and "interval includes 0" in bake.sentence
