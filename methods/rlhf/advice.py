"""RLHF advice: learn from human preferences when quality is easier to judge than to write down.

The full pipeline has three stages: supervised fine-tuning (SFT) on demonstrations, a reward model
trained on preference pairs, and reinforcement learning against it (GRPO/RLOO here: several sampled
answers per prompt, no value model). DPO optimises the policy on the pairs directly, with no reward
model and no sampling loop: cheaper and usually the first thing to try.

The quote is for the variant a plan should use (:func:`choose_variant`): the full loop for an expert
team with raters, DPO otherwise; every weight trained when that fits the user's devices, LoRA
adapters when it does not (the method trains both ways: ``config.lora``, ``config.algorithm``). The
other variants are quoted under alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tunewise.methods._advice import (
    NOMINAL_PAIRS,
    Rule,
    count,
    evaluate,
    expertise_at_least,
    finetune_tokens,
    has_goal,
    said_goals,
    setup_for,
    shape_of,
    tokens_per_example,
)
from tunewise.plugins.costs import (
    GB,
    HUMAN_TIME,
    ROLLOUT_BATCH,
    ModelShape,
    TrainKind,
    TrainSetup,
    decode_seconds,
    flops_per_token,
    kv_cache_bytes,
    stage_summary,
    training_quote,
    usd,
)
from tunewise.plugins.types import Fit, Hardware, Profile, Quote

METHOD = "rlhf"
BASE_SCORE = 0.1
PREFERENCE_GOALS = ("preference", "safety", "style")
JUDGEMENT_GOALS = ("preference", "safety")
"""Goals that are a judgement of two answers, which preference pairs record directly."""
PAIRS_FOR_DPO = 500
"""Preference pairs from which DPO is worth a run (project heuristic: below it, collect more first)."""
MANY_PAIRS = 5_000
SAMPLES_PER_PROMPT = 8
"""GRPO group size (TRL's ``num_generations`` default)."""
COMPLETION_TOKENS = 256
RL_EPOCHS = 1


def wants_loop(profile: Profile) -> bool:
    """The full RLHF loop pays off with raters adding feedback over time and a team that runs RL."""
    return profile.data.human_raters and expertise_at_least(profile, "expert")


RULES: tuple[Rule, ...] = (
    Rule("no-feedback", lambda p: p.data.preference_pairs == 0 and not p.data.human_raters, 0.0,
         lambda p: "RLHF needs preference data or raters: you have no preference pairs and no people to rate "
                   "outputs", blocker=True),
    Rule("preference-goal", lambda p: has_goal(p, *PREFERENCE_GOALS), 0.3,
         lambda p: f"your goals ({said_goals(p, *PREFERENCE_GOALS)}) are easier to judge than to write as "
                   "examples: learning from people's preferences targets exactly that"),
    Rule("pairs-for-the-goal",
         lambda p: has_goal(p, *JUDGEMENT_GOALS) and p.data.preference_pairs >= PAIRS_FOR_DPO, 0.2,
         lambda p: f"your goal ({said_goals(p, *JUDGEMENT_GOALS)}) is a judgement and your "
                   f"{count(p.data.preference_pairs)} preference pairs record that judgement, already collected: "
                   "training on them can start now"),
    Rule("many-pairs", lambda p: p.data.preference_pairs >= MANY_PAIRS, 0.25,
         lambda p: f"you have {count(p.data.preference_pairs)} preference pairs: enough for a reward model or DPO"),
    Rule("some-pairs", lambda p: PAIRS_FOR_DPO <= p.data.preference_pairs < MANY_PAIRS, 0.15,
         lambda p: f"{count(p.data.preference_pairs)} preference pairs are enough for DPO, which learns from "
                   "the pairs directly (no reward model to train first)"),
    Rule("few-pairs", lambda p: 0 < p.data.preference_pairs < PAIRS_FOR_DPO, -0.05,
         lambda p: f"only {count(p.data.preference_pairs)} preference pairs: collect more before training on them"),
    Rule("raters", lambda p: p.data.human_raters, 0.15,
         lambda p: "you have people to rate outputs over time: new pairs keep coming, the loop full RLHF runs on"),
    Rule("no-preference-goal", lambda p: not has_goal(p, *PREFERENCE_GOALS), -0.2,
         lambda p: f"your goals ({said_goals(p)}) can be taught with examples; preferences add most for "
                   "helpfulness, tone and safety"),
    Rule("no-sft-data", lambda p: p.data.labeled_examples == 0 and p.data.preference_pairs > 0, -0.05,
         lambda p: "no labeled examples for the SFT stage: the chosen responses have to serve as demonstrations"),
    Rule("expertise", lambda p: not expertise_at_least(p, "moderate"), -0.2,
         lambda p: f'preference training, even DPO, needs fine-tuning experience; your team\'s expertise: '
                   f'"{p.team_expertise}"'),
    Rule("dpo-for-team", lambda p: expertise_at_least(p, "moderate") and not expertise_at_least(p, "expert"), -0.05,
         lambda p: f'the full loop (reward model + reinforcement learning) needs expert RL skills; your team '
                   f'("{p.team_expertise}") starts with DPO, one fine-tuning-like run: quoted that way'),
    Rule("short-calendar", lambda p: p.data.preference_pairs < PAIRS_FOR_DPO and p.budget.days < 60, -0.1,
         lambda p: f"you have {count(p.data.preference_pairs)} preference pairs: collecting the "
                   f"{PAIRS_FOR_DPO:,}+ DPO needs takes weeks to months of rating; you have {p.budget.days:g} days"),
)


def fit(profile: Profile) -> Fit:
    return evaluate(METHOD, BASE_SCORE, RULES, profile)


@dataclass(frozen=True)
class Variant:
    """One way the method can train: what it is called, its plan settings, whether it is the full loop."""

    title: str
    config: str
    """The plan's ``config:`` settings that select it."""
    loop: bool
    lora: bool


VARIANTS: dict[str, Variant] = {
    "rlhf": Variant("full RLHF, every weight trained", "algorithm: grpo", True, False),
    "rlhf_lora": Variant("full RLHF with LoRA adapters", "algorithm: grpo, lora: true, reward_lora: true", True, True),
    "dpo": Variant("DPO, every weight trained", "algorithm: dpo", False, False),
    "dpo_lora": Variant("DPO with LoRA adapters", "algorithm: dpo, lora: true", False, True),
}


def variant_order(profile: Profile) -> tuple[str, ...]:
    """Variants in the order a plan should prefer them: the loop first only for an expert team with raters;
    every weight trained before adapters (LoRA only when full training does not fit)."""
    return ("rlhf", "rlhf_lora", "dpo", "dpo_lora") if wants_loop(profile) else ("dpo", "dpo_lora")


def choose_variant(profile: Profile, quotes: dict[str, Quote]) -> tuple[str, str]:
    """(variant, why): the first of :func:`variant_order` that fits, else the one needing least memory."""
    order = variant_order(profile)
    chosen = next((v for v in order if quotes[v].fits), None)
    if chosen is None:
        chosen = min(order, key=lambda v: quotes[v].peak_memory_gb)
        return chosen, (f"no variant fits; {VARIANTS[chosen].title} needs the least memory "
                        f"({quotes[chosen].peak_memory_gb:.1f} GB per device)")
    skipped = [v for v in order[:order.index(chosen)]]
    why = "the full loop: your raters keep adding pairs and your team runs RL" if VARIANTS[chosen].loop else (
        "DPO: no reward model or sampling loop" + ("" if wants_loop(profile) else
                                                   " (the full loop pays off with raters and an expert team)"))
    if skipped:
        worst = max(skipped, key=lambda v: quotes[v].peak_memory_gb)
        why += (f"; {', '.join(VARIANTS[v].title for v in skipped)} would need up to "
                f"{quotes[worst].peak_memory_gb:.1f} GB per device, more than fits")
    return chosen, why


def preference_tokens(profile: Profile) -> tuple[float, float, dict[str, str]]:
    """(tokens of chosen + rejected sequences, prompts, notes)."""
    if profile.training_tokens:
        tokens = float(profile.training_tokens)
        per = tokens_per_example(profile)
        return tokens, tokens / (2 * per), {"tokens_from": "given (--tokens): preference tokens (chosen + rejected)"}
    pairs = profile.data.preference_pairs or NOMINAL_PAIRS
    per = tokens_per_example(profile)
    notes = {"tokens_from": f"{count(pairs)} preference pairs × 2 responses × {per:.0f} tokens"}
    if not profile.data.preference_pairs:
        notes["nominal_data"] = f"no preference pairs given: quoted for {count(NOMINAL_PAIRS)}"
    return pairs * 2 * per, float(pairs), notes


def _train(shape: ModelShape, tokens: float, hardware: Hardware, setup: TrainSetup, kind: TrainKind, *,
           extra_flops_per_token: float = 0.0, extra_frozen_params: float = 0.0) -> Quote:
    """One stage, with activation recompute turned on only when needed to fit, and never a 4-bit base
    (the method does not train on one)."""
    quote = training_quote(METHOD, shape, tokens, hardware, setup, kind=kind, auto_fit=False,
                           extra_flops_per_token=extra_flops_per_token, extra_frozen_params=extra_frozen_params)
    if not quote.fits and not setup.recompute:
        again = training_quote(METHOD, shape, tokens, hardware, replace(setup, recompute=True), kind=kind,
                               auto_fit=False, extra_flops_per_token=extra_flops_per_token,
                               extra_frozen_params=extra_frozen_params)
        quote = replace(again, assumptions={**again.assumptions, "recompute_note": "turned on: needed to fit in memory"})
    return replace(quote, fixes=tuple(f for f in quote.fixes if "QLoRA" not in f))


def _grpo_quote(shape: ModelShape, prompts: float, prompt_tokens: float, hardware: Hardware,
                profile: Profile, lora: bool = False) -> Quote:
    """Rollouts (memory-bound generation) + policy update with reference and reward scoring.

    With LoRA the reference is the base with adapters off (no second copy); the reward model is a
    separate frozen model of the same size either way.
    """
    samples = prompts * SAMPLES_PER_PROMPT * RL_EPOCHS
    generated = samples * COMPLETION_TOKENS
    processed = samples * (prompt_tokens + COMPLETION_TOKENS)
    seq = int(prompt_tokens + COMPLETION_TOKENS)
    setup = replace(setup_for(profile), seq_len=seq, micro_batch=SAMPLES_PER_PROMPT)
    scoring = 2 * flops_per_token(shape, seq, "forward")  # reference + reward model (same size)
    update = _train(shape, processed, hardware, setup, "lora" if lora else "full", extra_flops_per_token=scoring,
                    extra_frozen_params=(1 if lora else 2) * shape.params)
    gpus = max(1, profile.hardware.gpus)
    gen_s = decode_seconds(shape, hardware, generated, ROLLOUT_BATCH) / gpus
    gen_flops = 2 * shape.params * generated
    wall_h = update.wall_hours + gen_s / 3600
    gpu_h = wall_h * gpus
    low, high = usd(gpu_h, hardware)
    kv = kv_cache_bytes(shape, seq, ROLLOUT_BATCH) / GB
    breakdown = {**update.memory_breakdown_gb, "kv_cache": round(kv, 3)}
    peak = sum(breakdown.values())
    return replace(update, flops=update.flops + gen_flops, gpu_hours=gpu_h, wall_hours=wall_h, usd_low=low,
                   usd_high=high, memory_breakdown_gb=breakdown, peak_memory_gb=round(peak, 3),
                   fits=peak <= hardware.memory_gb,
                   assumptions={**update.assumptions, "samples_per_prompt": SAMPLES_PER_PROMPT,
                                "completion_tokens": COMPLETION_TOKENS, "rollout_batch": ROLLOUT_BATCH,
                                "generation_hours": gen_s / 3600,
                                "generation": "memory-bound decoding: each step reads all weights once"})


def _pipeline(stages: dict[str, Quote]) -> Quote:
    """The stages of the full loop summed; memory is the largest stage's (they run one after another)."""
    peak_stage = max(stages.values(), key=lambda q: q.peak_memory_gb)
    first = next(iter(stages.values()))
    return replace(
        first,
        flops=sum(q.flops for q in stages.values()),
        gpu_hours=sum(q.gpu_hours for q in stages.values()), wall_hours=sum(q.wall_hours for q in stages.values()),
        usd_low=sum(q.usd_low for q in stages.values()), usd_high=sum(q.usd_high for q in stages.values()),
        peak_memory_gb=peak_stage.peak_memory_gb, fits=all(q.fits for q in stages.values()),
        memory_breakdown_gb=peak_stage.memory_breakdown_gb,
        fixes=tuple(dict.fromkeys(f for q in stages.values() for f in q.fixes)),
        assumptions={**first.assumptions, "peak_stage": next(k for k, q in stages.items() if q is peak_stage)},
    )


def variant_quotes(profile: Profile, hardware: Hardware) -> tuple[dict[str, Quote], dict[str, dict[str, Quote]],
                                                                  dict[str, str]]:
    """Every variant's quote, the full loop's stages per variant, and notes on the token counts."""
    shape = shape_of(profile)
    pref_tokens, prompts, notes = preference_tokens(profile)
    per = tokens_per_example(profile)
    sft_tokens, sft_notes = finetune_tokens(profile)
    if not profile.data.labeled_examples and not profile.training_tokens:
        sft_tokens = prompts * per * 3  # the chosen responses as demonstrations, 3 epochs
        sft_notes = {"tokens_from": "chosen responses as demonstrations × 3 epochs"}
    notes = {**notes, "sft": str(sft_notes.get("tokens_from", ""))}
    setup = setup_for(profile)
    pair_setup = replace(setup, micro_batch=2)  # DPO holds a chosen and a rejected sequence per pair
    stages: dict[str, dict[str, Quote]] = {}
    for name, lora in (("rlhf", False), ("rlhf_lora", True)):
        kind: TrainKind = "lora" if lora else "full"
        stages[name] = {"sft": _train(shape, sft_tokens, hardware, setup, kind),
                        "reward_model": _train(shape, pref_tokens, hardware, setup, kind),
                        "grpo": _grpo_quote(shape, prompts, per / 2, hardware, profile, lora)}
    quotes = {name: _pipeline(parts) for name, parts in stages.items()}
    quotes["dpo"] = _train(shape, pref_tokens, hardware, setup, "dpo")
    # DPO with LoRA: the policy's adapters train on both sequences of a pair; the reference is the
    # same base with adapters off, one more forward pass and no second copy of the weights.
    quotes["dpo_lora"] = _train(shape, pref_tokens, hardware, pair_setup, "lora",
                                extra_flops_per_token=flops_per_token(shape, pair_setup.seq_len, "forward"))
    return quotes, stages, notes


def _human_time(profile: Profile, variant: Variant) -> dict[str, str]:
    """The calendar: existing pairs are feedback already collected; DPO is one run, the loop is ongoing."""
    out = dict(HUMAN_TIME[METHOD])
    pairs = profile.data.preference_pairs
    if pairs >= PAIRS_FOR_DPO:
        out["data_prep"] = (f"hours: your {count(pairs)} preference pairs are already collected (put them in "
                            "prompt / chosen / rejected form)"
                            + ("; your raters add more over time" if profile.data.human_raters else ""))
    if not variant.loop:
        out.update(cost="medium" if variant.lora else "medium–high", training="hours–days (one DPO run)",
                   evaluation="1–3 days (answers of the base and the tuned model judged side by side)",
                   expertise="moderate (fine-tuning; DPO trains like a supervised run)")
    return out


def estimate(profile: Profile, hardware: Hardware) -> Quote:
    quotes, stages, notes = variant_quotes(profile, hardware)
    chosen, why = choose_variant(profile, quotes)
    variant = VARIANTS[chosen]
    head = quotes[chosen]
    assumptions = {
        **head.assumptions,
        "variant": variant.title,
        "variant_why": why,
        "plan_config": variant.config,
        "tokens": int(preference_tokens(profile)[0]),
        **notes,
    }
    if variant.loop:
        grpo = stages[chosen]["grpo"]
        assumptions.update({f"grpo_{k}": grpo.assumptions[k] for k in ("seq_len", "micro_batch", "mfu")})
        assumptions.update({k: grpo.assumptions[k] for k in ("samples_per_prompt", "completion_tokens",
                                                             "rollout_batch", "generation_hours", "generation")})
        assumptions["pipeline"] = ("SFT → reward model (same size as the policy) → GRPO against it"
                                   + ("; LoRA adapters on the policy and the reward model" if variant.lora else ""))
    else:
        assumptions.pop("sft", None)
        assumptions["pipeline"] = ("DPO: the policy and a frozen reference on the pairs, no reward model, "
                                   "no sampling" + ("; the policy trains LoRA adapters and the reference is the "
                                                    "base with adapters off (no second copy)" if variant.lora else ""))
    alternatives = {
        name: {**stage_summary(q), "title": VARIANTS[name].title, "config": VARIANTS[name].config,
               "memory_breakdown_gb": dict(q.memory_breakdown_gb), "fixes": list(q.fixes)}
        for name, q in quotes.items() if name != chosen
    }
    return replace(
        head,
        method=METHOD,
        human_time=_human_time(profile, variant),
        assumptions=assumptions,
        stages=({name: {**stage_summary(q), "memory_breakdown_gb": dict(q.memory_breakdown_gb)}
                 for name, q in stages[chosen].items()} if variant.loop else {}),
        alternatives=alternatives,
    )
