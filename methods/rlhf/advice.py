"""RLHF advice: learn from human preferences when quality is easier to judge than to write down.

The full pipeline has three stages: supervised fine-tuning (SFT) on demonstrations, a reward model
trained on preference pairs, and reinforcement learning against it (GRPO/RLOO here: several sampled
answers per prompt, no value model). DPO optimises the policy on the pairs directly, with no reward
model and no sampling loop: cheaper and usually the first thing to try. The quote lists both.
"""

from __future__ import annotations

from dataclasses import replace

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
SAMPLES_PER_PROMPT = 8
"""GRPO group size (TRL's ``num_generations`` default)."""
COMPLETION_TOKENS = 256
RL_EPOCHS = 1

RULES: tuple[Rule, ...] = (
    Rule("no-feedback", lambda p: p.data.preference_pairs == 0 and not p.data.human_raters, 0.0,
         lambda p: "RLHF needs preference data or raters: you have no preference pairs and no people to rate "
                   "outputs", blocker=True),
    Rule("preference-goal", lambda p: has_goal(p, *PREFERENCE_GOALS), 0.3,
         lambda p: f"your goals ({said_goals(p, *PREFERENCE_GOALS)}) are easier to judge than to write as "
                   "examples: learning from people's preferences targets exactly that"),
    Rule("many-pairs", lambda p: p.data.preference_pairs >= 5_000, 0.25,
         lambda p: f"you have {count(p.data.preference_pairs)} preference pairs: enough for a reward model or DPO"),
    Rule("some-pairs", lambda p: 500 <= p.data.preference_pairs < 5_000, 0.1,
         lambda p: f"{count(p.data.preference_pairs)} preference pairs are a start; DPO makes the most of them"),
    Rule("few-pairs", lambda p: 0 < p.data.preference_pairs < 500, -0.05,
         lambda p: f"only {count(p.data.preference_pairs)} preference pairs: collect more before training on them"),
    Rule("raters", lambda p: p.data.human_raters, 0.15,
         lambda p: "you have people to rate outputs over time: the ongoing feedback loop RLHF runs on"),
    Rule("no-preference-goal", lambda p: not has_goal(p, *PREFERENCE_GOALS), -0.2,
         lambda p: f"your goals ({said_goals(p)}) can be taught with examples; preferences add most for "
                   "helpfulness, tone and safety"),
    Rule("no-sft-data", lambda p: p.data.labeled_examples == 0 and p.data.preference_pairs > 0, -0.05,
         lambda p: "no labeled examples for the SFT stage: the chosen responses have to serve as demonstrations"),
    Rule("expertise", lambda p: not expertise_at_least(p, "expert"), -0.2,
         lambda p: f'the full pipeline needs expert RL and human-in-the-loop skills; your team\'s expertise: '
                   f'"{p.team_expertise}" (start with DPO)'),
    Rule("short-calendar", lambda p: p.budget.days < 60, -0.1,
         lambda p: f"feedback collection runs for months; you have {p.budget.days:g} days"),
)


def fit(profile: Profile) -> Fit:
    return evaluate(METHOD, BASE_SCORE, RULES, profile)


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


def _grpo_quote(shape: ModelShape, prompts: float, prompt_tokens: float, hardware: Hardware,
                profile: Profile) -> Quote:
    """Rollouts (memory-bound generation) + policy update with reference and reward scoring."""
    samples = prompts * SAMPLES_PER_PROMPT * RL_EPOCHS
    generated = samples * COMPLETION_TOKENS
    processed = samples * (prompt_tokens + COMPLETION_TOKENS)
    seq = int(prompt_tokens + COMPLETION_TOKENS)
    setup = replace(setup_for(profile), seq_len=seq, micro_batch=SAMPLES_PER_PROMPT)
    scoring = 2 * flops_per_token(shape, seq, "forward")  # frozen reference + reward model (same size)
    update = training_quote("rlhf", shape, processed, hardware, setup, kind="full",
                            extra_flops_per_token=scoring, extra_frozen_params=2 * shape.params)
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


def estimate(profile: Profile, hardware: Hardware) -> Quote:
    shape = shape_of(profile)
    pref_tokens, prompts, notes = preference_tokens(profile)
    per = tokens_per_example(profile)
    sft_tokens, sft_notes = finetune_tokens(profile)
    if not profile.data.labeled_examples and not profile.training_tokens:
        sft_tokens = prompts * per * 3  # the chosen responses as demonstrations, 3 epochs
        sft_notes = {"tokens_from": "chosen responses as demonstrations × 3 epochs"}
    setup = setup_for(profile)
    sft = training_quote("rlhf", shape, sft_tokens, hardware, setup, kind="full")
    reward = training_quote("rlhf", shape, pref_tokens, hardware, setup, kind="full")
    grpo = _grpo_quote(shape, prompts, per / 2, hardware, profile)
    dpo = training_quote("rlhf", shape, pref_tokens, hardware, setup, kind="dpo")
    stages = {"sft": sft, "reward_model": reward, "grpo": grpo}
    gpu_hours = sum(q.gpu_hours for q in stages.values())
    wall_hours = sum(q.wall_hours for q in stages.values())
    low = sum(q.usd_low for q in stages.values())
    high = sum(q.usd_high for q in stages.values())
    peak_stage = max(stages.values(), key=lambda q: q.peak_memory_gb)
    fixes = tuple(dict.fromkeys(f for q in stages.values() for f in q.fixes))
    return Quote(
        method=METHOD,
        flops=sum(q.flops for q in stages.values()),
        gpu_hours=gpu_hours, wall_hours=wall_hours, usd_low=low, usd_high=high,
        peak_memory_gb=peak_stage.peak_memory_gb,
        fits=all(q.fits for q in stages.values()),
        memory_breakdown_gb=peak_stage.memory_breakdown_gb,
        fixes=fixes,
        human_time=dict(HUMAN_TIME[METHOD]),
        assumptions={
            **sft.assumptions,
            **{f"grpo_{k}": grpo.assumptions[k] for k in ("seq_len", "micro_batch", "mfu")},
            **{k: grpo.assumptions[k] for k in ("samples_per_prompt", "completion_tokens", "rollout_batch",
                                                "generation_hours", "generation")},
            "pipeline": "full RLHF: SFT → reward model (same size as the policy) → GRPO against it; "
                        "DPO quoted under alternatives",
            "tokens": int(pref_tokens),
            "sft": sft_notes.get("tokens_from", ""),
            "peak_stage": next(k for k, q in stages.items() if q is peak_stage),
            **notes,
        },
        stages={name: {**stage_summary(q), "memory_breakdown_gb": dict(q.memory_breakdown_gb)}
                for name, q in stages.items()},
        alternatives={"dpo": {**stage_summary(dpo), "memory_breakdown_gb": dict(dpo.memory_breakdown_gb),
                              "note": "Direct Preference Optimisation: policy + frozen reference on the pairs, "
                                      "no reward model, no sampling; ≈8·N FLOPs per token",
                              "fixes": list(dpo.fixes)}},
    )
