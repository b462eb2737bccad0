"""The RLHF / DPO bake-off: the base and the tuned policy on every held-out prompt, and who judges them.

Two judges, chosen by what the run has:

- **The reward model** (GRPO/RLOO always; DPO when the plan has one: ``dpo_reward_judge`` or
  ``reward_model_path``). The base and the tuned policy each answer every held-out prompt greedily
  (what a user gets); the reward model scores both answers and the tuned policy wins a prompt when
  its answer scores higher (identical answers tie). For DPO this judge is independent of the
  policy: trained on the training pairs only, never queried by DPO, never shown a held-out prompt.
  For GRPO/RLOO it is the reward the policy was optimised against, so part of a win may be reward
  hacking; the judge's own accuracy on held-out pairs is reported beside the verdict so its
  trustworthiness is visible.
- **Held-out preference pairs** (DPO without a reward model): per held-out pair, each model's
  log-probability margin ``log π(chosen) − log π(rejected)`` (summed over answer tokens, the chat
  template rendered as in training); the tuned policy wins a pair when its margin is larger than
  the base's. This is DPO's implicit-reward accuracy on pairs it never trained on: it shows the
  preference generalised to new prompts, but it scores the data's answers, not what the policy
  writes. Turn ``dpo_reward_judge`` on to judge written answers.

Not used: DPO's implicit reward ``β·log π/π_ref`` on the policy's own answers. The tuned policy
raises it on whatever it writes by construction, so it would call any movement a win (circular).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tunewise.methods.rlhf.preferences import PreferencePair, Prompt
from tunewise.plugins.bakeoff import BakeOff, RunFacts, bake_off
from tunewise.plugins.bakeoff_report import ExampleOutcome, unique_ids

PROMPTS_UNIT = "held-out prompts"
PAIRS_UNIT = "held-out preference pairs"
MARGIN_DECIMALS = 3
"""Pair margins are compared to 0.001 nats (see :func:`pair_bake_off`)."""
WEAK_JUDGE = 0.7
"""A reward model that ranks fewer than 70 % of held-out pairs correctly is a weak judge: its verdict
comes with a note saying so."""


def method_name(algorithm: str, lora: bool) -> str:
    """What the verdict sentence calls the tuned policy, e.g. "the DPO policy (LoRA)"."""
    return f"the {algorithm.upper()} policy" + (" (LoRA)" if lora else "")


def tie_unchanged(base_answers: Sequence[str], tuned_answers: Sequence[str], base_rewards: Sequence[float],
                  tuned_rewards: Sequence[float]) -> list[float]:
    """The tuned rewards, with the base's reward for every answer the tuned policy left unchanged: the same
    text scored in another batch (other padding) can get a reward a few 1e-7 off, which is no win or loss."""
    return [b if t.strip() == a.strip() else r
            for a, t, b, r in zip(base_answers, tuned_answers, base_rewards, tuned_rewards, strict=True)]


def reward_bake_off(prompts: Sequence[Prompt], base_answers: Sequence[str], tuned_answers: Sequence[str],
                    base_rewards: Sequence[float], tuned_rewards: Sequence[float], *, method: str,
                    facts: RunFacts) -> tuple[BakeOff, list[ExampleOutcome]]:
    """Win rate of the tuned policy's greedy answers against the base's, judged by the reward model."""
    ids = unique_ids([p.where for p in prompts])
    tuned_rewards = tie_unchanged(base_answers, tuned_answers, base_rewards, tuned_rewards)
    bake = bake_off(dict(zip(ids, base_rewards, strict=True)), dict(zip(ids, tuned_rewards, strict=True)),
                    "win_rate", method=method, unit=PROMPTS_UNIT, facts=facts)
    examples = [ExampleOutcome(i, p.text, "", b, t, br, tr) for i, p, b, t, br, tr in
                zip(ids, prompts, base_answers, tuned_answers, base_rewards, tuned_rewards, strict=True)]
    return bake, examples


def pair_bake_off(pairs: Sequence[PreferencePair], base_margins: Sequence[float], tuned_margins: Sequence[float],
                  *, method: str, facts: RunFacts) -> tuple[BakeOff, list[ExampleOutcome]]:
    """Win rate on held-out pairs: the tuned policy wins a pair when it separates the preferred answer
    from the rejected one by a larger log-probability margin than the base does."""
    ids = unique_ids([p.where for p in pairs])
    # Margins are sums of float32 log-probabilities over dozens of tokens: differences under 0.001 nats are
    # arithmetic noise (batching, padding), not a change of preference, so they tie.
    base_margins = [round(m, MARGIN_DECIMALS) for m in base_margins]
    tuned_margins = [round(m, MARGIN_DECIMALS) for m in tuned_margins]
    bake = bake_off(dict(zip(ids, base_margins, strict=True)), dict(zip(ids, tuned_margins, strict=True)),
                    "win_rate", method=method, unit=PAIRS_UNIT, facts=facts)
    examples = [ExampleOutcome(i, p.prompt[-1][1], f"{p.chosen} (over: {p.rejected})",
                               f"prefers it by {b:+.2f} nats", f"prefers it by {t:+.2f} nats", b, t)
                for i, p, b, t in zip(ids, pairs, base_margins, tuned_margins, strict=True)]
    return bake, examples


def pair_margins(model: Any, tokenizer: Any, pairs: Sequence[PreferencePair], placement: Any,
                 progress: Callable[[int, int], None] | None = None) -> list[float]:
    """Per pair: summed log-probability of the preferred answer minus the rejected one's."""
    from tunewise.methods.rlhf.evaluate import BATCH, Sample, prompt_ids, sequence_logprobs

    samples = []
    for index, pair in enumerate(pairs):
        prompt = Prompt(pair.prompt, pair.where)
        start = prompt_ids(tokenizer, prompt)
        for answer in (pair.chosen, pair.rejected):
            full = tokenizer.apply_chat_template([*prompt.messages, {"role": "assistant", "content": answer}],
                                                 tokenize=False)
            ids = list(tokenizer(full, add_special_tokens=False)["input_ids"])
            # The template's generation prompt is a prefix of the full conversation, so the answer's
            # tokens are what follows it (a template that re-tokenises the boundary keeps one more).
            shared = next((n for n, (a, b) in enumerate(zip(start, ids, strict=False)) if a != b),
                          min(len(start), len(ids)))
            samples.append(Sample(index, 0, ids[:shared], ids[shared:] or ids[-1:], answer))
    logprobs: list[tuple[float, int]] = []
    for begin in range(0, len(samples), BATCH):
        logprobs += sequence_logprobs(model, samples[begin:begin + BATCH], placement)
        if progress is not None:
            progress(min(len(pairs), (begin + BATCH) // 2), len(pairs))
    return [logprobs[2 * i][0] - logprobs[2 * i + 1][0] for i in range(len(pairs))]


def unchanged_share(base_answers: Mapping[str, str], tuned_answers: Mapping[str, str]) -> float | None:
    """Share of held-out prompts whose tuned answer is the base's, word for word (None: no prompts)."""
    shared = base_answers.keys() & tuned_answers.keys()
    if not shared:
        return None
    return sum(base_answers[k].strip() == tuned_answers[k].strip() for k in shared) / len(shared)


def judge_note(judge: str, reward_accuracy: float | None, algorithm: str) -> str:
    """One sentence for the report saying who judged and how far to trust it."""
    if judge == "pairs":
        return ("Judge: held-out preference pairs. Each model's log-probability margin between the preferred and "
                "the rejected answer; the tuned policy wins a pair when its margin is larger (DPO's implicit-reward "
                "accuracy on pairs it never trained on). It scores the data's answers, not what the policy writes: "
                "set config.dpo_reward_judge: true to judge written answers.")
    how = ("trained on the training pairs only and never used to train the policy, so it judges independently"
           if algorithm == "dpo" else
           "the reward the policy was optimised against, so part of a win may be reward hacking")
    text = (f"Judge: the run's reward model scores the base's and the tuned policy's greedy answers to each "
            f"held-out prompt ({how}); identical answers tie.")
    if reward_accuracy is not None:
        text += f" The judge ranks {reward_accuracy:.0%} of held-out preference pairs correctly"
        text += (f": a weak judge (under {WEAK_JUDGE:.0%}), so read the verdict with care." if
                 reward_accuracy < WEAK_JUDGE else ".")
    return text
