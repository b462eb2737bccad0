"""The interview catalogue: topics, conditions, inline validation, plugin questions, answers -> profile."""

from __future__ import annotations

import pytest
from tunewise.advisor import interview
from tunewise.advisor.answers import SPECS, AnswersError
from tunewise.plugins import hookimpl
from tunewise.plugins.manager import PluginHost
from tunewise.plugins.types import Question


def test_every_answers_field_has_a_question_with_help_in_a_known_topic() -> None:
    qs = interview.questions(include_plugins=False)
    assert {q.id for q in qs} == set(SPECS)
    assert all(q.help and q.text for q in qs)
    assert {q.topic for q in qs} == set(interview.TOPIC_IDS)
    # Ordered by topic as the screens are.
    order = [interview.TOPIC_IDS.index(q.topic) for q in qs]
    assert order == sorted(order)


def test_hardware_question_lists_the_catalogue() -> None:
    gpu = next(q for q in interview.questions(include_plugins=False) if q.id == "hardware.gpu")
    assert gpu.type == "choice" and "H100-SXM" in gpu.choices and "cpu" in gpu.choices


def test_conditional_questions() -> None:
    by_id = {q.id: q for q in interview.questions(include_plugins=False)}
    assert not interview.should_ask(by_id["knowledge_changes"], {"goals": ["style"]})
    assert interview.should_ask(by_id["knowledge_changes"], {"goals": ["knowledge"]})
    assert interview.should_ask(by_id["model.params_b"], {"model.name": None})
    assert not interview.should_ask(by_id["model.params_b"], {"model.name": "./my-model"})
    assert interview.should_ask(by_id["use_case"], {})


def test_parse_text_and_validate_answer() -> None:
    by_id = {q.id: q for q in interview.questions(include_plugins=False)}
    assert interview.parse_text(by_id["needs_citations"], "yes") is True
    assert interview.parse_text(by_id["goals"], "knowledge, format") == ["knowledge", "format"]
    assert interview.validate_answer(by_id["data.unlabeled_tokens"], interview.parse_text(
        by_id["data.unlabeled_tokens"], "2B")) == 2_000_000_000
    assert interview.validate_answer(by_id["hardware.gpu"], "h100") == "H100-SXM"
    with pytest.raises(ValueError, match="must be ≥ 0"):
        interview.validate_answer(by_id["budget.usd"], -4.0)
    with pytest.raises(ValueError, match="unknown hardware"):
        interview.validate_answer(by_id["hardware.gpu"], "abacus")
    with pytest.raises(ValueError, match="yes or no"):
        interview.parse_text(by_id["latency_sensitive"], "perhaps")
    with pytest.raises(ValueError, match="whole number"):
        interview.parse_text(by_id["hardware.gpus"], "two")


def test_profile_from_answers_uses_defaults_and_reports_paths() -> None:
    profile = interview.profile_from_answers({"goals": ["knowledge"], "data.documents": 40, "budget.usd": 10.0})
    assert profile.data.documents == 40 and profile.budget.usd == 10 and profile.budget.days == 14
    with pytest.raises(AnswersError, match="budget.usd: must be ≥ 0"):
        interview.profile_from_answers({"budget.usd": -1.0})
    with pytest.raises(AnswersError, match="nonsense: unknown question"):
        interview.profile_from_answers({"nonsense": 1})


class QuestionsPlugin:
    @hookimpl
    def tunewise_register_questions(self, register):
        register(Question(id="glossary_terms", text="How many domain terms?", type="int", default=0, minimum=0,
                          topic="data"))
        register(Question(id="tone", text="Which tone?", type="choice", choices=("formal", "casual"),
                          default="formal"))
        register(Question(id="budget.usd", text="clash with a built-in", type="float"))


def test_plugin_questions_extend_the_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.plugins import manager

    monkeypatch.setattr(manager, "_HOST", PluginHost(load_entry_points=False,
                                                     extra_plugins=[("qs", QuestionsPlugin())]))
    qs = interview.questions()
    ids = [q.id for q in qs]
    assert "glossary_terms" in ids and "tone" in ids and ids.count("budget.usd") == 1
    assert [q.id for q in interview.questions_for_topic("extra", qs)] == ["tone"]
    assert interview.topics(qs)[-1].id == "extra"
    profile = interview.profile_from_answers({"glossary_terms": 12, "tone": "casual"}, qs)
    assert profile.extra == {"glossary_terms": 12, "tone": "casual"}
    with pytest.raises(AnswersError, match="extra.tone: must be one of formal, casual"):
        interview.profile_from_answers({"tone": "loud"}, qs)
