"""Where a bake-off ends up: ``bakeoff.jsonl`` (one line per held-out example) and report.md's first section.

Every method that runs a bake-off (:mod:`tunewise.plugins.bakeoff`) keeps each example's evidence —
its id (``file:line``), the prompt, the reference, both answers and both scores — so a user can check
any verdict line by line, and renders the same Markdown section at the top of its report. Secrets
are redacted from what is written, as in every other run file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunewise.plugins.bakeoff import BakeOff
from tunewise.plugins.redaction import redact, redact_data

BAKEOFF_FILE = "bakeoff.jsonl"

SHOWN_CHANGES = 3
"""Examples shown in the report for each direction (improved / got worse)."""


@dataclass(frozen=True)
class ExampleOutcome:
    """One held-out example in a bake-off: both models' answers and scores."""

    id: str
    """``file:line`` of the example (or another stable id, e.g. a question number)."""
    prompt: str
    reference: str
    base_answer: str
    result_answer: str
    base_score: float
    result_score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unique_ids(wheres: Sequence[str]) -> list[str]:
    """``file:line`` ids, with ``#2``, ``#3`` … added to repeats (a file named twice, several pairs from
    one ranked row), so each example keeps its own line in ``bakeoff.jsonl``."""
    seen: dict[str, int] = {}
    out = []
    for where in wheres:
        seen[where] = seen.get(where, 0) + 1
        out.append(where if seen[where] == 1 else f"{where}#{seen[where]}")
    return out


def write_bakeoff(out: Path, bake: BakeOff, examples: Sequence[ExampleOutcome]) -> Path:
    """Write ``out/bakeoff.jsonl``: a header line (the bake-off without its sentence's inputs) and one
    line per example, sorted by id so two runs on the same data diff cleanly."""
    path = out / BAKEOFF_FILE
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(redact_data({"bakeoff": bake.to_dict()}), ensure_ascii=False) + "\n")
        for example in sorted(examples, key=lambda e: e.id):
            fh.write(json.dumps(redact_data(example.to_dict()), ensure_ascii=False) + "\n")
    return path


def _cell(text: str, limit: int = 80) -> str:
    flat = " ".join(redact(text).split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|") or "(empty)"


def _id_cell(example_id: str, limit: int = 40) -> str:
    """An example id cut from the left: ``file:line`` ends with what tells examples apart."""
    flat = " ".join(redact(example_id).split())
    flat = flat if len(flat) <= limit else "…" + flat[-(limit - 1):]
    return flat.replace("|", "\\|") or "(empty)"


def _number(value: float) -> str:
    size = abs(value)
    return f"{value:.0f}" if size >= 1000 else f"{value:.3g}" if size >= 1 else f"{value:.3f}"


def bakeoff_markdown(bake: BakeOff, examples: Sequence[ExampleOutcome] = (), *,
                     shown: int = SHOWN_CHANGES) -> str:
    """report.md's bake-off section: the verdict, the numbers, per-label counts, reasons, examples."""
    lo, hi = bake.interval
    lines = [
        "## Bake-off: base vs result on the held-out split",
        "",
        f"**{redact(bake.sentence)}**",
        "",
        "| | base | result | difference | "
        f"{round(bake.confidence * 100)}% interval | won / tied / lost | sign test p |",
        "|---|---|---|---|---|---|---|",
        f"| {bake.metric_name} | {_number(bake.before)} | {_number(bake.after)} | {bake.difference:+.3g} | "
        f"[{lo:+.3g}, {hi:+.3g}] | {bake.wins} / {bake.ties} / {bake.losses} | {bake.sign_test_p:.2g} |",
        "",
        f"{bake.examples} {bake.unit}; paired bootstrap ({bake.resamples} resamples, seed {bake.seed}) "
        f"and an exact sign test; {'higher' if bake.higher_is_better else 'lower'} is better. "
        f"Every example's answers and scores: `{BAKEOFF_FILE}`.",
    ]
    if bake.classification is not None:
        lines += ["", "| label | examples | base correct | result correct |", "|---|---|---|---|"]
        lines += [f"| {_cell(c.label, 40)} | {c.examples} | {c.base_correct} | {c.result_correct} |"
                  for c in bake.classification.labels]
        if bake.classification.confusions:
            lines += ["", "Most common mistakes of the result (gold → answered):", ""]
            lines += [f"- {_cell(c.gold, 40)} → {_cell(c.predicted, 40)}: {c.count} (e.g. “{_cell(c.example, 60)}”)"
                      for c in bake.classification.confusions]
    if bake.reasons:
        lines += ["", "Why it may not be better, most likely first:", ""]
        lines += [f"- {r.reason} — {r.change}" + (f" (`{r.setting}`)" if r.setting else "") for r in bake.reasons]
    better = [e for e in examples if _improved(e, bake)]
    worse = [e for e in examples if _improved(e, bake) is False]
    for title, chosen in (("Improved", better), ("Got worse", worse)):
        if not chosen:
            continue
        lines += ["", f"{title} ({len(chosen)}), first {min(shown, len(chosen))}:", "",
                  "| example | reference | base | result |", "|---|---|---|---|"]
        lines += [f"| {_id_cell(e.id)} | {_cell(e.reference, 50)} | {_cell(e.base_answer, 50)} | "
                  f"{_cell(e.result_answer, 50)} |" for e in sorted(chosen, key=lambda e: e.id)[:shown]]
    return "\n".join(lines) + "\n"


def _improved(example: ExampleOutcome, bake: BakeOff) -> bool | None:
    """True when the result scored better on this example, False when worse, None on a tie."""
    if math.isclose(example.result_score, example.base_score, rel_tol=1e-9, abs_tol=1e-12):
        return None  # the same tolerance as bake_off's ties
    return (example.result_score > example.base_score) == bake.higher_is_better
