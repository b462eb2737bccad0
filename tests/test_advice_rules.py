"""Every advice rule of every built-in method: when it applies, what it does to the score, what it says.

The table below must cover every rule (a test fails when a rule is added without a case), and each
case checks the rule against a profile where it applies and one where it does not.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from tunewise.methods._advice import BLOCKED_SCORE_CAP, evaluate
from tunewise.plugins.types import Budget, DataProfile, HardwareChoice, Profile


def P(goals: tuple[str, ...] = ("task",), *, labeled: int = 0, docs: int = 0, unlabeled: int = 0, pairs: int = 0,
      raters: bool = False, gpu: str = "A100-80GB", gpus: int = 1, expertise: str = "moderate", days: float = 14,
      changes: str = "never", citations: bool = False, latency: bool = False, qpd: int = 1000,
      use_case: str = "billing support") -> Profile:
    return Profile(
        use_case=use_case, goals=goals, knowledge_changes=changes, needs_citations=citations,
        data=DataProfile(documents=docs, unlabeled_tokens=unlabeled, labeled_examples=labeled,
                         preference_pairs=pairs, human_raters=raters),
        hardware=HardwareChoice(gpu, gpus), budget=Budget(usd=1000, days=days), team_expertise=expertise,
        queries_per_day=qpd, latency_sensitive=latency,
    )


# (method, rule id, profile where it applies, profile where it does not, text the reason must quote)
CASES: list[tuple[str, str, Profile, Profile, str]] = [
    ("lora", "no-examples", P(), P(labeled=10), "you have none"),
    ("lora", "enough-examples", P(labeled=300), P(labeled=99), "300 labeled examples"),
    ("lora", "modest-data", P(labeled=5000), P(labeled=200_000), "5,000 examples"),
    ("lora", "few-examples", P(labeled=12), P(labeled=100), "only 12"),
    ("lora", "behaviour-goal", P(("format",), labeled=500), P(("knowledge",), labeled=500), '"format"'),
    ("lora", "modest-hardware", P(gpu="L4"), P(gpus=8), "1× L4"),
    ("lora", "only-knowledge", P(("knowledge",)), P(("knowledge", "format")), '"knowledge"'),
    ("lora", "changing-facts", P(("knowledge",), changes="daily"), P(("knowledge",), changes="yearly"), '"daily"'),
    ("lora", "corpus-shift", P(("language",), unlabeled=2_000_000_000), P(("language",), unlabeled=50_000_000),
     "2B tokens"),
    ("lora", "judged-quality", P(("preference", "safety"), pairs=5000), P(("preference", "task"), pairs=5000),
     "5,000 preference pairs"),
    ("lora", "no-expertise", P(expertise="none"), P(expertise="basic"), '"none"'),
    ("full_finetune", "no-examples", P(), P(labeled=1), "you have none"),
    ("full_finetune", "plentiful-data", P(labeled=50_000), P(labeled=19_999), "50,000"),
    ("full_finetune", "some-data", P(labeled=5000), P(labeled=20_000), "5,000"),
    ("full_finetune", "little-data", P(labeled=300), P(labeled=2000), "300 examples"),
    ("full_finetune", "large-change", P(("language",)), P(("style",)), '"language"'),
    ("full_finetune", "many-gpus", P(gpus=8), P(gpus=2), "8× A100-80GB"),
    ("full_finetune", "single-device", P(gpus=1), P(gpus=2), "one A100-80GB"),
    ("full_finetune", "corpus-shift", P(("domain",), unlabeled=300_000_000), P(("task",), unlabeled=300_000_000),
     "300M tokens"),
    ("full_finetune", "only-knowledge", P(("knowledge",)), P(("task",)), '"knowledge"'),
    ("full_finetune", "changing-facts", P(("knowledge",), changes="hourly"), P(("knowledge",), changes="monthly"),
     '"hourly"'),
    ("full_finetune", "low-expertise", P(expertise="basic"), P(expertise="moderate"), '"basic"'),
    ("continual_pretraining", "no-corpus", P(unlabeled=5_000_000), P(unlabeled=10_000_000), "5M"),
    ("continual_pretraining", "billions", P(unlabeled=3_000_000_000), P(unlabeled=999_000_000), "3B tokens"),
    ("continual_pretraining", "hundreds-of-millions", P(unlabeled=400_000_000), P(unlabeled=1_000_000_000),
     "400M"),
    ("continual_pretraining", "small-corpus", P(unlabeled=20_000_000), P(unlabeled=100_000_000), "20M"),
    ("continual_pretraining", "fluency-goal", P(("domain", "task")), P(("task",)), '"domain"'),
    ("continual_pretraining", "no-fluency-goal", P(("style",)), P(("language",)), '"style"'),
    ("continual_pretraining", "short-calendar", P(days=10), P(days=60), "10 days"),
    ("continual_pretraining", "expertise", P(expertise="moderate"), P(expertise="advanced"), '"moderate"'),
    ("rlhf", "no-feedback", P(), P(raters=True), "you have no preference pairs"),
    ("rlhf", "preference-goal", P(("preference",)), P(("task",)), '"preference"'),
    ("rlhf", "many-pairs", P(pairs=20_000), P(pairs=4999), "20,000"),
    ("rlhf", "pairs-for-the-goal", P(("safety",), pairs=600), P(("safety",), pairs=499), "600 preference pairs"),
    ("rlhf", "some-pairs", P(pairs=800), P(pairs=5000), "800"),
    ("rlhf", "few-pairs", P(pairs=50), P(pairs=500), "only 50"),
    ("rlhf", "raters", P(raters=True), P(raters=False), "people to rate"),
    ("rlhf", "no-preference-goal", P(("format",)), P(("safety",)), '"format"'),
    ("rlhf", "no-sft-data", P(pairs=100), P(pairs=100, labeled=10), "chosen responses"),
    ("rlhf", "expertise", P(expertise="basic"), P(expertise="moderate"), '"basic"'),
    ("rlhf", "dpo-for-team", P(expertise="advanced"), P(expertise="expert"), '"advanced"'),
    ("rlhf", "short-calendar", P(days=30, pairs=100), P(days=30, pairs=3000), "30 days"),
    ("rag", "no-documents", P(("knowledge",)), P(("knowledge",), docs=3), "you have none"),
    ("rag", "knowledge-goal", P(("knowledge",)), P(("style",)), "billing support"),
    ("rag", "documents", P(docs=40), P(docs=0), "40 documents"),
    ("rag", "many-documents", P(docs=5000), P(docs=999), "5,000 documents"),
    ("rag", "changing-facts", P(changes="weekly"), P(changes="yearly"), '"weekly"'),
    ("rag", "live-facts", P(("knowledge",), changes="realtime"), P(("knowledge",), changes="daily"),
     "live source"),
    ("rag", "citations", P(citations=True), P(citations=False), "cite"),
    ("rag", "no-knowledge-goal", P(("style", "format")), P(("knowledge",)), '"style", "format"'),
    ("rag", "behaviour-goals-too", P(("knowledge", "format")), P(("knowledge",)), '"format"'),
    ("rag", "latency", P(latency=True), P(latency=False), "fast"),
    ("rag", "low-expertise", P(expertise="basic"), P(expertise="moderate"), '"basic"'),
    ("in_context", "prompt-goals", P(("format", "task")), P(("format", "language")), '"format", "task"'),
    ("in_context", "few-examples", P(labeled=20), P(labeled=51), "20 labeled examples"),
    ("in_context", "no-examples", P(("format",)), P(("format",), labeled=3), "by hand"),
    ("in_context", "many-examples", P(labeled=40_000), P(labeled=999), "40,000"),
    ("in_context", "deep-goals", P(("language",)), P(("task",)), '"language"'),
    ("in_context", "knowledge-collection", P(("knowledge",), docs=300), P(("knowledge",), docs=5), "300 documents"),
    ("in_context", "volume-and-latency", P(latency=True, qpd=50_000), P(latency=True, qpd=100), "50,000"),
    ("in_context", "low-expertise", P(expertise="none"), P(expertise="advanced"), '"none"'),
]

METHODS = ("lora", "full_finetune", "continual_pretraining", "rlhf", "rag", "in_context")


def advice(method: str) -> Any:
    return importlib.import_module(f"tunewise.methods.{method}.advice")


def test_every_rule_has_a_case() -> None:
    covered = {(m, r) for m, r, *_ in CASES}
    for method in METHODS:
        ids = [rule.id for rule in advice(method).RULES]
        assert len(ids) == len(set(ids)), f"{method}: duplicate rule ids"
        missing = [r for r in ids if (method, r) not in covered]
        assert not missing, f"{method}: rules without a test case: {missing}"


@pytest.mark.parametrize(("method", "rule_id", "yes", "no", "quoted"), CASES,
                         ids=[f"{m}:{r}" for m, r, *_ in CASES])
def test_rule(method: str, rule_id: str, yes: Profile, no: Profile, quoted: str) -> None:
    module = advice(method)
    rule = next(r for r in module.RULES if r.id == rule_id)
    assert rule.applies(yes) and not rule.applies(no)
    reason = rule.reason(yes)
    assert quoted in reason, reason
    fit = module.fit(yes)
    if rule.blocker:
        assert reason in fit.blockers and fit.score <= BLOCKED_SCORE_CAP
        assert reason not in module.fit(no).blockers
        return
    assert reason in fit.reasons
    without = evaluate(method, module.BASE_SCORE, [r for r in module.RULES if r.id != rule_id], yes)
    if not fit.blockers and 0 < without.score < 1:
        assert (fit.score - without.score) * rule.effect >= 0  # moves the score the way it says
        if 0 < without.score + rule.effect < 1 and 0 < fit.score < 1:
            assert fit.score != without.score


def test_scores_stay_in_range_and_fits_name_their_method() -> None:
    for method in METHODS:
        for *_, yes, no, _q in [(m, r, y, n, q) for m, r, y, n, q in CASES if m == method]:
            for profile in (yes, no):
                fit = advice(method).fit(profile)
                assert fit.method == method and 0 <= fit.score <= 1


def test_no_training_methods_win_when_they_suffice() -> None:
    knowledge = P(("knowledge",), docs=2000, changes="weekly", citations=True, labeled=0)
    scores = {m: advice(m).fit(knowledge).score for m in METHODS}
    assert max(scores, key=lambda m: scores[m]) == "rag"
    format_only = P(("format",), labeled=10, expertise="basic")
    scores = {m: advice(m).fit(format_only).score for m in METHODS}
    assert max(scores, key=lambda m: scores[m]) == "in_context"
