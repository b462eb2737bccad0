"""When prompt tuning is the right call, and what it costs (no torch: the advisor imports this).

The facts behind the rules (Lester, Al-Rfou & Constant, 2021, "The Power of Scale for
Parameter-Efficient Prompt Tuning"; Liu et al., 2022, "P-Tuning v2"):

- only the virtual tokens train (20-100 vectors of the model's width): a task is kilobytes, the base
  model is shared untouched, and requests for different tasks can share one batch;
- quality approaches full fine-tuning only on large models (about 10B parameters and up); on small
  models it trails fine-tuning and LoRA clearly;
- it learns a task or an output format from labeled examples; it cannot store new facts;
- it converges more slowly than LoRA, so runs take more passes over the data.

Costs use tunewise's public formulas (:mod:`tunewise.plugins.costs`): the backward pass still runs
through every frozen layer down to the input embeddings, which is the ``lora`` compute and memory
model with no adapter weights, on sequences longer by the virtual tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tunewise.plugins import Fit, Hardware, Profile, Question, Quote
from tunewise.plugins.costs import ADAM_STATE_BYTES, GB, ModelShape, TrainSetup, resolve_shape, training_quote

METHOD = "prompt_tuning"
BASE_SCORE = 0.25
BLOCKED_SCORE_CAP = 0.1
"""A blocked method scores at most this (the built-in methods use the same cap)."""

VIRTUAL_TOKENS = 20
"""Virtual tokens a quote assumes (the plan default)."""
EPOCHS = 5
"""Passes over the data a quote assumes: prompt tuning needs more than LoRA's usual 3."""
TOKENS_PER_EXAMPLE = 350
NOMINAL_EXAMPLES = 1000
QUOTE_SEQ_LEN = 2048
LARGE_MODEL_B = 10.0
SMALL_MODEL_B = 1.0
MANY_TASKS = 5

MANY_TASKS_QUESTION = "prompt_tuning.many_tasks"
TASK_COUNT_QUESTION = "prompt_tuning.tasks"

QUESTIONS: tuple[Question, ...] = (
    Question(
        id=MANY_TASKS_QUESTION,
        text="Do you need many tasks served from one frozen model?",
        help="Prompt tuning stores each task as a few kilobytes of virtual tokens in front of an unchanged "
             "model, so one deployment serves every task, even mixed in one batch.",
        type="bool", default=False, topic="goals",
    ),
    Question(
        id=TASK_COUNT_QUESTION,
        text="How many distinct tasks would share the model?",
        help="Each task gets its own trained prompt; the more tasks, the more one shared model saves.",
        type="int", default=1, minimum=1, topic="goals",
        ask_if=lambda answers: bool(answers.get(MANY_TASKS_QUESTION)),
    ),
)
"""Interview questions the plugin adds (answers arrive in ``profile.extra``)."""

HUMAN_TIME = {"cost": "low–medium", "data_prep": "1–3 days (labeled examples per task)",
              "training": "hours–2 days per task", "evaluation": "1–2 days per task",
              "expertise": "moderate (NLP basics)"}


def _count(n: float) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{int(n):,}"


def _many_tasks(p: Profile) -> bool:
    return bool(p.extra.get(MANY_TASKS_QUESTION, False))


def _tasks(p: Profile) -> int:
    try:
        return max(1, int(p.extra.get(TASK_COUNT_QUESTION, 1)))
    except (TypeError, ValueError):
        return 1


def _goals(p: Profile, *names: str) -> list[str]:
    return [g for g in p.goals if g in names]


def _quoted(goals: list[str]) -> str:
    return ", ".join(f'"{g}"' for g in goals)


def prompt_kb(hidden: int, tokens: int = VIRTUAL_TOKENS) -> float:
    """Size of one task's trained prompt in kB (fp32 vectors of the model's width)."""
    return tokens * hidden * 4 / 1000


@dataclass(frozen=True)
class Rule:
    """When ``applies``: add ``effect`` and say ``reason`` (or, for a blocker, rule the method out)."""

    applies: Callable[[Profile], bool]
    effect: float
    reason: Callable[[Profile], str]
    blocker: bool = False


def _width(p: Profile) -> int:
    return resolve_shape(p.model.name, p.model.params_b).hidden


RULES: tuple[Rule, ...] = (
    Rule(lambda p: p.data.labeled_examples == 0, 0.0,
         lambda p: "prompt tuning learns from labeled input → output examples: you have none", blocker=True),
    Rule(_many_tasks, 0.3,
         lambda p: 'you answered yes to "Do you need many tasks served from one frozen model?": each task is '
                   f"{VIRTUAL_TOKENS} virtual tokens (≈{prompt_kb(_width(p)):.0f} kB) in front of one unchanged "
                   "model, and requests for different tasks can share a batch"),
    Rule(lambda p: _many_tasks(p) and _tasks(p) >= MANY_TASKS, 0.1,
         lambda p: f"with {_tasks(p)} tasks, a fine-tuned copy per task would multiply serving cost; "
                   "prompts switch per request"),
    Rule(lambda p: not _many_tasks(p), -0.05,
         lambda p: "you do not need many tasks from one model, where prompt tuning shines; for a single task "
                   "LoRA usually learns more in the same time"),
    Rule(lambda p: p.data.labeled_examples >= 100, 0.1,
         lambda p: f"you have {_count(p.data.labeled_examples)} labeled examples: plenty for a few thousand "
                   "trainable values"),
    Rule(lambda p: 0 < p.data.labeled_examples < 100, -0.1,
         lambda p: f"only {p.data.labeled_examples} labeled examples: they fit in the prompt itself "
                   "(in-context learning) without training"),
    Rule(lambda p: bool(_goals(p, "task", "format", "style")), 0.1,
         lambda p: f"your goals ({_quoted(_goals(p, 'task', 'format', 'style'))}) are behaviour a learned "
                   "prompt can steer a frozen model to"),
    Rule(lambda p: p.goals == ("knowledge",), -0.3,
         lambda p: 'your only goal is "knowledge": a few virtual tokens cannot store new facts'),
    Rule(lambda p: p.model.params_b >= LARGE_MODEL_B, 0.15,
         lambda p: f"your model has {p.model.params_b:g}B parameters: from about 10B, prompt tuning matches "
                   "full fine-tuning (Lester et al., 2021)"),
    Rule(lambda p: p.model.params_b < SMALL_MODEL_B, -0.15,
         lambda p: f"your model has {p.model.params_b:g}B parameters: below about 1B, prompt tuning trails "
                   "fine-tuning and LoRA clearly (Lester et al., 2021)"),
    Rule(lambda p: p.team_expertise == "none", -0.1,
         lambda p: 'training and evaluating prompts needs NLP basics; your team\'s expertise: "none"'),
)


def fit(profile: Profile) -> Fit:
    """Score the profile with :data:`RULES`: base + effects, clamped to 0..1; blockers cap it."""
    score = BASE_SCORE
    reasons: list[str] = []
    blockers: list[str] = []
    for rule in RULES:
        if not rule.applies(profile):
            continue
        if rule.blocker:
            blockers.append(rule.reason(profile))
        else:
            score += rule.effect
            reasons.append(rule.reason(profile))
    score = min(1.0, max(0.0, score))
    if blockers:
        score = min(score, BLOCKED_SCORE_CAP)
    return Fit(METHOD, round(score, 3), tuple(reasons), tuple(blockers))


def _tokens(profile: Profile) -> tuple[float, dict[str, Any]]:
    """Tokens processed in all (virtual tokens included) and what was assumed."""
    if profile.training_tokens:
        return float(profile.training_tokens), {"tokens_from": "given (--tokens)"}
    examples = profile.data.labeled_examples or NOMINAL_EXAMPLES
    per = profile.data.avg_tokens_per_example or TOKENS_PER_EXAMPLE
    notes: dict[str, Any] = {
        "epochs": EPOCHS,
        "tokens_from": f"{examples:,} labeled examples × ({per:.0f} + {VIRTUAL_TOKENS} virtual) tokens × "
                       f"{EPOCHS} epochs (prompt tuning converges more slowly than LoRA)",
    }
    if not profile.data.labeled_examples:
        notes["nominal_data"] = f"no labeled examples given: quoted for {NOMINAL_EXAMPLES:,}"
    return examples * (per + VIRTUAL_TOKENS) * EPOCHS, notes


def _reworded(text: str) -> str:
    """The LoRA wording of the shared formulas, said for prompt tuning."""
    return text.replace("QLoRA (4-bit base", "4-bit base (as in QLoRA")


def estimate(profile: Profile, hardware: Hardware) -> Quote:
    """The ``lora`` compute and memory model with no adapters, plus the prompt and its optimizer state."""
    shape: ModelShape = resolve_shape(profile.model.name, profile.model.params_b)
    tokens, notes = _tokens(profile)
    setup = TrainSetup(seq_len=(profile.seq_len or QUOTE_SEQ_LEN) + VIRTUAL_TOKENS, micro_batch=1,
                       gpus=profile.hardware.gpus, lora_rank=0)
    quote = training_quote(METHOD, shape, tokens, hardware, setup, kind="lora", assumptions=notes)
    trainable = VIRTUAL_TOKENS * shape.hidden
    # fp32 prompt + its gradient + Adam moments: 16 bytes per value, tiny but counted.
    prompt_gb = trainable * (4 + ADAM_STATE_BYTES) / GB
    breakdown: dict[str, float] = dict(quote.memory_breakdown_gb)
    breakdown["prompt"] = round(prompt_gb, 6)
    assumptions: dict[str, Any] = {k: v for k, v in quote.assumptions.items() if k != "lora_rank"}
    assumptions.update({
        "trainable_params": trainable,
        "num_virtual_tokens": VIRTUAL_TOKENS,
        "compute": "forward + backward through the frozen model to the input embeddings (4·N per token, "
                   "no weight gradients), on sequences longer by the virtual tokens",
        "storage_per_task": f"{prompt_kb(shape.hidden):.0f} kB",
    })
    if "variant" in assumptions:
        assumptions["variant"] = _reworded(str(assumptions["variant"]))
    return replace(
        quote,
        peak_memory_gb=round(quote.peak_memory_gb + prompt_gb, 3),
        memory_breakdown_gb=breakdown,
        fixes=tuple(_reworded(f) for f in quote.fixes),
        human_time=dict(HUMAN_TIME),
        assumptions=assumptions,
    )

