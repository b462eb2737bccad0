"""LoRA / QLoRA advice: when small adapters on a frozen base are the right way to teach behaviour.

LoRA trains low-rank adapters while the base stays frozen: about 2 bytes per base parameter instead
of 16, checkpoints of megabytes, one base shared by many tasks, and quality matching full fine-tuning
in many reported cases. It needs labeled examples and teaches skills, style and format better than facts.
"""

from __future__ import annotations

from tunewise.methods._advice import (
    Rule,
    count,
    evaluate,
    expertise_at_least,
    finetune_tokens,
    has_goal,
    only_goals,
    said_goals,
    setup_for,
    shape_of,
    use_case,
)
from tunewise.plugins.costs import training_quote
from tunewise.plugins.types import Fit, Hardware, Profile, Quote

METHOD = "lora"
BASE_SCORE = 0.35
BEHAVIOUR_GOALS = ("task", "style", "format", "domain", "language", "safety")

RULES: tuple[Rule, ...] = (
    Rule("no-examples", lambda p: p.data.labeled_examples == 0, 0.0,
         lambda p: "fine-tuning needs labeled input → output examples: you have none "
                   "(add examples, or start with in-context learning)", blocker=True),
    Rule("enough-examples", lambda p: p.data.labeled_examples >= 100, 0.2,
         lambda p: f"you have {count(p.data.labeled_examples)} labeled examples: enough to fine-tune{use_case(p)}"),
    Rule("modest-data", lambda p: 100 <= p.data.labeled_examples < 100_000, 0.1,
         lambda p: f"with {count(p.data.labeled_examples)} examples, adapters learn the change while the "
                   "frozen base keeps its general skills; LoRA matches full fine-tuning in many reported cases"),
    Rule("few-examples", lambda p: 0 < p.data.labeled_examples < 100, -0.15,
         lambda p: f"only {p.data.labeled_examples} labeled examples: few enough to put in the prompt instead"),
    Rule("behaviour-goal", lambda p: has_goal(p, *BEHAVIOUR_GOALS), 0.15,
         lambda p: f"your goals ({said_goals(p, *BEHAVIOUR_GOALS)}) are behaviour that training on examples "
                   "teaches consistently, with shorter prompts at inference"),
    Rule("modest-hardware", lambda p: p.hardware.gpus <= 2 or p.hardware.gpu.lower() == "cpu", 0.05,
         lambda p: f"on {p.hardware.gpus}× {p.hardware.gpu}, a frozen base (2 bytes/param, 0.55 with QLoRA) "
                   "fits where full fine-tuning (16 bytes/param) often does not"),
    Rule("only-knowledge", lambda p: p.goals == ("knowledge",), -0.25,
         lambda p: 'your only goal is "knowledge": fine-tuning teaches behaviour more reliably than facts, '
                   "and trained-in facts cannot be cited"),
    Rule("changing-facts", lambda p: has_goal(p, "knowledge") and p.knowledge_changes in ("weekly", "daily", "hourly", "realtime"),
         -0.1, lambda p: f'your facts change "{p.knowledge_changes}": trained-in facts go stale and would need '
                         "retraining"),
    Rule("corpus-shift", lambda p: has_goal(p, "language", "domain") and p.data.unlabeled_tokens >= 100_000_000,
         -0.15, lambda p: f"your {count(p.data.unlabeled_tokens)} tokens of raw text for {said_goals(p, 'language', 'domain')} "
                          "are a large shift: adapters learn less of it than full training (Biderman et al. 2024, "
                          '"LoRA Learns Less and Forgets Less"); pretrain on it first'),
    Rule("judged-quality", lambda p: only_goals(p, "preference", "safety", "style") and p.data.preference_pairs >= 500,
         -0.2, lambda p: f"your goals ({said_goals(p)}) are judged by people and you have "
                         f"{count(p.data.preference_pairs)} preference pairs: examples alone do not teach which of two "
                         "answers is better (fine-tune first, then learn from the preferences)"),
    Rule("no-expertise", lambda p: not expertise_at_least(p, "basic"), -0.15,
         lambda p: f'fine-tuning needs NLP basics; your team\'s expertise: "{p.team_expertise}"'),
)


def fit(profile: Profile) -> Fit:
    return evaluate(METHOD, BASE_SCORE, RULES, profile)


def estimate(profile: Profile, hardware: Hardware) -> Quote:
    tokens, notes = finetune_tokens(profile)
    return training_quote(METHOD, shape_of(profile), tokens, hardware, setup_for(profile), kind="lora",
                          assumptions=notes)
