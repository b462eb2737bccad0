"""Zero-shot vs few-shot on held-out examples: exact-match accuracy and the prompt tokens examples add.

Exact match compares the first line of the model's reply with the reference answer after lower-casing
and removing punctuation and surrounding space (so ``Billing.`` matches ``billing`` but ``The answer is
billing`` does not: keeping to the answer format is part of the task).
"""

from __future__ import annotations

import random
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.methods.in_context.examples import Example, Turn
from tunewise.methods.in_context.prompting import PromptBuilder
from tunewise.methods.in_context.selection import fit_budget, rank_knn, rank_mmr, rank_random

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalize_answer(text: str) -> str:
    first = next((line for line in text.strip().splitlines() if line.strip()), "")
    return " ".join(_PUNCT.sub(" ", first.lower()).split())


def exact_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


@dataclass
class Selector:
    """Picks examples from a pool for each query under a token budget."""

    pool: Sequence[Example]
    costs: Sequence[int]
    shots: int
    budget: int
    strategy: str
    vectors: Any = None
    """Unit embeddings of the pool's query texts (knn and mmr)."""
    mmr_lambda: float = 0.5
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        if self.strategy in ("knn", "mmr") and self.vectors is None:
            raise ValueError(f"{self.strategy} selection needs pool embeddings")

    def select(self, query_vector: Any = None) -> list[int]:
        """Pool indices for one query, best first."""
        if self.strategy == "random":
            ranking = rank_random(len(self.pool), self._rng)
        elif self.strategy == "knn":
            ranking = rank_knn(query_vector, self.vectors)
        elif self.strategy == "mmr":
            ranking = rank_mmr(query_vector, self.vectors, self.mmr_lambda, limit=self.shots)
        else:
            raise ValueError(f"unknown selection {self.strategy!r}")
        return fit_budget(ranking, self.costs, self.budget, self.shots)


Generate = Callable[[list[list[Turn]]], list[str]]


class ChatGenerator:
    """Greedy replies to batches of chat prompts (left-padded) from a causal LM."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int, batch_size: int = 8) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def __call__(self, prompts: list[list[Turn]]) -> list[str]:
        import torch

        replies: list[str] = []
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        try:
            for begin in range(0, len(prompts), self.batch_size):
                texts = [self.tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                         for p in prompts[begin:begin + self.batch_size]]
                batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                batch = {k: v.to(self.model.device) for k, v in batch.items()}
                with torch.inference_mode():
                    output = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                                 pad_token_id=self.tokenizer.pad_token_id)
                width = batch["input_ids"].shape[1]
                replies.extend(self.tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in output)
        finally:
            self.tokenizer.padding_side = side
        return replies


@dataclass
class Outcome:
    """Results of one condition (zero-shot or one selection strategy) on the held-out set."""

    name: str
    accuracy: float
    extra_tokens_per_query: float
    prompt_tokens_per_query: float
    shots_per_query: float
    max_extra_tokens: int
    records: list[dict[str, Any]]

    def metrics(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "extra_prompt_tokens": self.extra_tokens_per_query,
                "prompt_tokens": self.prompt_tokens_per_query, "shots": self.shots_per_query}


def evaluate_condition(name: str, held_out: Sequence[Example], builder: PromptBuilder, generate: Generate,
                       selector: Selector | None = None, query_vectors: Any = None) -> Outcome:
    """Accuracy of one condition; ``selector`` None means zero-shot."""
    prompts: list[list[Turn]] = []
    chosen_per_query: list[list[int]] = []
    extra: list[int] = []
    totals: list[int] = []
    for position, query in enumerate(held_out):
        chosen = [] if selector is None else selector.select(
            None if query_vectors is None else query_vectors[position])
        examples = [selector.pool[i] for i in chosen] if selector is not None else []
        messages = builder.messages(examples, query)
        total = builder.count(messages)
        prompts.append(messages)
        chosen_per_query.append(chosen)
        totals.append(total)
        extra.append(total - builder.count(builder.messages([], query)))
    replies = generate(prompts)
    records = []
    correct = 0
    for query, reply, chosen, added, total in zip(held_out, replies, chosen_per_query, extra, totals, strict=True):
        hit = exact_match(reply, query.answer)
        correct += hit
        records.append({"condition": name, "where": query.where, "input": query.query_text, "reference": query.answer,
                        "prediction": reply, "correct": hit, "shots": len(chosen), "extra_prompt_tokens": added,
                        "prompt_tokens": total,
                        "examples": [selector.pool[i].where for i in chosen] if selector is not None else []})
    count = max(len(held_out), 1)
    return Outcome(name, correct / count, statistics.fmean(extra) if extra else 0.0,
                   statistics.fmean(totals) if totals else 0.0,
                   statistics.fmean(len(c) for c in chosen_per_query) if chosen_per_query else 0.0,
                   max(extra, default=0), records)
