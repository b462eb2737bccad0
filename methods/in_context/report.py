"""The markdown report of an in-context run: zero-shot vs few-shot accuracy and the tokens examples cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tunewise.plugins.redaction import redact


def render_report(*, summary: Mapping[str, Any], outcomes: Sequence[Any], chosen: str,
                  samples: Sequence[Mapping[str, Any]], wall_s: float) -> str:
    lines = ["# In-context learning run report", ""]
    lines += [f"- {key}: {value}" for key, value in summary.items()]
    lines += ["", "## Zero-shot vs few-shot", "",
              "accuracy: exact match of the reply's first line with the reference (case and punctuation "
              "ignored); extra prompt tokens: what the examples add to every query's prompt (the per-query "
              "cost of this method).", "",
              "| condition | accuracy | extra prompt tokens / query | max extra | prompt tokens / query | shots |",
              "|---|---|---|---|---|---|"]
    for outcome in outcomes:
        mark = " (plan's choice)" if outcome.name == chosen else ""
        lines.append(f"| {outcome.name}{mark} | {outcome.accuracy:.3f} | {outcome.extra_tokens_per_query:.1f} | "
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
