"""Shared machinery of the built-in methods' advice: rules as data, quoting answers, data-derived sizes.

A method's ``fit`` is a list of :class:`Rule` objects: a condition on the profile, a score change
and a reason that quotes the user's own answers; a blocker rule names what rules the method out
until it changes. Rules read only the profile (no hardware, no costs): the ranking applies the
cost rules (budget, memory) to every method alike, third-party ones included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tunewise.plugins.costs import ModelShape, TrainSetup, resolve_shape
from tunewise.plugins.types import EXPERTISE_LEVELS, Fit, Profile

TOKENS_PER_EXAMPLE = 350
"""Assumed tokens per labeled example or preference response when the data was not audited
(Alpaca-style instruction pairs average ~270 tokens, chat turns more)."""
TOKENS_PER_DOCUMENT = 2000
"""Assumed tokens per reference document when the documents were not audited (a few pages)."""
NOMINAL_EXAMPLES = 1000
NOMINAL_PAIRS = 5000
NOMINAL_UNLABELED_TOKENS = 1_000_000_000
"""Sizes quoted for a method whose data the user does not have yet (said in the quote's assumptions)."""

BLOCKED_SCORE_CAP = 0.1
"""A method with a blocker scores at most this, so it ranks below every method that can run."""


@dataclass(frozen=True)
class Rule:
    """One piece of advice: when ``applies``, add ``effect`` to the score and give ``reason``."""

    id: str
    applies: Callable[[Profile], bool]
    effect: float
    reason: Callable[[Profile], str]
    blocker: bool = False
    """True: the reason is a blocker (what rules the method out until it changes)."""


def evaluate(method: str, base: float, rules: Sequence[Rule], profile: Profile) -> Fit:
    """Apply ``rules`` to ``profile``: score = base + effects, clamped to 0..1; blockers cap it."""
    score = base
    reasons: list[str] = []
    blockers: list[str] = []
    for rule in rules:
        if not rule.applies(profile):
            continue
        text = rule.reason(profile)
        if rule.blocker:
            blockers.append(text)
        else:
            score += rule.effect
            reasons.append(text)
    score = min(1.0, max(0.0, score))
    if blockers:
        score = min(score, BLOCKED_SCORE_CAP)
    return Fit(method=method, score=round(score, 3), reasons=tuple(reasons), blockers=tuple(blockers))


# -- reading the profile ------------------------------------------------------------------------------


def has_goal(profile: Profile, *goals: str) -> bool:
    return any(g in profile.goals for g in goals)


def only_goals(profile: Profile, *goals: str) -> bool:
    """True when every goal the user named is among ``goals``."""
    return bool(profile.goals) and all(g in goals for g in profile.goals)


def goals_among(profile: Profile, *goals: str) -> list[str]:
    return [g for g in profile.goals if g in goals]


def expertise_at_least(profile: Profile, level: str) -> bool:
    return EXPERTISE_LEVELS.index(profile.team_expertise) >= EXPERTISE_LEVELS.index(level)


def tokens_per_example(profile: Profile) -> float:
    return profile.data.avg_tokens_per_example or TOKENS_PER_EXAMPLE


def document_tokens(profile: Profile) -> float:
    if profile.data.document_tokens is not None:
        return float(profile.data.document_tokens)
    return float(profile.data.documents * TOKENS_PER_DOCUMENT)


# -- quoting answers ----------------------------------------------------------------------------------


def count(n: float) -> str:
    """A count as people write it: 1,200 / 2.5M / 3B."""
    if n >= 1e9:
        return f"{n / 1e9:.3g}B"
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    return f"{int(n):,}"


def said_goals(profile: Profile, *which: str) -> str:
    """The user's goals (or those among ``which``) quoted: 'goals: "knowledge", "format"'."""
    picked = goals_among(profile, *which) if which else list(profile.goals)
    return ", ".join(f'"{g}"' for g in picked)


def use_case(profile: Profile) -> str:
    """' for "…"' when the user described the use case, else nothing."""
    return f' for "{profile.use_case}"' if profile.use_case else ""


def gpu_text(profile: Profile) -> str:
    return f"{profile.hardware.gpus}× {profile.hardware.gpu}"


# -- sizes for quotes ---------------------------------------------------------------------------------


def shape_of(profile: Profile) -> ModelShape:
    return resolve_shape(profile.model.name, profile.model.params_b)


def setup_for(profile: Profile, seq_len: int = 2048, micro_batch: int = 1) -> TrainSetup:
    """The training setup a quote assumes: the user's GPU count, their sequence length or ``seq_len``."""
    return TrainSetup(seq_len=profile.seq_len or seq_len, micro_batch=micro_batch, gpus=profile.hardware.gpus)


FINETUNE_EPOCHS = 3


def finetune_tokens(profile: Profile) -> tuple[float, dict[str, str | int | float]]:
    """Tokens a fine-tune on the labeled examples processes (all epochs), and what was assumed."""
    if profile.training_tokens:
        return float(profile.training_tokens), {"tokens_from": "given (--tokens)"}
    examples = profile.data.labeled_examples or NOMINAL_EXAMPLES
    per = tokens_per_example(profile)
    notes: dict[str, str | int | float] = {
        "epochs": FINETUNE_EPOCHS,
        "tokens_per_example": per,
        "tokens_from": (f"{examples:,} labeled examples × {per:.0f} tokens × {FINETUNE_EPOCHS} epochs"
                        + ("" if profile.data.avg_tokens_per_example else " (typical size; audit your data "
                                                                          "for the real one)")),
    }
    if not profile.data.labeled_examples:
        notes["nominal_data"] = f"no labeled examples given: quoted for {NOMINAL_EXAMPLES:,}"
    return examples * per * FINETUNE_EPOCHS, notes
