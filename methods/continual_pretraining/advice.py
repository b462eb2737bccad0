"""Continual pretraining advice: keep training on a large unlabeled corpus of a domain or language.

It is the expensive end of adaptation: billions of tokens, weeks of data preparation and training,
advanced skills. It pays when the model must become fluent in text it has rarely seen (a language,
a field's vocabulary) and the corpus is large. The quote adds replayed general text, which limits
forgetting (Ibrahim et al. 2024, "Simple and Scalable Strategies to Continually Pre-train LLMs":
5 % replay for a weak shift, 25 % for a new language).
"""

from __future__ import annotations

from tunewise.methods._advice import (
    NOMINAL_UNLABELED_TOKENS,
    Rule,
    count,
    evaluate,
    expertise_at_least,
    has_goal,
    said_goals,
    setup_for,
    shape_of,
)
from tunewise.plugins.costs import training_quote
from tunewise.plugins.types import Fit, Hardware, Profile, Quote

METHOD = "continual_pretraining"
BASE_SCORE = 0.1
MIN_TOKENS = 10_000_000
"""Below this much raw text, continual pretraining has nothing to learn from."""
SEQ_LEN = 4096
REPLAY_DOMAIN = 0.10
REPLAY_LANGUAGE = 0.25
FLUENCY_GOALS = ("language", "domain")

RULES: tuple[Rule, ...] = (
    Rule("no-corpus", lambda p: p.data.unlabeled_tokens < MIN_TOKENS, 0.0,
         lambda p: "continual pretraining needs a large unlabeled corpus (usually hundreds of millions to "
                   f"billions of tokens): you have {count(p.data.unlabeled_tokens)}", blocker=True),
    Rule("billions", lambda p: p.data.unlabeled_tokens >= 1_000_000_000, 0.4,
         lambda p: f"you have {count(p.data.unlabeled_tokens)} tokens of raw domain text: the scale continual "
                   "pretraining is made for"),
    Rule("hundreds-of-millions", lambda p: 100_000_000 <= p.data.unlabeled_tokens < 1_000_000_000, 0.25,
         lambda p: f"{count(p.data.unlabeled_tokens)} tokens of raw text is enough for a domain-adaptive round"),
    Rule("small-corpus", lambda p: MIN_TOKENS <= p.data.unlabeled_tokens < 100_000_000, -0.05,
         lambda p: f"{count(p.data.unlabeled_tokens)} tokens is a small corpus for continual pretraining"),
    Rule("fluency-goal", lambda p: has_goal(p, *FLUENCY_GOALS), 0.25,
         lambda p: f"your goals ({said_goals(p, *FLUENCY_GOALS)}) ask for fluency in text the base model has "
                   "rarely seen: new vocabulary and usage come from raw text"),
    Rule("no-fluency-goal", lambda p: not has_goal(p, *FLUENCY_GOALS), -0.2,
         lambda p: f"your goals ({said_goals(p)}) do not need new language fluency, which is what continual "
                   "pretraining buys"),
    Rule("short-calendar", lambda p: p.budget.days < 28, -0.15,
         lambda p: f"it typically takes weeks to months (data preparation 1–12 weeks, training 4–24); you have "
                   f"{p.budget.days:g} days"),
    Rule("expertise", lambda p: not expertise_at_least(p, "advanced"), -0.15,
         lambda p: f'it needs advanced NLP and domain expertise; your team\'s expertise: "{p.team_expertise}"'),
)


def fit(profile: Profile) -> Fit:
    return evaluate(METHOD, BASE_SCORE, RULES, profile)


def replay_fraction(profile: Profile) -> float:
    return REPLAY_LANGUAGE if "language" in profile.goals else REPLAY_DOMAIN


def estimate(profile: Profile, hardware: Hardware) -> Quote:
    replay = replay_fraction(profile)
    notes: dict[str, str | float | int] = {"replay_fraction": replay, "epochs": 1}
    if profile.training_tokens:
        corpus = float(profile.training_tokens)
        notes["tokens_from"] = "given (--tokens), plus replayed general text"
    else:
        corpus = float(profile.data.unlabeled_tokens or NOMINAL_UNLABELED_TOKENS)
        notes["tokens_from"] = f"{count(corpus)} unlabeled tokens × 1 epoch, plus {replay:.0%} replayed general text"
        if not profile.data.unlabeled_tokens:
            notes["nominal_data"] = f"no unlabeled text given: quoted for {count(NOMINAL_UNLABELED_TOKENS)} tokens"
    return training_quote(METHOD, shape_of(profile), corpus * (1 + replay), hardware,
                          setup_for(profile, seq_len=SEQ_LEN), kind="full", assumptions=notes)
