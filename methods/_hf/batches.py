"""Micro-batches of packed sequences, in a data order fixed by the seed and the epoch.

The order of every epoch is a pure function of ``(seed, epoch)``, so step ``k`` of a resumed run
sees exactly the batches an uninterrupted run saw. Everything the loss needs to normalise by
(target counts, token counts) is counted here on the host, so training needs no device syncs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.methods._hf.encoding import IGNORE
from tunewise.methods._hf.packing import Packed


@dataclass
class MicroBatch:
    """Tensors of one forward/backward pass plus host-side counts."""

    input_ids: Any
    position_ids: Any
    targets: Any
    """Next-token targets, ``IGNORE`` where nothing is predicted (shape of ``input_ids``)."""
    target_index: Any
    """Flat positions (into ``batch*length``) of the targets that carry loss."""
    target_ids: Any
    """The token ids at ``target_index``."""
    num_targets: int
    num_tokens: int
    """Real (non-padding) tokens."""
    attention_mask: Any = None
    """Block-diagonal causal mask ``(batch, 1, length, length)``, True = may attend; None when every
    row is one sequence (then attention is plain causal, the fastest path)."""

    def to(self, device: Any) -> MicroBatch:
        non_blocking = str(device).startswith("cuda")

        def move(t: Any) -> Any:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return MicroBatch(
            move(self.input_ids), move(self.position_ids), move(self.targets), move(self.target_index),
            move(self.target_ids), num_targets=self.num_targets, num_tokens=self.num_tokens,
            attention_mask=move(self.attention_mask),
        )


def block_causal_mask(position_ids: Any) -> Any:
    """The mask that keeps packed sequences apart, from position ids that restart per sequence.

    Built here once per batch: cheaper than letting transformers derive it in every forward.
    Returns None when no row holds more than one sequence.
    """
    import torch

    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    segment = starts.long().cumsum(dim=1)
    if bool((segment[:, -1] == 1).all()):
        return None
    length = position_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    return ((segment[:, :, None] == segment[:, None, :]) & causal)[:, None]


def collate(rows: Sequence[Packed], pad_id: int) -> MicroBatch:
    """Pad rows to the longest one; padding is its own position run with no targets."""
    import torch

    length = max(len(r) for r in rows)
    ids, pos, tgt = [], [], []
    for r in rows:
        pad = length - len(r)
        ids.append(r.input_ids + [pad_id] * pad)
        pos.append(r.position_ids + list(range(pad)))
        tgt.append(r.targets + [IGNORE] * pad)
    input_ids = torch.tensor(ids, dtype=torch.long)
    targets = torch.tensor(tgt, dtype=torch.long)
    flat = targets.view(-1)
    index = (flat != IGNORE).nonzero().view(-1)
    position_ids = torch.tensor(pos, dtype=torch.long)
    mask = block_causal_mask(position_ids)
    tensors = [input_ids, position_ids, targets, index, flat[index].clone()]
    if torch.cuda.is_available():
        tensors = [t.pin_memory() for t in tensors]
        mask = mask.pin_memory() if mask is not None else None
    ids_t, pos_t, tgt_t, index_t, target_ids = tensors
    return MicroBatch(ids_t, pos_t, tgt_t, index_t, target_ids, num_targets=int(index.numel()),
                      num_tokens=sum(len(r) for r in rows), attention_mask=mask)


class PackedBatches:
    """Training batches over packed sequences: ``grad_accum`` micro-batches of ``batch_size`` per step."""

    def __init__(self, rows: Sequence[Packed], batch_size: int, grad_accum: int, seed: int, pad_id: int) -> None:
        if not rows:
            raise ValueError("no training sequences")
        self.rows = list(rows)
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.seed = seed
        self.pad_id = pad_id
        self.steps_per_epoch = math.ceil(len(self.rows) / (batch_size * grad_accum))
        self._order_cache: tuple[int, list[int]] | None = None

    def order(self, epoch: int) -> list[int]:
        """The row order of ``epoch`` (string seeds are hashed with SHA-512: stable across runs)."""
        if self._order_cache is None or self._order_cache[0] != epoch:
            order = list(range(len(self.rows)))
            random.Random(f"tunewise:{self.seed}:{epoch}").shuffle(order)
            self._order_cache = (epoch, order)
        return self._order_cache[1]

    def step_batches(self, epoch: int, index: int) -> list[MicroBatch]:
        order = self.order(epoch)
        per_step = self.batch_size * self.grad_accum
        chosen = order[index * per_step:(index + 1) * per_step]
        return [collate([self.rows[i] for i in chosen[s:s + self.batch_size]], self.pad_id)
                for s in range(0, len(chosen), self.batch_size)]

    @property
    def tokens(self) -> int:
        return sum(len(r) for r in self.rows)


def eval_batches(rows: Sequence[Packed], batch_size: int, pad_id: int) -> list[MicroBatch]:
    """Held-out sequences in their stored order."""
    return [collate(rows[s:s + batch_size], pad_id) for s in range(0, len(rows), batch_size)]
