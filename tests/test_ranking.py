"""Ranking: all methods, cost rules, no-training-first, plugin adjustments, third-party methods, combinations."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from tunewise.advisor import ranking as ranking_mod
from tunewise.advisor.answers import parse_answers
from tunewise.advisor.hardware import find_hardware
from tunewise.advisor.ranking import COST_RULES, apply_cost_rules, order, rank
from tunewise.plugins import hookimpl
from tunewise.plugins.manager import PluginHost
from tunewise.plugins.types import Fit, Quote

BUILTIN = {"rag", "in_context", "full_finetune", "lora", "continual_pretraining", "rlhf"}

SUPPORT = """
use_case: Support assistant for our billing product
goals: [knowledge, format]
knowledge_changes: weekly
needs_citations: true
data: {documents: 1200, labeled_examples: 400}
model: {params_b: 8}
hardware: {gpu: L4}
budget: {usd: 300, days: 14}
team_expertise: basic
queries_per_day: 5000
"""


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a host with extra plugins for one test."""
    from tunewise.plugins import manager

    def install(*plugins: tuple[str, object]) -> PluginHost:
        new = PluginHost(load_entry_points=False, extra_plugins=plugins)
        monkeypatch.setattr(manager, "_HOST", new)
        return new

    install()
    return install


def test_all_methods_ranked_best_first_with_quotes(host: Any) -> None:
    result = rank(parse_answers(SUPPORT))
    recs = result.recommendations
    assert {r.method for r in recs} == BUILTIN
    assert [r.rank for r in recs] == list(range(1, 7))
    assert recs[0].method == "rag" and "no training needed" in recs[0].reasons[-1]
    assert all(r.quote is not None for r in recs)
    scores = [r.score for r in recs if r.needs_training or r.score < ranking_mod.SUFFICIENT_SCORE]
    assert scores == sorted(scores, reverse=True)
    assert ("rag", "lora") in [c.methods for c in result.combine]
    # Reasons quote the answers.
    assert any("1,200 documents" in reason for reason in result.get("rag").reasons)
    assert any('"weekly"' in reason for reason in result.get("rag").reasons)


def test_json_format(host: Any) -> None:
    data = json.loads(json.dumps(rank(parse_answers(SUPPORT)).to_dict()))
    assert set(data) >= {"recommendations", "combine", "assumptions"}
    first = data["recommendations"][0]
    assert set(first) >= {"method", "rank", "score", "reasons", "blockers", "quote"}
    assert set(first["quote"]) >= {"flops", "gpu_hours", "wall_hours", "usd_low", "usd_high", "peak_memory_gb",
                                   "fits", "assumptions"}


def _quote(**kw: Any) -> Quote:
    base = dict(method="m", flops=1.0, gpu_hours=1.0, wall_hours=1.0, usd_low=10.0, usd_high=20.0,
                peak_memory_gb=10.0, fits=True)
    return Quote(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule_id", "quote_kw", "budget", "blocked", "text"),
    [
        ("over-budget", {"usd_low": 500.0, "usd_high": 900.0}, "budget: {usd: 100}", True, "over your $100 budget"),
        ("maybe-over-budget", {"usd_low": 50.0, "usd_high": 150.0}, "budget: {usd: 100}", False, "high end exceeds"),
        ("within-budget", {"usd_low": 5.0, "usd_high": 9.0}, "budget: {usd: 100}", False, "within your $100"),
        ("does-not-fit", {"fits": False, "peak_memory_gb": 120.0,
                          "fixes": ("activation recompute: 99 GB (still too much)", "LoRA: 20 GB")},
         "hardware: {gpu: A100-80GB}", False, "would fit with LoRA: 20 GB"),
        ("too-slow", {"wall_hours": 24 * 30.0}, "budget: {days: 7}", True, "more than your 7 days"),
    ],
)
def test_cost_rules(rule_id: str, quote_kw: dict, budget: str, blocked: bool, text: str) -> None:
    profile = parse_answers(budget)
    hardware = find_hardware(profile.hardware.gpu)
    quote = _quote(**quote_kw)
    rule = next(r for r in COST_RULES if r.id == rule_id)
    assert rule.applies(profile, quote, hardware)
    fit = apply_cost_rules(Fit("m", 0.6), quote, profile, hardware)
    where = fit.blockers if blocked else fit.reasons
    assert any(text in line for line in where), where
    if blocked:
        assert fit.score <= 0.1
    else:
        assert fit.score == pytest.approx(min(1, 0.6 + sum(r.effect for r in COST_RULES
                                                           if r.applies(profile, quote, hardware))))
    assert set(COST_RULES) >= {rule}


def test_every_cost_rule_is_tested() -> None:
    tested = {"over-budget", "maybe-over-budget", "within-budget", "does-not-fit", "too-slow"}
    assert {r.id for r in COST_RULES} == tested


def test_sufficient_no_training_method_ranks_first() -> None:
    fits = [Fit("lora", 0.9), Fit("rag", 0.75), Fit("in_context", 0.6), Fit("full_finetune", 0.95, (), ("x",))]
    trains = {"lora": True, "rag": False, "in_context": False, "full_finetune": True}
    assert [f.method for f in order(fits, trains)] == ["rag", "full_finetune", "lora", "in_context"]
    # Blocked or insufficient no-training methods do not jump the queue.
    fits = [Fit("lora", 0.9), Fit("rag", 0.75, (), ("no documents",))]
    assert [f.method for f in order(fits, trains)] == ["lora", "rag"]


class ReversePlugin:
    @hookimpl
    def tunewise_adjust_recommendations(self, profile, ranking):
        return [Fit(f.method, f.score, (*f.reasons, "adjusted by plugin"), f.blockers) for f in reversed(ranking)]


class DropPlugin:
    @hookimpl
    def tunewise_adjust_recommendations(self, ranking):
        return ranking[:2]


class RaisingPlugin:
    @hookimpl
    def tunewise_adjust_recommendations(self, ranking):
        raise RuntimeError("boom")


def test_adjust_hook_reorders_and_annotates(host: Any) -> None:
    plain = rank(parse_answers(SUPPORT))
    host(("reverse", ReversePlugin()))
    adjusted = rank(parse_answers(SUPPORT))
    assert [r.method for r in adjusted.recommendations] == [r.method for r in reversed(plain.recommendations)]
    assert all("adjusted by plugin" in r.reasons for r in adjusted.recommendations)


def test_adjust_hook_failures_are_contained(host: Any) -> None:
    host(("drop", DropPlugin()), ("raiser", RaisingPlugin()))
    result = rank(parse_answers(SUPPORT))
    assert {r.method for r in result.recommendations} == BUILTIN
    assert any("dropped" in p for p in result.problems)
    assert any("raiser" in p and "raised" in p for p in result.problems)


class PromptTuning:
    id: ClassVar[str] = "prompt_tuning"
    title: ClassVar[str] = "Prompt tuning"
    summary: ClassVar[str] = "Learn soft prompt vectors."
    config_class: ClassVar[Any] = None

    def fit(self, profile):
        return Fit(self.id, 0.99, (f"third-party rule saw {profile.data.labeled_examples} examples",))

    def estimate(self, profile, hardware):
        return Quote(self.id, 1e15, 0.01, 0.01, 0.0, 0.1, 5.0, True)

    def run(self, plan, events):
        raise NotImplementedError


class Broken(PromptTuning):
    id: ClassVar[str] = "broken"

    def fit(self, profile):
        raise ValueError("cannot think")


class ThirdParty:
    @hookimpl
    def tunewise_register_methods(self, register):
        register(PromptTuning)
        register(Broken)


def test_third_party_methods_are_ranked_and_broken_ones_listed_last(host: Any) -> None:
    host(("third", ThirdParty()))
    result = rank(parse_answers(SUPPORT))
    methods = [r.method for r in result.recommendations]
    assert set(methods) == BUILTIN | {"prompt_tuning", "broken"}
    assert methods[-1] == "broken" and result.get("broken").error
    assert "third-party rule saw 400 examples" in result.get("prompt_tuning").reasons
    assert any("broken" in p for p in result.problems)


def test_combinations_follow_usable_methods(host: Any) -> None:
    profile = parse_answers("""
goals: [style, preference]
data: {labeled_examples: 5000, preference_pairs: 20000, human_raters: true}
team_expertise: expert
budget: {usd: 100000, days: 120}
hardware: {gpu: H100, gpus: 8}
""")
    result = rank(profile)
    assert ("lora", "rlhf") in [c.methods for c in result.combine]
    assert result.get("rlhf").score >= ranking_mod.USABLE_SCORE
    assert all("rag" not in c.methods for c in result.combine)  # no documents: RAG is blocked


@pytest.mark.parametrize("changes", ["hourly", "realtime", "real-time"])
def test_facts_that_change_hourly_or_in_real_time_favour_retrieval(host: Any, changes: str) -> None:
    result = rank(parse_answers(f"""
goals: [knowledge]
knowledge_changes: {changes}
data: {{documents: 800, labeled_examples: 2000}}
hardware: {{gpu: A100-80GB}}
"""))
    assert result.top.method == "rag"
    meant = "realtime" if changes == "real-time" else changes
    assert any(f'"{meant}", faster than any training run' in r for r in result.get("rag").reasons)
    assert any("live source" in r for r in result.get("rag").reasons) is (meant == "realtime")
    quote = result.get("rag").quote
    assert quote is not None and f'facts change "{meant}"' in quote.assumptions["freshness"]
    for trained in ("lora", "full_finetune"):  # trained-in facts go stale: said, and the score pays for it
        assert any(f'your facts change "{meant}"' in r for r in result.get(trained).reasons)
    daily = rank(parse_answers("goals: [knowledge]\nknowledge_changes: daily\n"
                               "data: {documents: 800, labeled_examples: 2000}\nhardware: {gpu: A100-80GB}\n"))
    assert "freshness" not in (daily.get("rag").quote.assumptions if daily.get("rag").quote else {})
