"""The markdown report of an in-context run: the bake-off first, then every condition's scores and the tokens
examples cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tunewise.plugins.redaction import redact


def render_report(*, summary: Mapping[str, Any], outcomes: Sequence[Any], chosen: str,
                  samples: Sequence[Mapping[str, Any]], wall_s: float, bakeoff: str = "") -> str:
    """The report; ``bakeoff`` (:func:`~tunewise.plugins.bakeoff_report.bakeoff_markdown`) is its first section."""
    lines = ["# In-context learning run report", ""]
    if bakeoff:
        lines += [bakeoff.rstrip(), ""]
    lines += ["## Run", ""]
    lines += [f"- {key}: {value}" for key, value in summary.items()]
    free_text = any(getattr(o, "free_text", False) for o in outcomes)
    scores = "ROUGE-L | exact match | containment" if free_text else "accuracy"
    lines += ["", "## Zero-shot vs few-shot", "",
              "accuracy / exact match: the reply's first line names the reference (case, spacing, quotes and "
              "trailing punctuation ignored); ROUGE-L: longest common word subsequence F1 with the reference; "
              "extra prompt tokens: what the examples add to every query's prompt (the per-query cost of this "
              "method).", "",
              f"| condition | {scores} | extra prompt tokens / query | max extra | prompt tokens / query | shots |",
              "|---|" + "---|" * (scores.count("|") + 1) + "---|---|---|---|"]
    for outcome in outcomes:
        mark = " (plan's choice)" if outcome.name == chosen else ""
        values = (f"{outcome.mean('rouge_l'):.3f} | {outcome.accuracy:.3f} | {outcome.mean('containment'):.3f}"
                  if free_text else f"{outcome.accuracy:.3f}")
        lines.append(f"| {outcome.name}{mark} | {values} | {outcome.extra_tokens_per_query:.1f} | "
                     f"{outcome.max_extra_tokens} | {outcome.prompt_tokens_per_query:.1f} | "
                     f"{outcome.shots_per_query:.1f} |")
    if samples:
        lines += ["", "## Sample predictions", "", "| input | reference | zero-shot | few-shot |", "|---|---|---|---|"]
        for sample in samples:
            cells = [redact(str(sample[k])).replace("|", "\\|").replace("\n", " ")[:120]  # redacted before cut
                     for k in ("input", "reference", "zero_shot", "few_shot")]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Wall time: {wall_s:.1f} s", ""]
    return "\n".join(lines)
