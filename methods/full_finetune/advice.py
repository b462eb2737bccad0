"""Full fine-tuning advice: update every weight when data and compute are plentiful and the change is large."""

from __future__ import annotations

from tunewise.methods._advice import (
    Rule,
    count,
    evaluate,
    expertise_at_least,
    finetune_tokens,
    has_goal,
    said_goals,
    setup_for,
    shape_of,
    use_case,
)
from tunewise.plugins.costs import training_quote
from tunewise.plugins.types import Fit, Hardware, Profile, Quote

METHOD = "full_finetune"
BASE_SCORE = 0.25
LARGE_CHANGE_GOALS = ("language", "domain", "task")

CHANGING_FAST = ("weekly", "daily", "hourly", "realtime")
"""Faster than a fine-tune can be repeated in practice."""

RULES: tuple[Rule, ...] = (
    Rule("no-examples", lambda p: p.data.labeled_examples == 0, 0.0,
         lambda p: "full fine-tuning needs labeled input → output examples: you have none", blocker=True),
    Rule("plentiful-data", lambda p: p.data.labeled_examples >= 20_000, 0.3,
         lambda p: f"you have {count(p.data.labeled_examples)} labeled examples: plenty to update every weight "
                   f"without overfitting{use_case(p)}"),
    Rule("some-data", lambda p: 2_000 <= p.data.labeled_examples < 20_000, 0.1,
         lambda p: f"{count(p.data.labeled_examples)} labeled examples can support full fine-tuning, though LoRA "
                   "usually matches it at this size"),
    Rule("little-data", lambda p: 0 < p.data.labeled_examples < 2_000, -0.15,
         lambda p: f"with {count(p.data.labeled_examples)} examples, updating every weight risks overfitting and "
                   "forgetting; adapters (LoRA) are the safer choice"),
    Rule("large-change", lambda p: has_goal(p, *LARGE_CHANGE_GOALS), 0.1,
         lambda p: f"your goals ({said_goals(p, *LARGE_CHANGE_GOALS)}) can be a large change in behaviour, where "
                   "updating all weights helps most"),
    Rule("many-gpus", lambda p: p.hardware.gpus >= 4, 0.1,
         lambda p: f"{p.hardware.gpus}× {p.hardware.gpu} can shard weights, gradients and optimizer states "
                   "(ZeRO-3/FSDP)"),
    Rule("single-device", lambda p: p.hardware.gpus == 1, -0.05,
         lambda p: f"one {p.hardware.gpu}: full fine-tuning holds ≈16 bytes per parameter on it"),
    Rule("corpus-shift", lambda p: has_goal(p, "language", "domain") and p.data.unlabeled_tokens >= 100_000_000,
         -0.1, lambda p: f"your {count(p.data.unlabeled_tokens)} tokens of raw text teach "
                         f"{said_goals(p, 'language', 'domain')} fluency better than labeled pairs do: continual "
                         "pretraining first, then fine-tune"),
    Rule("only-knowledge", lambda p: p.goals == ("knowledge",), -0.25,
         lambda p: 'your only goal is "knowledge": retrieval gives facts with sources; training bakes them in '
                   "without citations"),
    Rule("changing-facts", lambda p: has_goal(p, "knowledge") and p.knowledge_changes in CHANGING_FAST, -0.1,
         lambda p: f'your facts change "{p.knowledge_changes}": trained-in facts go stale and every update is '
                   "another full training run"),
    Rule("low-expertise", lambda p: not expertise_at_least(p, "moderate"), -0.15,
         lambda p: f'full fine-tuning needs NLP basics and care with learning rates; your team\'s expertise: '
                   f'"{p.team_expertise}"'),
)


def fit(profile: Profile) -> Fit:
    return evaluate(METHOD, BASE_SCORE, RULES, profile)


def estimate(profile: Profile, hardware: Hardware) -> Quote:
    tokens, notes = finetune_tokens(profile)
    return training_quote(METHOD, shape_of(profile), tokens, hardware, setup_for(profile), kind="full",
                          assumptions=notes)
