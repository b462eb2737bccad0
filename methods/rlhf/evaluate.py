"""Answering held-out prompts and measuring how far a tuned policy moved: greedy answers, KL to the reference.

:func:`greedy_answers` gives each prompt's greedy answer: what a user gets, and what the bake-off
judges (:mod:`tunewise.methods.rlhf.bakeoff`). For the KL, answers are sampled at temperature 1 with
no top-k/top-p cut, i.e. from the policy's own distribution, because the estimate is only unbiased
for such samples:

    KL(π ‖ π_ref) = E_{y~π}[ log π(y|x) − log π_ref(y|x) ]

estimated by the mean over sampled answers of the summed per-token log-probability differences
(teacher-forced on the sampled tokens, end-of-turn token included). Sampling is seeded per prompt
and sample, so two runs of one plan give the same estimate.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.methods._hf.device import Placement, autocast
from tunewise.methods.rlhf.preferences import Prompt
from tunewise.plugins.models import stop_ids

BATCH = 8


@dataclass
class Sample:
    """One sampled answer and the token ids it was made of."""

    prompt_index: int
    sample_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str


def prompt_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    text = tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def sample_answers(model: Any, tokenizer: Any, prompts: Sequence[Prompt], samples_per_prompt: int,
                   max_new_tokens: int, placement: Placement, seed: int) -> list[Sample]:
    """``samples_per_prompt`` answers per prompt at temperature 1, seeded by (seed, prompt, index)."""
    import torch

    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = stop_ids(model, tokenizer)
    jobs = [(i, k, prompt_ids(tokenizer, p)) for i, p in enumerate(prompts) for k in range(samples_per_prompt)]
    out: list[Sample] = []
    for start in range(0, len(jobs), BATCH):
        chunk = jobs[start:start + BATCH]
        width = max(len(ids) for _, _, ids in chunk)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, _, ids in chunk])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, _, ids in chunk])
        # One seed per batch, derived from its first job: the same prompts in the same order give the
        # same draws for every model, so base and tuned answers share their randomness.
        first = chunk[0]
        torch.manual_seed(seed + zlib.crc32(f"{first[0]}:{first[1]}".encode()))
        with torch.no_grad(), autocast(placement):
            generated = model.generate(
                input_ids=input_ids.to(placement.device), attention_mask=mask.to(placement.device),
                do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                pad_token_id=pad, eos_token_id=stop,
            )
        for row, (i, k, ids) in enumerate(chunk):
            completion = generated[row, width:].tolist()
            if any(t in stop for t in completion):
                end = next(n for n, t in enumerate(completion) if t in stop)
                completion = completion[:end + 1]
            text = tokenizer.decode(completion, skip_special_tokens=True).strip()
            out.append(Sample(i, k, ids, completion, text))
    if was_training:
        model.train()
    return out


def greedy_answers(model: Any, tokenizer: Any, prompts: Sequence[Prompt], max_new_tokens: int,
                   placement: Placement, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Each prompt's greedy answer (what a user of the model gets), in batches; ``progress(done, total)``
    after each batch."""
    import torch

    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = stop_ids(model, tokenizer)
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    answers: list[str] = []
    for start in range(0, len(encoded), BATCH):
        chunk = encoded[start:start + BATCH]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in chunk])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in chunk])
        with torch.no_grad(), autocast(placement):
            generated = model.generate(
                input_ids=input_ids.to(placement.device), attention_mask=mask.to(placement.device),
                do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=stop,
                temperature=None, top_k=None, top_p=None,
            )
        for row in range(len(chunk)):
            completion = generated[row, width:].tolist()
            end = next((n for n, t in enumerate(completion) if t in stop), len(completion))
            answers.append(tokenizer.decode(completion[:end], skip_special_tokens=True).strip())
        if progress is not None:
            progress(len(answers), len(encoded))
    if was_training:
        model.train()
    return answers


def sequence_logprobs(model: Any, samples: Sequence[Sample], placement: Placement) -> list[tuple[float, int]]:
    """(summed log-probability of the completion tokens, their count) for each sample."""
    import torch

    was_training = model.training
    model.eval()
    results: list[tuple[float, int]] = []
    for start in range(0, len(samples), BATCH):
        chunk = samples[start:start + BATCH]
        seqs = [s.prompt_ids + s.completion_ids for s in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=placement.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=placement.device)
        with torch.no_grad(), autocast(placement):
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        picked = logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        for row, sample in enumerate(chunk):
            begin = len(sample.prompt_ids) - 1  # position predicting the first completion token
            count = len(sample.completion_ids)
            results.append((float(picked[row, begin:begin + count].sum()), count))
    if was_training:
        model.train()
    return results


def kl_estimate(policy: Any, reference: Any, samples: Sequence[Sample], placement: Placement,
                reference_context: Any = None) -> dict[str, float]:
    """Monte-Carlo KL(policy ‖ reference) from answers sampled from the policy (nats per answer and token).

    ``reference_context`` (e.g. a LoRA model's ``disable_adapter``) is entered around the reference's
    forward passes when the reference is the policy itself with something switched off.
    """
    import contextlib

    if not samples:
        return {}
    policy_lp = sequence_logprobs(policy, samples, placement)
    with reference_context() if reference_context else contextlib.nullcontext():
        reference_lp = sequence_logprobs(reference, samples, placement)
    diffs = [p - r for (p, _), (r, _) in zip(policy_lp, reference_lp, strict=True)]
    tokens = sum(n for _, n in policy_lp)
    return {"kl": sum(diffs) / len(diffs), "kl_per_token": sum(diffs) / max(1, tokens)}


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
