"""Choosing examples for one query: random, k nearest by embedding, or MMR; then fitting a token budget.

Every strategy ranks the whole pool; :func:`fit_budget` walks the ranking and keeps each example whose
tokens still fit, up to ``shots`` examples. So the budget is a hard cap and the best-ranked examples
that fit are used. MMR (maximal marginal relevance, Carbonell & Goldstein 1998) scores a candidate
``lambda * sim(query, c) - (1 - lambda) * max sim(c, already chosen)``: near the query, unlike the rest.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def rank_random(pool_size: int, rng: random.Random) -> list[int]:
    order = list(range(pool_size))
    rng.shuffle(order)
    return order


def rank_knn(query: Any, pool: Any) -> list[int]:
    """Pool indices by cosine similarity to the query, most similar first (vectors are unit length)."""
    import numpy as np

    similarities = pool @ np.asarray(query, dtype="float32").reshape(-1)
    return [int(i) for i in np.argsort(-similarities, kind="stable")]


def rank_mmr(query: Any, pool: Any, lambda_: float, limit: int) -> list[int]:
    """The first ``limit`` picks of greedy MMR, then the rest by similarity (as fall-backs for the budget)."""
    import numpy as np

    query = np.asarray(query, dtype="float32").reshape(-1)
    relevance = pool @ query
    chosen: list[int] = []
    redundancy = np.full(len(pool), -np.inf if len(pool) else 0.0, dtype="float32")
    available = np.ones(len(pool), dtype=bool)
    for _ in range(min(limit, len(pool))):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        scores = lambda_ * relevance - (1.0 - lambda_) * penalty
        scores[~available] = -np.inf
        best = int(np.argmax(scores))
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, pool @ pool[best])
    rest = [i for i in rank_knn(query, pool) if available[i]]
    return chosen + rest


def fit_budget(ranking: Sequence[int], costs: Sequence[int], budget: int, shots: int) -> list[int]:
    """The ranked examples kept: in ranking order, each one that still fits ``budget``, at most ``shots``."""
    kept: list[int] = []
    used = 0
    for index in ranking:
        if len(kept) == shots:
            break
        if used + costs[index] <= budget:
            kept.append(index)
            used += costs[index]
    return kept
