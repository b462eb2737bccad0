"""The range of every number a user gives tunewise: command-line flags and answers-file fields.

A number outside its range (``nan``, ``inf``, ``1e300``, a negative count, a seed past 2**32) is
refused where it is read, naming the flag or field, instead of failing later as ``int(inf)``, a C
``long`` overflow or a price shown as ``$infM``. The upper bounds lie far beyond any real run and
exist to keep the arithmetic finite: 100 trillion parameters, 10^15 tokens, 100,000 GPUs.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def shown(x: float) -> str:
    """A bound as people read it: 1,000,000,000,000 rather than 1e+12."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,g}"


@dataclass(frozen=True)
class Range:
    """Finite numbers from ``low`` (excluded with ``above_low``) to ``high``; ``whole`` for integers."""

    low: float
    high: float
    whole: bool = False
    above_low: bool = False
    counts: bool = False
    """Also accept counts written as text: ``2e9``, ``500M``, ``1.5B``, ``20_000``."""

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        if self.above_low:
            return f"{kind} > {shown(self.low)} and ≤ {shown(self.high)}"
        return f"{kind} from {shown(self.low)} to {shown(self.high)}"

    def check(self, value: Any) -> int | float:
        """``value`` as an int (``whole``) or float inside the range; ValueError saying what is allowed."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {self.describe()}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number ({self.describe()})")
        if (self.whole and value != int(value)) or value < self.low or value > self.high \
                or (self.above_low and value == self.low):
            raise ValueError(f"must be {self.describe()}")
        return int(value) if self.whole else float(value)


_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_number(text: str, counts: bool = False) -> int | float:
    """A number from command-line text (``counts``: also ``500M``, ``1.5B``, ``20_000``); ValueError otherwise."""
    cleaned = text.strip().replace("_", "")
    if counts:
        cleaned = cleaned.replace(",", "").lower()
        match = re.fullmatch(r"([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt])", cleaned)
        if match:
            return float(match.group(1)) * _SUFFIX[match.group(2)]
    if re.fullmatch(r"[+-]?[0-9]+", cleaned):
        if len(cleaned.lstrip("+-0")) > 30:  # beyond every range (and int() refuses thousands of digits)
            return -(10**31) if cleaned.startswith("-") else 10**31
        return int(cleaned)
    try:
        return float(cleaned)  # also nan and inf: refused by the range, with the range in the message
    except ValueError:
        raise ValueError("must be a number" + (" (e.g. 20000, 2e9, 500M)" if counts else "")) from None


def flag(allowed: Range) -> Callable[[str], int | float]:
    """An argparse ``type=`` that accepts only numbers in ``allowed`` (argparse names the flag, exit 2)."""

    def convert(text: str) -> int | float:
        try:
            return allowed.check(parse_number(text, allowed.counts))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc}, got {text[:40]!r}") from None

    convert.__name__ = "number"  # argparse shows "invalid number value" if a message is ever missing
    convert.allowed = allowed  # type: ignore[attr-defined]  # for help texts and tests
    return convert


PARAMS_B = Range(0, 100_000, above_low=True)
"""Model size in billions of parameters."""
TOKENS = Range(0, 1e15, counts=True)
"""Tokens of data (what a run processes, raw text, documents to index)."""
TRAINING_TOKENS = Range(0, 1e15, above_low=True, counts=True)
EXAMPLES = Range(0, 1e12, whole=True, counts=True)
"""Documents, labelled examples, preference pairs."""
QUERIES_PER_DAY = Range(0, 1e12, whole=True, counts=True)
GPUS = Range(1, 100_000, whole=True)
PROCESSES = Range(1, 4096, whole=True)
SEQ_LEN = Range(1, 2**24, whole=True)
"""Tokens per sequence (16 M: beyond every model's context)."""
GENERATED_TOKENS = Range(1, 1_000_000, whole=True)
STEPS = Range(1, 10**9, whole=True)
BATCH = Range(1, 1_000_000, whole=True)
RESULTS = Range(1, 100_000, whole=True)
"""How many search results (``--k``)."""
CHUNK_TOKENS = Range(1, 1_000_000, whole=True)
OVERLAP_TOKENS = Range(0, 1_000_000, whole=True)
SEED = Range(0, 2**32 - 1, whole=True)
"""What every random generator tunewise seeds accepts (NumPy's limit)."""
TEMPERATURE = Range(0, 100, above_low=True)
RELEVANCE = Range(-1, 1)
"""A cosine similarity."""
USD = Range(0, 1e12)
DAYS = Range(0, 36_500, above_low=True)
