"""Zero-shot vs few-shot on held-out examples: per-example scores and the prompt tokens examples add.

Exact match compares the first line of the model's reply with the reference answer as labels are
compared (:func:`tunewise.plugins.task_detection.normalise_label`: case, spacing, surrounding quotes and
trailing punctuation ignored), so ``Billing.`` matches ``billing`` but ``The answer is billing`` does
not: keeping to the answer format is part of the task. Free-text answers are also scored by ROUGE-L
and containment of the reference.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.methods.in_context.examples import Example, Turn
from tunewise.methods.in_context.prompting import PromptBuilder
from tunewise.methods.in_context.selection import fit_budget, rank_knn, rank_mmr, rank_random
from tunewise.plugins.task_detection import normalise_label

Progress = Callable[[int, int], None]
"""``progress(done, total)`` after each batch of generations."""


def exact_match(prediction: str, reference: str) -> bool:
    """The reply's first line names the reference (as labels are compared)."""
    return bool(normalise_label(reference)) and normalise_label(prediction) == normalise_label(reference)


def text_scores(prediction: str, reference: str) -> dict[str, float]:
    """Exact match, ROUGE-L F1 and containment (the whole reference appears in the reply) of one answer."""
    from tunewise.methods._hf.rouge import normalise, rouge_l

    ref = normalise(reference)
    return {"exact_match": float(exact_match(prediction, reference)), "rouge_l": rouge_l(prediction, reference),
            "containment": float(bool(ref) and f" {ref} " in f" {normalise(prediction)} ")}


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


Generate = Callable[..., list[str]]
"""``generate(prompts[, progress])``: one reply per chat prompt, in order."""


class ChatGenerator:
    """Greedy replies to batches of chat prompts (left-padded) from a causal LM."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int, batch_size: int = 8) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def __call__(self, prompts: list[list[Turn]], progress: Progress | None = None) -> list[str]:
        import torch

        texts = [self.tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
        # Batches of similar length waste little compute on padding; replies go back in the prompts' order.
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        replies: dict[int, str] = {}
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        try:
            for begin in range(0, len(order), self.batch_size):
                chosen = order[begin:begin + self.batch_size]
                batch = self.tokenizer([texts[i] for i in chosen], return_tensors="pt", padding=True,
                                       add_special_tokens=False)
                batch = {k: v.to(self.model.device) for k, v in batch.items()}
                with torch.inference_mode():
                    output = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                                 pad_token_id=self.tokenizer.pad_token_id)
                width = batch["input_ids"].shape[1]
                for i, row in zip(chosen, output, strict=True):
                    replies[i] = self.tokenizer.decode(row[width:], skip_special_tokens=True).strip()
                if progress is not None:
                    progress(len(replies), len(texts))
        finally:
            self.tokenizer.padding_side = side
        return [replies[i] for i in range(len(texts))]


@dataclass
class Outcome:
    """Results of one condition (zero-shot or one selection strategy) on the held-out set."""

    name: str
    accuracy: float
    """Exact match of the reply's first line (accuracy for a classification)."""
    extra_tokens_per_query: float
    prompt_tokens_per_query: float
    shots_per_query: float
    max_extra_tokens: int
    records: list[dict[str, Any]]
    free_text: bool = False
    """Answers are free text: ``metrics`` adds ROUGE-L and containment and names exact match as such."""

    @property
    def replies(self) -> list[str]:
        return [str(r["prediction"]) for r in self.records]

    def mean(self, key: str) -> float:
        return statistics.fmean(float(r[key]) for r in self.records) if self.records else 0.0

    def metrics(self) -> dict[str, float]:
        costs = {"extra_prompt_tokens": self.extra_tokens_per_query, "prompt_tokens": self.prompt_tokens_per_query,
                 "shots": self.shots_per_query}
        if self.free_text:
            return {"rouge_l": self.mean("rouge_l"), "exact_match": self.accuracy,
                    "containment": self.mean("containment"), **costs}
        return {"accuracy": self.accuracy, **costs}


def evaluate_condition(name: str, held_out: Sequence[Example], builder: PromptBuilder, generate: Generate,
                       selector: Selector | None = None, query_vectors: Any = None, *,
                       progress: Progress | None = None, free_text: bool = False) -> Outcome:
    """Scores of one condition; ``selector`` None means zero-shot. ``progress`` follows the generations."""
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
    replies = generate(prompts, progress) if progress is not None else generate(prompts)
    records = []
    correct = 0
    for query, reply, chosen, added, total in zip(held_out, replies, chosen_per_query, extra, totals, strict=True):
        hit = exact_match(reply, query.answer)
        correct += hit
        records.append({"condition": name, "where": query.where, "input": query.query_text, "reference": query.answer,
                        "prediction": reply, "correct": hit, **text_scores(reply, query.answer),
                        "shots": len(chosen), "extra_prompt_tokens": added, "prompt_tokens": total,
                        "examples": [selector.pool[i].where for i in chosen] if selector is not None else []})
    count = max(len(held_out), 1)
    return Outcome(name, correct / count, statistics.fmean(extra) if extra else 0.0,
                   statistics.fmean(totals) if totals else 0.0,
                   statistics.fmean(len(c) for c in chosen_per_query) if chosen_per_query else 0.0,
                   max(extra, default=0), records, free_text)
