"""Packing examples and documents into fixed-length sequences without cross-example attention.

Each packed sequence carries ``position_ids`` that restart at 0 where an example or document
starts. Given position ids and no attention mask, transformers builds a block-diagonal causal
mask from them (``find_packed_sequence_indices``), so packed examples never see each other.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from tunewise.methods._hf.encoding import IGNORE, Document, Example


@dataclass
class Packed:
    """One training sequence: several examples (or document pieces) back to back."""

    input_ids: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add(self, input_ids: Sequence[int], targets: Sequence[int], where: str) -> None:
        self.input_ids.extend(input_ids)
        self.targets.extend(targets)
        self.position_ids.extend(range(len(input_ids)))
        self.sources.append(where)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_targets(self) -> int:
        return sum(1 for t in self.targets if t != IGNORE)


def one_per_sequence(examples: Sequence[Example]) -> list[Packed]:
    """No packing: each example is its own sequence (padded later, per micro-batch)."""
    out = []
    for ex in examples:
        row = Packed()
        row.add(ex.input_ids, ex.targets, ex.where)
        out.append(row)
    return out


def pack_examples(examples: Sequence[Example], seq_len: int) -> list[Packed]:
    """Best-fit decreasing: longest examples first, each into the fullest sequence it still fits.

    Deterministic (ties broken by input order). Examples must already be at most ``seq_len`` long.
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    rows: list[Packed] = []
    free: list[tuple[int, int]] = []  # (space left, row index), kept sorted
    for i in order:
        ex = examples[i]
        need = len(ex.input_ids)
        if need > seq_len:
            raise ValueError(f"{ex.where}: example of {need} tokens is longer than seq_len {seq_len}")
        slot = bisect.bisect_left(free, (need, -1))
        if slot < len(free):
            space, r = free.pop(slot)
        else:
            space, r = seq_len, len(rows)
            rows.append(Packed())
        rows[r].add(ex.input_ids, ex.targets, ex.where)
        if space - need > 0:
            bisect.insort(free, (space - need, r))
    return rows


def pack_documents(docs: Sequence[Document], seq_len: int, cross_document_attention: bool = False) -> list[Packed]:
    """Concatenate documents and cut the stream into ``seq_len`` pieces (the last one may be shorter).

    Targets never cross a document boundary. Without ``cross_document_attention`` positions restart
    at each document, so a document only attends to itself; with it the whole sequence is one
    causal window (the classic GPT-style concatenation).
    """
    rows: list[Packed] = []
    current = Packed()
    position = 0
    for doc in docs:
        ids = doc.input_ids
        targets = [*ids[1:], IGNORE]
        start = 0
        doc_position = 0
        while start < len(ids):
            room = seq_len - len(current)
            piece = slice(start, start + room)
            n = len(ids[piece])
            current.input_ids.extend(ids[piece])
            current.targets.extend(targets[piece])
            if cross_document_attention:
                current.position_ids.extend(range(position, position + n))
                position += n
            else:
                current.position_ids.extend(range(doc_position, doc_position + n))
                doc_position += n
            if not current.sources or current.sources[-1] != doc.where:
                current.sources.append(doc.where)
            start += n
            if len(current) == seq_len:
                rows.append(current)
                current = Packed()
                position = 0
                # A document continuing into the next sequence starts again at position 0 there.
                doc_position = 0
    if len(current):
        rows.append(current)
    return rows
