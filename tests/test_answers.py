"""The answers file: defaults, every validation error with its path and line, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from tunewise.advisor.answers import (
    FIELDS,
    AnswersError,
    dump_answers,
    load_answers,
    parse_answers,
    parse_count,
    yaml_lines,
)
from tunewise.plugins.types import Profile, Question


def test_empty_file_takes_documented_defaults() -> None:
    profile = parse_answers("")
    assert profile == Profile(hardware=profile.hardware)  # every default equals the dataclass default
    assert profile.hardware.gpu == "A100-80GB" and profile.hardware.gpus == 1
    assert profile.goals == ("task",) and profile.budget.usd == 1000 and profile.model.params_b == 7


def test_full_file_from_the_issue(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    text = """
use_case: "Support assistant for our billing product"
goals: [knowledge, format]
knowledge_changes: weekly
needs_citations: true
data:
  documents: 1200
  unlabeled_tokens: 0
  labeled_examples: 300
  preference_pairs: 0
  human_raters: false
  path: docs
model: {name: null, params_b: 8}
hardware: {gpu: a10g, gpus: 2}
budget: {usd: 500, days: 10}
team_expertise: basic
queries_per_day: 20000
latency_sensitive: true
"""
    file = tmp_path / "a.yaml"
    file.write_text(text)
    profile = load_answers(file)
    assert profile.goals == ("knowledge", "format")
    assert profile.data.documents == 1200 and profile.data.path == str(tmp_path / "docs")
    assert profile.hardware.gpu == "A10G" and profile.hardware.gpus == 2  # catalogue spelling
    assert profile.queries_per_day == 20000 and profile.latency_sensitive is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budget: {usd: -1}", "a.yaml:1: budget.usd: must be ≥ 0"),
        ("budget:\n  days: 0", "a.yaml:2: budget.days: must be > 0"),
        ("goals: [knowledge, vibes]", "a.yaml:1: goals: 'vibes' is not one of knowledge"),
        ("goals: []", "a.yaml:1: goals: must be a list of one or more"),
        ("knowledge_changes: secondly", "a.yaml:1: knowledge_changes: must be one of never, yearly, monthly, weekly, "
                                        "daily, hourly, realtime, got 'secondly'"),
        ("goals: [knowledge]\nknowledge_changes: 5", "a.yaml:2: knowledge_changes: must be one of never"),
        ("needs_citations: maybe", "needs_citations: must be true or false"),
        ("data:\n  labeled_examples: lots", "a.yaml:2: data.labeled_examples: must be a number"),
        ("data:\n  labeled_examples: 2.5", "data.labeled_examples: must be a whole number"),
        ("data: {flavour: 1}", "a.yaml:1: data.flavour: unknown field (known: documents, human_raters"),
        ("colour: blue", "a.yaml:1: colour: unknown field"),
        ("model: {params_b: 0}", "model.params_b: must be > 0"),
        ("hardware: {gpu: TPUv9}", "a.yaml:1: hardware.gpu: unknown hardware 'TPUv9'; known: H200"),
        ("hardware: {gpus: 0}", "hardware.gpus: must be ≥ 1"),
        ("hardware: {gpus: 1.5}", "hardware.gpus: must be a whole number"),
        ("team_expertise: guru", "team_expertise: must be one of none, basic"),
        ("queries_per_day: -3", "queries_per_day: must be ≥ 0"),
        ("data: {documents: '-5'}", "data.documents: must be ≥ 0, got '-5'"),
        ("data: {labeled_examples: -1.5k}", "data.labeled_examples: must be ≥ 0, got '-1.5k'"),
        ("data: {path: nowhere/at/all}", "data.path: no such file or folder"),
        ("data: 3", "a.yaml:1: data: must be a mapping"),
        ("[1, 2]", "a.yaml: must be a mapping of fields"),
        ("goals: [a\nb: c", "a.yaml:2: not valid YAML"),
        ("extra: {nobody: 1}", "extra.nobody: unknown plugin question"),
    ],
)
def test_validation_errors_name_path_and_line(text: str, message: str) -> None:
    with pytest.raises(AnswersError) as err:
        parse_answers(text, source="a.yaml")
    assert message in str(err.value)


def test_data_section_knows_audit_fields_only_via_spec() -> None:
    # The audit-only fields (avg tokens, document tokens) are not answers: they are refused.
    with pytest.raises(AnswersError, match="data.avg_tokens_per_example: unknown field"):
        parse_answers("data: {avg_tokens_per_example: 3}")


def test_all_problems_reported_together_in_line_order() -> None:
    with pytest.raises(AnswersError) as err:
        parse_answers("budget: {usd: -1}\nhardware: {gpus: 0}\nfoo: 1\n", source="a.yaml")
    problems = err.value.problems
    assert [p.split(":")[1] for p in problems] == ["1", "2", "3"]


def test_counts_accept_human_numbers() -> None:
    assert parse_count("2B") == 2e9 and parse_count("500M") == 5e8 and parse_count("2e9") == 2e9
    assert parse_count("20_000") == 20000 and parse_count(12) == 12
    with pytest.raises(ValueError):
        parse_count("two")
    assert parse_answers("data: {unlabeled_tokens: 1.5B}").data.unlabeled_tokens == 1_500_000_000


def test_single_goal_string_and_case_insensitive_choices() -> None:
    profile = parse_answers("goals: Knowledge\nteam_expertise: Expert\nhardware: {gpu: H100}")
    assert profile.goals == ("knowledge",) and profile.team_expertise == "expert"
    assert profile.hardware.gpu == "H100-SXM"


def test_plugin_answers_under_extra() -> None:
    question = Question(id="domain_vocab", text="?", type="int", default=0, minimum=0)
    profile = parse_answers("extra: {domain_vocab: 40}", extra_questions={"domain_vocab": question})
    assert profile.extra == {"domain_vocab": 40}
    with pytest.raises(AnswersError, match="extra.domain_vocab: must be ≥ 0"):
        parse_answers("extra: {domain_vocab: -1}", extra_questions={"domain_vocab": question})
    assert parse_answers("", extra_questions={"domain_vocab": question}).extra == {"domain_vocab": 0}


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    profile = parse_answers("goals: [style, safety]\nbudget: {usd: 42}\nhardware: {gpu: l4, gpus: 3}\n")
    assert parse_answers(dump_answers(profile)) == profile


def test_yaml_lines_maps_nested_keys() -> None:
    lines = yaml_lines("a: 1\nb:\n  c: 2\n  d: {e: 3}\n")
    assert lines == {"a": 1, "b": 2, "b.c": 3, "b.d": 4, "b.d.e": 4}


def test_every_field_has_a_meaning_and_a_default_that_validates() -> None:
    from tunewise.advisor.answers import validate_value

    for spec in FIELDS:
        assert spec.meaning
        if spec.default is not None:
            validate_value(spec, list(spec.default) if isinstance(spec.default, tuple) else spec.default)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(AnswersError, match="no such answers file"):
        load_answers(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"use_case: caf\xe9\n")
    with pytest.raises(AnswersError, match="not UTF-8"):
        load_answers(bad)


@pytest.mark.parametrize(("written", "meant"), [("hourly", "hourly"), ("realtime", "realtime"), ("Real-Time", "realtime"),
                                                ("real time", "realtime"), ("HOURLY", "hourly")])
def test_knowledge_changes_accepts_hourly_and_realtime(written: str, meant: str, tmp_path: Path) -> None:
    file = tmp_path / "a.yaml"
    file.write_text(f"goals: [knowledge]\nknowledge_changes: {written}\n")
    profile = load_answers(file)
    assert profile.knowledge_changes == meant
    assert parse_answers(dump_answers(profile)).knowledge_changes == meant  # the round trip keeps it
