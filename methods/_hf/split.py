"""The deterministic train / held-out split.

Each row is ranked by a hash of the seed and its content; the lowest-ranked rows are held out. The
same data and seed always give the same split, whatever order the rows come in, and duplicate
rows land on the same side (a duplicate can never leak from training into evaluation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def row_key(data: Mapping[str, Any]) -> str:
    """Canonical text of a row's content (its file and line do not count)."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def held_out_count(total: int, fraction: float, cap: int) -> int:
    """How many of ``total`` items to hold out: at least 1 when ``fraction`` > 0 and there are 2+."""
    if fraction <= 0 or total < 2:
        return 0
    return min(cap, total - 1, max(1, round(total * fraction)))


def split_indices(keys: Sequence[str], fraction: float, cap: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices into ``keys``; both keep the input order.

    Rows with equal keys share a rank, so all copies of a duplicate fall on one side (the held-out
    side may then hold slightly more than the count asked for).
    """
    n_eval = held_out_count(len(keys), fraction, cap)
    if n_eval == 0:
        return list(range(len(keys))), []
    ranks = [_rank(seed, k) for k in keys]
    cutoff = sorted(set(ranks))[: n_eval]
    chosen = set(cutoff)
    held = [i for i, r in enumerate(ranks) if r in chosen]
    if len(held) >= len(keys):  # every row identical: keep one for training
        held = held[1:]
    held_set = set(held)
    return [i for i in range(len(keys)) if i not in held_set], held
