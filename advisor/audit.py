"""Data audit: what a file or folder holds, counted with the model's own tokenizer (no weights loaded).

Reads the source with :mod:`tunewise.plugins.data` (every format it knows), detects the shape,
counts rows and tokens (the ``tokenizers`` library on the model's ``tokenizer.json``), and flags
exact duplicates (after whitespace normalisation), empty rows and examples longer than the training
sequence length. Every problem is ``file:line: problem``. :func:`apply_audit` puts the counts into a
profile: they replace what the answers said for the same kind of data.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tunewise.plugins.data import Row, preference_pairs, row_shape, row_text, scan
from tunewise.plugins.types import Profile, to_jsonable

DEFAULT_MAX_TOKENS = 2048
"""Training sequence length examples are checked against when the model's context is longer."""
EXAMPLE_SHAPES = ("messages", "instruction", "prompt_completion", "preference")
"""Shapes whose rows are single training examples (over-long ones get truncated); raw text and
documents are chunked instead, so their length is not a problem."""
CHARS_PER_TOKEN = 4.0
"""Fallback when no tokenizer.json is available: about four characters per token in English."""
MAX_LISTED = 50
"""How many duplicates / over-long rows a report lists (counts are always complete)."""


@dataclass(frozen=True)
class TokenStats:
    total: int
    mean: float
    median: float
    p95: float
    max: int
    min: int

    @classmethod
    def of(cls, counts: Sequence[int]) -> TokenStats:
        ordered = sorted(counts)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return cls(total=sum(ordered), mean=statistics.fmean(ordered), median=float(statistics.median(ordered)),
                   p95=float(p95), max=ordered[-1], min=ordered[0])


@dataclass(frozen=True)
class AuditReport:
    """What the audit found; ``counts`` are what :func:`apply_audit` puts into a profile."""

    source: str
    shape: str | None
    files: tuple[str, ...]
    rows: int
    usable_rows: int
    """Rows without problems and not duplicates of an earlier row."""
    tokens: TokenStats | None
    tokenizer: str
    max_tokens: int
    duplicates: int
    empty: int
    over_long: int
    problems: tuple[str, ...]
    """Every problem as ``file:line: problem`` (bad rows, duplicates, over-long examples; capped lists)."""
    counts: dict[str, Any] = field(default_factory=dict)
    long_documents: int = 0
    """Documents (raw text, not examples) longer than ``max_tokens``: not a problem, training splits them."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def _tokenizer(model: str | None) -> tuple[Any, str, int | None]:
    """A ``tokenizers.Tokenizer`` from the model's tokenizer.json (None if absent), its label, its context."""
    from tunewise.plugins.bounded_load import read_json
    from tunewise.plugins.errors import ModelNotFoundError
    from tunewise.plugins.models import resolve_model

    try:
        ref = resolve_model(model, prepare=False)
    except ModelNotFoundError as exc:
        return None, f"none ({exc}); ~{CHARS_PER_TOKEN:g} characters per token", None
    context = None
    config = ref.path / "config.json"
    if config.is_file():
        values = read_json(config, what="a model config")  # a downloaded file: bounded, refused by file:line
        context = values.get("max_position_embeddings") if isinstance(values, dict) else None
    file = ref.path / "tokenizer.json"
    if not file.is_file():
        return None, f"none (no tokenizer.json in {ref.path}); ~{CHARS_PER_TOKEN:g} characters per token", context
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(file)), f"{ref.name} (tokenizer.json)", context


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    if tokenizer is None:
        return [max(1, round(len(t) / CHARS_PER_TOKEN)) if t else 0 for t in texts]
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    return [len(e.ids) for e in encodings]


def audit(path: str | Path, model: str | None = None, max_tokens: int | None = None) -> AuditReport:
    """Audit a data file or folder; ``model`` picks the tokenizer (None = the embedded model).

    ``max_tokens`` is the longest example accepted (default: the model's context, at most
    :data:`DEFAULT_MAX_TOKENS`). Raises :class:`~tunewise.plugins.data.DataError` only when the source
    cannot be read at all; bad rows are reported in the result.
    """
    result = scan(path)
    tokenizer, label, context = _tokenizer(model)
    limit = max_tokens or min(DEFAULT_MAX_TOKENS, int(context or DEFAULT_MAX_TOKENS))
    shape = result.shape
    problems = [str(p) for p in result.problems]
    bad_places = {(p.file, p.line) for p in result.problems}
    empty = sum(1 for p in result.problems if "empty" in p.message)
    rows: list[Row] = list(result.rows)
    texts = [row_text(r.data, row_shape(r.data) or shape or "text") for r in rows]
    token_counts = _count_tokens(tokenizer, texts) if rows else []
    seen: dict[str, Row] = {}
    duplicates = over_long = long_documents = 0
    usable: list[tuple[Row, int]] = []
    listed_dupes = listed_long = 0
    for row, text, tokens in zip(rows, texts, token_counts, strict=True):
        if (row.file, row.line) in bad_places:
            continue
        key = hashlib.sha1(_normalise(text).encode()).hexdigest()
        first = seen.get(key)
        if first is not None:
            duplicates += 1
            if listed_dupes < MAX_LISTED:
                problems.append(f"{row.where}: duplicate of {first.where}")
                listed_dupes += 1
            continue
        seen[key] = row
        if shape in EXAMPLE_SHAPES and tokens > limit:
            over_long += 1
            if listed_long < MAX_LISTED:
                problems.append(f"{row.where}: {tokens:,} tokens, longer than {limit:,}: it would be truncated")
                listed_long += 1
        elif tokens > limit:
            long_documents += 1
        usable.append((row, tokens))
    for what, n, listed in (("duplicates", duplicates, listed_dupes), ("over-long rows", over_long, listed_long)):
        if n > listed:
            problems.append(f"{result.source}: … and {n - listed} more {what}")
    stats = TokenStats.of([t for _, t in usable]) if usable else None
    return AuditReport(
        source=result.source, shape=shape, files=result.files, rows=len(rows), usable_rows=len(usable),
        tokens=stats, tokenizer=label, max_tokens=limit, duplicates=duplicates, empty=empty,
        over_long=over_long, problems=tuple(problems), counts=_counts(shape, usable, stats),
        long_documents=long_documents,
    )


def _counts(shape: str | None, usable: list[tuple[Row, int]], stats: TokenStats | None) -> dict[str, Any]:
    """The data counts a profile takes from the audit (only those of the detected kind)."""
    if shape is None or stats is None:
        return {}
    if shape in ("messages", "instruction", "prompt_completion"):
        return {"labeled_examples": len(usable), "avg_tokens_per_example": round(stats.mean, 1)}
    if shape == "preference":
        pairs = sum(len(preference_pairs(row.data)) for row, _ in usable)
        responses = sum(len(row.data.get("responses") or [0, 0]) for row, _ in usable)
        return {"preference_pairs": pairs, "avg_tokens_per_example": round(stats.total / max(1, responses), 1)}
    if shape == "documents":
        return {"documents": len(usable), "document_tokens": stats.total}
    return {"unlabeled_tokens": stats.total}


def apply_audit(profile: Profile, report: AuditReport) -> Profile:
    """``profile`` with the audit's counts replacing the answers' numbers for the same kind of data."""
    if not report.counts:
        return profile
    data = replace(profile.data, **report.counts)
    return replace(profile, data=data)


def audit_lines(report: AuditReport) -> list[tuple[str, str]]:
    """The report as (label, value) pairs for tables and the TUI."""
    lines = [("source", report.source), ("shape", report.shape or "unknown"),
             ("files", f"{len(report.files):,}"), ("rows", f"{report.rows:,}"),
             ("usable rows", f"{report.usable_rows:,}"), ("tokenizer", report.tokenizer)]
    if report.tokens:
        t = report.tokens
        lines += [("tokens", f"{t.total:,}"),
                  ("tokens per row", f"mean {t.mean:,.1f}, median {t.median:,.0f}, p95 {t.p95:,.0f}, "
                                     f"min {t.min:,}, max {t.max:,}")]
    lines += [("duplicates", f"{report.duplicates:,}"), ("empty rows", f"{report.empty:,}")]
    if report.shape in EXAMPLE_SHAPES:
        lines.append((f"examples over {report.max_tokens:,} tokens",
                      f"{report.over_long:,}" + (" (would be truncated)" if report.over_long else "")))
    else:
        # A document longer than the context is normal: training cuts it into context-sized pieces, so
        # "over N: 0" next to "max 15,122" would read as a contradiction.
        lines.append((f"documents over {report.max_tokens:,} tokens",
                      f"{report.long_documents:,}" + (" (split into pieces for training)" if report.long_documents
                                                      else "")))
    lines += [(f"→ {k.replace('_', ' ')}", f"{v:,}" if isinstance(v, int) else str(v)) for k, v in report.counts.items()]
    return lines
