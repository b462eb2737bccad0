"""Preference data taken seriously (issue 17): RLHF/DPO first for judgement goals with pairs in hand, quoted as
the variant that fits; existing pairs count as collected feedback; ties broken by the stated rule."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from tunewise.advisor.answers import load_answers, parse_answers
from tunewise.advisor.hardware import find_hardware
from tunewise.advisor.ranking import TIE_RULE, order, rank
from tunewise.methods.rlhf import advice as rlhf
from tunewise.plugins import hookimpl, manager
from tunewise.plugins.manager import PluginHost
from tunewise.plugins.types import Fit, Quote

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "answers"


@pytest.fixture(autouse=True)
def builtin_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "_HOST", PluginHost(load_entry_points=False))


def team(*, pairs: int, labeled: int = 0, raters: bool = False, expertise: str = "moderate", gpu: str = "H100",
         gpus: int = 1, usd: float = 1000, days: float = 14, params_b: float = 8,
         goals: str = "[preference, safety]") -> str:
    return (f"goals: {goals}\ndata: {{preference_pairs: {pairs}, labeled_examples: {labeled}, "
            f"human_raters: {str(raters).lower()}}}\nmodel: {{params_b: {params_b}}}\n"
            f"hardware: {{gpu: {gpu}, gpus: {gpus}}}\nbudget: {{usd: {usd}, days: {days}}}\n"
            f"team_expertise: {expertise}\n")


def shown(score: float) -> str:
    return f"{score:.2f}"


# -- case (a): tens of thousands of pairs, raters, a safety/preference goal, a large budget ---------------------


@pytest.mark.parametrize(("expertise", "days", "labeled"),
                         [("expert", 30, 10_000), ("expert", 120, 0), ("advanced", 30, 10_000),
                          ("moderate", 45, 20_000)])
def test_large_preference_team_gets_rlhf_first_not_lora(expertise: str, days: float, labeled: int) -> None:
    ranking = rank(parse_answers(team(pairs=30_000, labeled=labeled, raters=True, expertise=expertise, gpus=8,
                                      usd=50_000, days=days)))
    top, lora = ranking.top, ranking.get("lora")
    assert top.method == "rlhf", [(r.method, r.score) for r in ranking.recommendations]
    assert shown(top.score) > shown(lora.score)  # won on score, not on a tie
    assert any("already collected" in r for r in top.reasons)
    assert not any("months" in r for r in top.reasons)  # the pairs exist: no collection to wait for
    assert top.quote is not None and top.quote.fits
    assert "already collected" in top.quote.human_time["data_prep"]
    loop = expertise == "expert"
    assert top.quote.assumptions["variant"] == rlhf.VARIANTS["rlhf" if loop else "dpo"].title
    assert bool(top.quote.stages) == loop  # the loop's stages, or one DPO run


def test_the_issue_case_a_no_longer_ties() -> None:
    """The profile that tied at 0.75 (RLHF lost to LoRA on the method id) now separates by the rules."""
    ranking = rank(parse_answers(team(pairs=30_000, labeled=10_000, raters=True, expertise="expert", gpus=8,
                                      usd=20_000, days=30)))
    assert [r.method for r in ranking.recommendations][:2] == ["rlhf", "lora"]
    assert not any("tied at" in r for r in ranking.top.reasons)


# -- case (b): a few thousand pairs and one 80 GB GPU ------------------------------------------------------------


def test_example_few_thousand_pairs_one_80gb_gpu() -> None:
    ranking = rank(load_answers(EXAMPLES / "preference-one-gpu.yaml"))
    top = ranking.top
    assert top.method == "rlhf" and top.score >= 0.5 and not top.blockers, [
        (r.method, r.score) for r in ranking.recommendations]
    quote = top.quote
    assert quote is not None and quote.fits and quote.peak_memory_gb <= 80
    assert quote.assumptions["variant"] == rlhf.VARIANTS["dpo_lora"].title
    assert quote.assumptions["plan_config"] == "algorithm: dpo, lora: true"
    assert "151" in quote.assumptions["variant_why"] or "more than fits" in quote.assumptions["variant_why"]
    full_dpo = quote.alternatives["dpo"]
    assert not full_dpo["fits"] and full_dpo["peak_memory_gb"] > 80  # why LoRA: full DPO of 8B needs > 80 GB
    assert not any("QLoRA" in f for f in quote.fixes)  # the method cannot train on a 4-bit base
    assert ("lora", "rlhf") in [c.methods for c in ranking.combine]
    assert not any("months" in r for r in top.reasons) and "already collected" in quote.human_time["data_prep"]


@pytest.mark.parametrize("pairs", [800, 3000, 4999])
def test_a_few_thousand_pairs_rank_dpo_first(pairs: int) -> None:
    ranking = rank(parse_answers(team(pairs=pairs, labeled=2000, gpu="A100-80GB", usd=2000, days=21)))
    assert ranking.top.method == "rlhf" and shown(ranking.top.score) > shown(ranking.get("lora").score)
    assert ranking.top.quote is not None and ranking.top.quote.fits


def test_pairs_that_must_still_be_collected_keep_the_calendar_rule() -> None:
    few = rlhf.fit(parse_answers(team(pairs=100, raters=True, days=14)))
    assert any("takes weeks to months" in r and "14 days" in r for r in few.reasons)
    many = rlhf.fit(parse_answers(team(pairs=3000, days=14)))
    assert not any("months" in r for r in many.reasons)


# -- the variant quoted -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "variant"), [
    (team(pairs=3000, gpu="A100-80GB", params_b=1), "dpo"),  # full DPO of 1B fits: every weight trained
    (team(pairs=3000, gpu="A100-80GB"), "dpo_lora"),  # 8B full DPO needs > 80 GB
    (team(pairs=30_000, raters=True, expertise="expert", gpus=8), "rlhf"),
    (team(pairs=30_000, raters=True, expertise="expert", gpu="A100-80GB"), "rlhf_lora"),
    (team(pairs=30_000, raters=True, expertise="advanced", gpus=8), "dpo"),  # no expert team: no loop
])
def test_variant_is_the_first_that_fits(answers: str, variant: str) -> None:
    profile = parse_answers(answers)
    hardware = find_hardware(profile.hardware.gpu)
    quotes, _, _ = rlhf.variant_quotes(profile, hardware)
    chosen, why = rlhf.choose_variant(profile, quotes)
    assert chosen == variant, (why, {k: (q.fits, q.peak_memory_gb) for k, q in quotes.items()})
    preferred = rlhf.variant_order(profile)
    assert all(not quotes[v].fits for v in preferred[:preferred.index(chosen)])  # earlier ones do not fit
    quote = rlhf.estimate(profile, hardware)
    assert quote.fits and quote.gpu_hours == pytest.approx(quotes[chosen].gpu_hours)
    assert quote.peak_memory_gb == pytest.approx(quotes[chosen].peak_memory_gb)
    assert set(quote.alternatives) == set(rlhf.VARIANTS) - {chosen}


def test_nothing_fits_quotes_the_smallest_and_says_so() -> None:
    profile = parse_answers(team(pairs=3000, gpu="L4", params_b=70))
    quote = rlhf.estimate(profile, find_hardware("L4"))
    assert not quote.fits and quote.assumptions["variant"] == rlhf.VARIANTS["dpo_lora"].title
    assert quote.assumptions["variant_why"].startswith("no variant fits")
    ranking = rank(profile)
    assert any("more than the 24 GB" in r for r in ranking.get("rlhf").reasons)  # the cost rule says it


def test_lora_variants_are_cheaper_and_smaller() -> None:
    profile = parse_answers(team(pairs=3000, gpu="A100-80GB"))
    quotes, stages, _ = rlhf.variant_quotes(profile, find_hardware("A100-80GB"))
    assert quotes["dpo_lora"].peak_memory_gb < quotes["dpo"].peak_memory_gb
    assert quotes["dpo_lora"].flops < quotes["dpo"].flops  # no weight gradients: ≈6·N instead of 8·N per token
    assert quotes["rlhf_lora"].peak_memory_gb < quotes["rlhf"].peak_memory_gb
    assert set(stages["rlhf"]) == {"sft", "reward_model", "grpo"}


@pytest.mark.parametrize("name", sorted(rlhf.VARIANTS))
def test_variant_settings_are_real_rlhf_config(name: str) -> None:
    """What the quote tells a plan to set is accepted by the method's own config class."""
    from tunewise.methods.rlhf.config import ALGORITHMS, RlhfConfig

    settings = yaml.safe_load("{" + rlhf.VARIANTS[name].config + "}")
    config = RlhfConfig(**settings)
    assert config.algorithm in ALGORITHMS and config.lora is rlhf.VARIANTS[name].lora
    assert (config.algorithm != "dpo") is rlhf.VARIANTS[name].loop


# -- ties ---------------------------------------------------------------------------------------------------------


def test_order_breaks_ties_by_the_stated_rule_whatever_the_input_order() -> None:
    trains = {"a": True, "b": True, "c": True, "d": True, "rag": False}
    fits = [Fit("a", 0.6), Fit("b", 0.6), Fit("c", 0.6), Fit("d", 0.6), Fit("rag", 0.6)]
    own = {"a": 0.5, "b": 0.7, "c": 0.5, "d": 0.5, "rag": 0.4}
    cost = {"a": 30.0, "b": 99.0, "c": 10.0, "d": 10.0, "rag": 1.0}
    expected = ["rag", "b", "c", "d", "a"]  # no training; own score; cheaper; id
    for perm in itertools.permutations(fits):
        assert [f.method for f in order(list(perm), trains, own=own, cost=cost)] == expected
    # Scores equal as shown (0.601 and 0.604 both read 0.60) are a tie too: the rule decides, not 0.003.
    close = [Fit("x", 0.604), Fit("y", 0.601)]
    assert [f.method for f in order(close, {"x": True, "y": True}, own={"x": 0.5, "y": 0.6})] == ["y", "x"]


class Tied:
    title: ClassVar[str] = "Tied"
    summary: ClassVar[str] = "A method that scores exactly like its twin."
    config_class: ClassVar[Any] = None
    id: ClassVar[str] = "tied"
    usd: ClassVar[float] = 0.0

    def fit(self, profile: Any) -> Fit:
        return Fit(self.id, 0.55, ("equal by construction",))

    def estimate(self, profile: Any, hardware: Any) -> Quote:
        return Quote(self.id, 1e15, 0.01, 0.01, self.usd / 2, self.usd, 5.0, True)

    def run(self, plan: Any, events: Any) -> Any:
        raise NotImplementedError


class Alpha(Tied):
    id: ClassVar[str] = "alpha_tuning"
    title: ClassVar[str] = "Alpha tuning"
    usd: ClassVar[float] = 40.0


class Zeta(Tied):
    id: ClassVar[str] = "zeta_tuning"
    title: ClassVar[str] = "Zeta tuning"
    usd: ClassVar[float] = 20.0


class Twins:
    @hookimpl
    def tunewise_register_methods(self, register: Any) -> None:
        register(Alpha)
        register(Zeta)


def test_rank_states_the_tie_rule_and_which_part_decided(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "_HOST", PluginHost(load_entry_points=False, extra_plugins=(("twins", Twins()),)))
    ranking = rank(parse_answers("goals: [task]\nbudget: {usd: 100}\n"))
    methods = [r.method for r in ranking.recommendations]
    assert ranking.get("zeta_tuning").score == ranking.get("alpha_tuning").score
    assert methods.index("zeta_tuning") == methods.index("alpha_tuning") - 1  # cheaper first, not alphabetical
    above = " ".join(ranking.get("zeta_tuning").reasons)
    below = " ".join(ranking.get("alpha_tuning").reasons)
    assert "tied at 0.60 with Alpha tuning, ranked above it: Zeta tuning costs less (up to $20.00 vs $40.00)" in above
    assert "tied at 0.60 with Zeta tuning, ranked below it" in below
    assert ranking.assumptions["ties"] == TIE_RULE and ranking.to_dict()["assumptions"]["ties"] == TIE_RULE
    again = rank(parse_answers("goals: [task]\nbudget: {usd: 100}\n"))
    assert [r.method for r in again.recommendations] == methods  # deterministic
