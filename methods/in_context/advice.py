"""In-context learning advice: put a few input → output examples in the prompt; no training.

The first thing to try: it costs nothing up front and changes in minutes, but every query carries
the examples (more tokens, more latency, a context-window limit) and it cannot teach a language or
fluency the model lacks.
"""

from __future__ import annotations

from tunewise.methods._advice import (
    Rule,
    count,
    evaluate,
    expertise_at_least,
    has_goal,
    only_goals,
    said_goals,
    shape_of,
    tokens_per_example,
    use_case,
)
from tunewise.plugins.costs import inference_quote
from tunewise.plugins.types import Fit, Hardware, Profile, Quote

METHOD = "in_context"
BASE_SCORE = 0.45
PROMPT_GOALS = ("task", "format", "style")
EXAMPLES_IN_PROMPT = 8
"""Examples a prompt carries (fewer when the user has fewer)."""
MANY_EXAMPLES = 1000
DEEP_GOALS = ("language", "domain", "safety", "preference")

RULES: tuple[Rule, ...] = (
    Rule("prompt-goals", lambda p: only_goals(p, *PROMPT_GOALS), 0.2,
         lambda p: f"your goals ({said_goals(p)}) can be shown with a few examples in the prompt: no training "
                   f"needed{use_case(p)}"),
    Rule("few-examples", lambda p: 0 < p.data.labeled_examples <= 50, 0.15,
         lambda p: f"your {count(p.data.labeled_examples)} labeled examples fit in a prompt as they are"),
    Rule("no-examples", lambda p: p.data.labeled_examples == 0 and only_goals(p, *PROMPT_GOALS), 0.05,
         lambda p: "no labeled data yet: write 3–5 examples by hand and try it today"),
    Rule("many-examples", lambda p: p.data.labeled_examples >= MANY_EXAMPLES, -0.2,
         lambda p: f"with {count(p.data.labeled_examples)} examples, a prompt uses a handful of them; training "
                   "learns from all"),
    Rule("deep-goals", lambda p: has_goal(p, *DEEP_GOALS), -0.25,
         lambda p: f"your goals ({said_goals(p, *DEEP_GOALS)}) need the model itself to change; prompt examples "
                   "do not add fluency or judgement it lacks"),
    Rule("knowledge-collection", lambda p: has_goal(p, "knowledge") and p.data.documents > 20, -0.25,
         lambda p: f"{count(p.data.documents)} documents will not fit in a prompt; retrieve them instead"),
    Rule("volume-and-latency", lambda p: p.latency_sensitive and p.queries_per_day >= 10_000, -0.15,
         lambda p: f"{count(p.queries_per_day)} latency-sensitive queries a day each carry the examples: "
                   "slower and dearer than a trained model's short prompt"),
    Rule("low-expertise", lambda p: not expertise_at_least(p, "moderate"), 0.1,
         lambda p: f'only prompt writing is needed, which suits a team with "{p.team_expertise}" ML expertise'),
)


def fit(profile: Profile) -> Fit:
    return evaluate(METHOD, BASE_SCORE, RULES, profile)


def estimate(profile: Profile, hardware: Hardware) -> Quote:
    from tunewise.methods.lora.advice import estimate as lora_estimate

    examples = min(profile.data.labeled_examples, EXAMPLES_IN_PROMPT) or 5
    per = tokens_per_example(profile)
    lora = lora_estimate(profile, hardware)
    return inference_quote(
        METHOD, shape_of(profile), hardware,
        extra_prompt_tokens=examples * per,
        queries_per_day=profile.queries_per_day,
        finetune_usd=(lora.usd_low, lora.usd_high),
        assumptions={
            "examples_in_prompt": examples,
            "tokens_per_example": per,
            "tokens": 0,
            "breakeven_against": "a LoRA fine-tune on your labeled examples (see its quote)",
        },
    )
