"""Held-out evaluation: loss and perplexity for every method, greedy answers scored for supervised data,
and per-target losses (for the per-document perplexity bake-off of raw text)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.methods._hf.batches import MicroBatch
from tunewise.methods._hf.device import Placement, autocast
from tunewise.methods._hf.rouge import exact_match, rouge_l, words
from tunewise.plugins.models import stop_ids

GENERATION_BATCH = 8

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after each batch (the run's ``phase`` events)."""


def held_out_loss(model: Any, batches: Sequence[MicroBatch], loss_fn: Callable[[Any, MicroBatch], Any],
                  placement: Placement) -> dict[str, float]:
    """Mean next-token loss per target token over the held-out batches, and its perplexity."""
    import torch

    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=placement.device)
    count = 0
    with torch.no_grad(), autocast(placement):
        for mb in batches:
            total += loss_fn(model, mb.to(placement.device)).double()
            count += mb.num_targets
    if was_training:
        model.train()
    loss = total.item() / max(1, count)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "eval_tokens": float(count)}


@dataclass
class Generation:
    where: str
    prompt: str
    reference: str
    answer: str


def generate_answers(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], placement: Placement,
                     max_new_tokens: Sequence[int], progress: Progress | None = None) -> list[str]:
    """Greedy answers to token-id prompts (left-padded batches of similar length)."""
    import torch

    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop = stop_ids(model, tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: dict[int, str] = {}
    for s in range(0, len(order), GENERATION_BATCH):
        chunk = order[s:s + GENERATION_BATCH]
        width = max(len(prompts[i]) for i in chunk)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + list(prompts[i]) for i in chunk])
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in chunk])
        limit = max(max_new_tokens[i] for i in chunk)
        with torch.no_grad(), autocast(placement):
            out = model.generate(
                input_ids=ids.to(placement.device), attention_mask=mask.to(placement.device),
                max_new_tokens=limit, do_sample=False, pad_token_id=pad, eos_token_id=stop,
            )
        for row, i in enumerate(chunk):
            answers[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True).strip()
        if progress is not None:
            progress(len(answers), len(prompts))
    if was_training:
        model.train()
    return [answers[i] for i in range(len(prompts))]


def containment(prediction: str, reference: str) -> float:
    """1.0 when the reference's words appear in the answer, in order and next to each other, else 0.0."""
    ref = words(reference)
    if not ref:
        return 0.0
    return 1.0 if f" {' '.join(ref)} " in f" {' '.join(words(prediction))} " else 0.0


def score_answers(answers: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean exact match, containment and ROUGE-L F1 of answers against references."""
    if not answers:
        return {}
    n = len(answers)
    pairs = list(zip(answers, references, strict=True))
    return {
        "exact_match": sum(exact_match(a, r) for a, r in pairs) / n,
        "containment": sum(containment(a, r) for a, r in pairs) / n,
        "rouge_l": sum(rouge_l(a, r) for a, r in pairs) / n,
    }


def target_losses(model: Any, batches: Sequence[MicroBatch], placement: Placement,
                  progress: Progress | None = None) -> list[list[float]]:
    """The next-token loss (nats) of every target of every held-out row, row by row in batch order.

    One forward per micro-batch; the logits of the target positions only go through the loss, so
    the sum of the returned values is the summed loss :func:`held_out_loss` averages.
    """
    import torch
    import torch.nn.functional as F
    from tunewise.methods._hf.loss import model_inputs

    was_training = model.training
    model.eval()
    rows: list[list[float]] = []
    with torch.no_grad(), autocast(placement):
        for done, mb in enumerate(batches, start=1):
            batch = mb.to(placement.device)
            logits = model(**model_inputs(model, batch)).logits
            length = logits.shape[1]
            flat = logits.reshape(-1, logits.shape[-1]).index_select(0, batch.target_index)
            losses = F.cross_entropy(flat.float(), batch.target_ids, reduction="none").double().cpu().tolist()
            per_row: list[list[float]] = [[] for _ in range(logits.shape[0])]
            for position, loss in zip(mb.target_index.tolist(), losses, strict=True):
                per_row[position // length].append(loss)
            rows.extend(per_row)
            if progress is not None:
                progress(done, len(batches))
    if was_training:
        model.train()
    return rows
