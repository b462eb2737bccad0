"""tunewise.plugins.bakeoff: paired statistics on fixed inputs, verdict sentences and likely reasons."""

from __future__ import annotations

import json
import math
import random

import pytest
from tunewise.plugins.bakeoff import (
    OTHER,
    BakeOffError,
    RunFacts,
    bake_off,
    classification_bake_off,
    likely_reasons,
    merge_metrics,
    sign_test,
)


def ids(n: int) -> list[str]:
    return [f"held-out.jsonl:{i + 1}" for i in range(n)]


def scores(values: list[float]) -> dict[str, float]:
    return dict(zip(ids(len(values)), values, strict=True))


# -- statistics ---------------------------------------------------------------------------------


def test_all_wins_give_a_degenerate_interval_at_the_full_gain() -> None:
    b = bake_off(scores([0.0] * 10), scores([1.0] * 10), "accuracy", method="LoRA", unit="held-out messages")
    assert (b.wins, b.ties, b.losses) == (10, 0, 0)
    assert (b.before, b.after, b.difference, b.interval) == (0.0, 1.0, 1.0, (1.0, 1.0))
    assert b.sign_test_p == pytest.approx(2 / 2 ** 10)
    assert b.significant and b.verdict == "better"
    assert b.sentence == ("LoRA beats the base on 10 of 10 held-out messages: accuracy 0.00 → 1.00, "
                          "+1.00 [1.00, 1.00]")


def test_all_ties_give_the_interval_zero_zero_and_no_gain() -> None:
    values = [0.2, 0.9, 0.5, 0.0, 1.0, 0.33]
    b = bake_off(scores(values), scores(values), "rouge_l", method="LoRA")
    assert (b.wins, b.ties, b.losses) == (0, 6, 0)
    assert b.interval == (0.0, 0.0) and b.difference == 0.0
    assert not b.significant and b.verdict == "not_better"
    assert b.sentence.endswith("the interval includes 0 (0 won, 6 tied, 0 lost)")
    assert b.sentence.startswith("LoRA is not better than the base on 6 held-out examples: ROUGE-L 0.49 → 0.49, +0.00 [0.00, 0.00]")


def test_a_mixed_accuracy_result_matches_the_normal_approximation() -> None:
    # The issue's example: 52 of 60 right after tuning, 3 of 60 before (each of those 3 also right after).
    base = [1.0] * 3 + [0.0] * 57
    result = [1.0] * 52 + [0.0] * 8
    b = bake_off(scores(base), scores(result), "accuracy", method="LoRA", unit="held-out messages")
    assert (b.wins, b.ties, b.losses) == (49, 11, 0)
    assert b.before == pytest.approx(0.05) and b.after == pytest.approx(52 / 60)
    diffs = [r - x for x, r in zip(base, result, strict=True)]
    mean = sum(diffs) / 60
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 60 / 60)
    assert b.interval[0] == pytest.approx(mean - 1.96 * se, abs=0.03)
    assert b.interval[1] == pytest.approx(mean + 1.96 * se, abs=0.03)
    assert b.sentence.startswith("LoRA beats the base on 49 of 60 held-out messages: accuracy 0.05 → 0.87, +0.82 [")


def test_losses_on_every_example_are_worse() -> None:
    b = bake_off(scores([1.0] * 12), scores([0.0] * 12), "exact_match", method="full fine-tuning")
    assert b.verdict == "worse" and b.significant and b.interval == (-1.0, -1.0)
    assert b.sentence == ("Full fine-tuning is worse than the base on 12 held-out examples: exact match 1.00 → "
                          "0.00, -1.00 [-1.00, -1.00]; it lost on 12 and won on 0")


def test_perplexity_is_better_when_lower_and_weighted_by_tokens() -> None:
    # Per-example scores are mean token losses; perplexity is exp of the token-weighted mean loss.
    b = bake_off({"a": 1.0, "b": 3.0}, {"a": 1.0, "b": 1.0}, "perplexity", weights={"a": 1, "b": 3})
    assert b.before == pytest.approx(math.exp(2.5)) and b.after == pytest.approx(math.e)
    assert (b.wins, b.ties, b.losses) == (1, 1, 0) and not b.higher_is_better
    base = [2.5 + 0.01 * i for i in range(20)]
    tuned = [x - 0.4 for x in base]
    better = bake_off(scores(base), scores(tuned), "perplexity", method="CPT", unit="held-out documents")
    assert better.verdict == "better" and better.interval[1] < 0 and better.difference < 0
    assert better.sentence.startswith("CPT beats the base on 20 of 20 held-out documents: perplexity 13.4 → 8.98, -4.42 [")
    worse = bake_off(scores(tuned), scores(base), "perplexity")
    assert worse.verdict == "worse" and worse.interval[0] > 0


def test_win_rate_counts_ties_half_against_the_bases_one_half() -> None:
    base = [0.0] * 40
    tuned = [1.0] * 30 + [0.0] * 4 + [-1.0] * 6
    b = bake_off(scores(base), scores(tuned), "win_rate", method="DPO", unit="held-out prompts")
    assert (b.wins, b.ties, b.losses) == (30, 4, 6)
    assert b.before == 0.5 and b.after == pytest.approx(32 / 40) and b.difference == pytest.approx(0.3)
    assert b.verdict == "better" and b.interval[0] > 0
    assert b.sentence.startswith("DPO beats the base on 30 of 40 held-out prompts: win rate 0.50 → 0.80, +0.30 [")


def test_the_bootstrap_is_seeded_and_independent_of_example_order() -> None:
    rng = random.Random(7)
    base = {k: rng.random() for k in ids(80)}
    result = {k: min(1.0, v + rng.gauss(0.05, 0.2)) for k, v in base.items()}
    first = bake_off(base, result, "rouge_l", seed=3)
    shuffled = dict(reversed(list(base.items())))
    assert bake_off(shuffled, result, "rouge_l", seed=3).interval == first.interval
    assert bake_off(base, result, "rouge_l", seed=4).interval != first.interval


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = random.Random(11)
    covered = 0
    trials = 60
    for trial in range(trials):
        base = [rng.random() for _ in range(80)]
        result = [x + 0.1 + rng.gauss(0, 0.3) for x in base]  # true mean difference: 0.1
        b = bake_off(scores(base), scores(result), "rouge_l", resamples=400, seed=trial)
        covered += b.interval[0] <= 0.1 <= b.interval[1]
    assert covered / trials >= 0.85


def test_few_examples_are_not_enough_even_when_all_win() -> None:
    b = bake_off(scores([0.0] * 3), scores([1.0] * 3), "accuracy")
    assert b.interval == (1.0, 1.0) and b.sign_test_p == pytest.approx(0.25)
    assert not b.significant and b.verdict == "not_better"
    assert "too few examples changed to be sure: 3 improved, 0 got worse (sign test p = 0.25)" in b.sentence


def test_an_average_gain_carried_by_few_examples_is_not_called_better() -> None:
    base = [0.5] * 50
    result = [1.0] * 10 + [0.49] * 40
    b = bake_off(scores(base), scores(result), "rouge_l")
    assert b.interval[0] > 0 and b.verdict == "not_better"
    assert "the average improved, but 40 examples got worse and only 10 improved" in b.sentence


def test_sign_test_exact_values() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(6, 0) == pytest.approx(2 / 64)
    assert sign_test(3, 3) == 1.0
    assert sign_test(1, 9) == pytest.approx(2 * 11 / 1024)


def test_a_thousand_examples_with_the_default_resamples() -> None:
    rng = random.Random(0)
    base = {k: rng.random() for k in ids(1000)}
    result = {k: v + rng.gauss(0.02, 0.1) for k, v in base.items()}
    b = bake_off(base, result, "rouge_l")
    assert b.resamples == 2000 and b.interval[0] < b.difference < b.interval[1]


# -- bad input -----------------------------------------------------------------------------------


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(BakeOffError, match="no held-out examples to compare on accuracy"):
        bake_off({}, {}, "accuracy")
    with pytest.raises(BakeOffError, match=r"example ids differ: 1 only in the base scores \(x\); "
                                           r"1 only in the result scores \(y\)"):
        bake_off({"a": 1.0, "x": 0.0}, {"a": 1.0, "y": 0.0}, "accuracy")
    with pytest.raises(BakeOffError, match="result score of example 'a' is nan, not a finite number"):
        bake_off({"a": 1.0}, {"a": float("nan")}, "accuracy")
    with pytest.raises(BakeOffError, match="unknown metric 'bleu': say whether higher is better"):
        bake_off({"a": 1.0}, {"a": 1.0}, "bleu")
    with pytest.raises(BakeOffError, match="perplexity: lower is better"):
        bake_off({"a": 1.0}, {"a": 1.0}, "perplexity", higher_is_better=True)
    with pytest.raises(BakeOffError, match="weights apply to perplexity only"):
        bake_off({"a": 1.0}, {"a": 1.0}, "accuracy", weights={"a": 1.0})
    assert bake_off({"a": 0.1}, {"a": 0.3}, "bleu", higher_is_better=True).metric_name == "bleu"


# -- classification -------------------------------------------------------------------------------


def test_classification_counts_labels_and_confusions() -> None:
    golds = scores(["billing", "billing", "refund", "refund", "account", "billing"])
    base = scores(["I think billing", "refund", "refund", "Refund", "billing", "hello"])
    result = scores(["Billing.", "refund", "refund", "refund.", "account", "The answer is billing"])
    b = classification_bake_off(golds, base, result, ["billing", "refund", "account"], method="LoRA")
    assert b.metric == "accuracy" and b.before == pytest.approx(2 / 6) and b.after == pytest.approx(4 / 6)
    assert b.classification is not None
    counts = {c.label: (c.examples, c.base_correct, c.result_correct) for c in b.classification.labels}
    assert counts == {"billing": (3, 0, 1), "refund": (2, 2, 2), "account": (1, 0, 1)}
    confusions = [(c.gold, c.predicted, c.count) for c in b.classification.confusions]
    assert confusions == [("billing", OTHER, 1), ("billing", "refund", 1)]
    assert b.classification.confusions[0].example == "The answer is billing"
    base_pairs = {(c.gold, c.predicted): c.count for c in b.classification.base_confusions}
    assert base_pairs == {("billing", OTHER): 2, ("billing", "refund"): 1, ("account", "billing"): 1}


def test_to_dict_and_merge_metrics_are_json_ready_and_keep_before_after() -> None:
    golds = scores(["yes", "no"] * 10)
    b = classification_bake_off(golds, scores(["no", "no"] * 10), dict(golds), ["yes", "no"], method="LoRA")
    data = json.loads(json.dumps(b.to_dict()))
    assert data["before"] == {"accuracy": 0.5} and data["after"] == {"accuracy": 1.0}
    low, high = data["interval_95"]
    assert [low, high] == list(b.interval) and 0 < low < 0.5 < high < 1  # 10 wins, 10 ties: +0.5 ± ~0.22
    assert data["labels"][0]["label"] in ("yes", "no") and data["confusions"] == []
    merged = merge_metrics({"before": {"loss": 2.0}, "after": {"loss": 1.0}, "steps": 5}, b)
    assert merged["before"] == {"loss": 2.0, "accuracy": 0.5} and merged["after"] == {"loss": 1.0, "accuracy": 1.0}
    assert merged["main_metric"] == "accuracy" and merged["interval_95"] == list(b.interval)
    assert merged["steps"] == 5 and merged["bakeoff"]["verdict"] == "better"
    json.dumps(merged)


# -- reasons ---------------------------------------------------------------------------------------


NOT_BETTER = (scores([0.0] * 40), scores([0.0] * 40))


def test_the_issues_failing_run_gets_a_reason_and_a_setting() -> None:
    # 5 steps over 120 rows, held-out loss still falling, answers identical to the base's.
    facts = RunFacts(steps=5, train_examples=120, examples_per_step=24, eval_losses=(2.1, 1.6),
                     unchanged_answers=1.0, model_params=135_000_000)
    b = bake_off(*NOT_BETTER, "accuracy", method="LoRA", unit="held-out messages", facts=facts)
    assert [r.code for r in b.reasons] == ["loss_still_falling", "answers_unchanged", "model_small"]
    assert b.reasons[0].setting == "training.epochs"
    assert b.sentence.startswith("LoRA is not better than the base on 40 held-out messages: accuracy 0.00 → 0.00")
    assert b.sentence.endswith("Most likely held-out loss was still falling when training stopped (2.1 → 1.6 "
                               "at the last evaluation); train longer: raise training.epochs (or "
                               "training.max_steps); early stopping keeps the best checkpoint.")


def test_too_few_steps_comes_before_everything_but_the_budget() -> None:
    facts = RunFacts(steps=5, train_examples=120, examples_per_step=2, eval_losses=(2.1, 1.6))
    reasons = likely_reasons(facts)
    assert [r.code for r in reasons] == ["too_few_steps", "loss_still_falling"]
    assert reasons[0].setting == "training.max_steps" and "at least 60" in reasons[0].change
    stopped = likely_reasons(RunFacts(steps=5, train_examples=120, examples_per_step=2, stopped_by_budget=True))
    assert stopped[0].code == "budget_stop" and stopped[0].setting == "training.max_hours"


@pytest.mark.parametrize(("facts", "code", "setting"), [
    (RunFacts(learning_rate=1e-6, lr_range=(1e-4, 1e-3)), "lr_low", "training.learning_rate"),
    (RunFacts(learning_rate=0.5, lr_range=(1e-4, 1e-3)), "lr_high", "training.learning_rate"),
    (RunFacts(eval_losses=(1.2, 1.0, 1.3)), "overfit", "training.epochs"),
    (RunFacts(kl=0.002), "policy_unmoved", "training.learning_rate"),
    (RunFacts(truncated_fraction=0.4), "truncated", "training.seq_len"),
    (RunFacts(retrieval_used=True, retrieval_recall=0.2), "retrieval_misses", "config.k"),
    (RunFacts(retrieval_used=True, citation_rate=0.0, model_params=135_000_000), "generator_too_small", "model"),
    (RunFacts(retrieval_used=True, citation_rate=0.1, model_params=7_000_000_000), "no_citations", "model"),
])
def test_each_rule_names_its_setting(facts: RunFacts, code: str, setting: str) -> None:
    reasons = likely_reasons(facts)
    assert reasons[0].code == code and reasons[0].setting == setting
    assert reasons[0].reason and reasons[0].change


def test_healthy_runs_have_no_reasons_and_better_results_get_none() -> None:
    healthy = RunFacts(steps=300, train_examples=120, examples_per_step=2, eval_losses=(2.0, 1.5, 1.49),
                       learning_rate=2e-4, lr_range=(1e-4, 1e-3), model_params=7_000_000_000,
                       unchanged_answers=0.1, truncated_fraction=0.0, kl=0.5)
    assert likely_reasons(healthy) == []
    facts = RunFacts(steps=1, train_examples=120, examples_per_step=2)
    assert bake_off(scores([0.0] * 20), scores([1.0] * 20), "accuracy", facts=facts).reasons == ()


def test_a_small_held_out_split_is_blamed_when_the_gain_points_the_right_way() -> None:
    facts = RunFacts(steps=300, train_examples=120, examples_per_step=2)
    b = bake_off(scores([0.0] * 8), scores([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]), "accuracy", facts=facts)
    assert b.verdict == "not_better" and b.reasons[0].code == "few_eval_examples"
    assert b.reasons[0].setting == "training.eval_fraction"
    flat = bake_off(scores([0.0] * 8), scores([0.0] * 8), "accuracy", facts=facts)
    assert [r.code for r in flat.reasons] == []
