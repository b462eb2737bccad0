"""A run's written results: PNG plots, ``report.md`` and the model card (``README.md``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.plugins.redaction import redact, redact_data

METRIC_LABELS = {
    "loss": "held-out loss",
    "perplexity": "held-out perplexity",
    "accuracy": "accuracy",
    "exact_match": "exact match",
    "containment": "containment",
    "rouge_l": "ROUGE-L F1",
}
LOWER_IS_BETTER = {"loss", "perplexity"}


@dataclass
class RunSummary:
    """Everything the report and the model card say about a run."""

    method: str
    title: str
    model: str
    data_files: Sequence[str]
    data_shape: str
    counts: Mapping[str, Any]
    settings: Mapping[str, Any]
    config: Mapping[str, Any]
    device: str
    before: Mapping[str, float]
    after: Mapping[str, float]
    steps: int
    train_seconds: float
    wall_seconds: float
    tokens_seen: int
    peak_memory_gb: float
    history: Sequence[Mapping[str, float]] = ()
    eval_history: Sequence[Mapping[str, Any]] = ()
    generations: Sequence[Mapping[str, str]] = ()
    artifacts: Mapping[str, str] = field(default_factory=dict)
    notes: Sequence[str] = ()

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_seen / self.train_seconds if self.train_seconds > 0 else 0.0


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def comparison_rows(before: Mapping[str, float], after: Mapping[str, float]) -> list[tuple[str, str, str, str]]:
    """(metric, base, tuned, change) for each metric measured before or after."""
    rows = []
    for key, label in METRIC_LABELS.items():
        b, a = before.get(key), after.get(key)
        if b is None and a is None:
            continue
        change = ""
        if a is not None and b is not None:
            better = a < b if key in LOWER_IS_BETTER else a > b
            change = f"{a - b:+.4f}" + (" (better)" if better else " (worse)" if a != b else "")
        rows.append((label, _fmt(b), _fmt(a), change))
    return rows


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_plots(folder: Path, summary: RunSummary) -> list[Path]:
    """``loss.png`` (training loss, held-out loss points) and ``eval.png`` (base vs tuned)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    if summary.history:
        ax.plot([h["step"] for h in summary.history], [h["loss"] for h in summary.history], label="training loss")
    points = [(0, summary.before.get("loss"))] + [(e["step"], e.get("loss")) for e in summary.eval_history]
    points.append((summary.steps, summary.after.get("loss")))
    points = [(s, v) for s, v in points if v is not None]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], "o--", label="held-out loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(f"{summary.title}: loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = folder / "loss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    keys = [k for k in METRIC_LABELS if k != "perplexity" and (k in summary.before or k in summary.after)]
    if keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.4), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            values = [summary.before.get(key, 0.0), summary.after.get(key, 0.0)]
            bars = ax.bar(["base", "tuned"], values, color=["#9aa5b1", "#3b82f6"])
            ax.bar_label(bars, fmt="%.3f")
            ax.set_title(METRIC_LABELS[key])
            ax.margins(y=0.2)
        fig.suptitle(f"{summary.title}: held-out evaluation")
        fig.tight_layout()
        path = folder / "eval.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _settings_rows(summary: RunSummary) -> list[tuple[str, str]]:
    rows = [(f"config.{k}", json.dumps(v)) for k, v in summary.config.items()]
    rows += [(f"training.{k}", json.dumps(v)) for k, v in summary.settings.items()]
    return rows


def write_report(out: Path, summary: RunSummary, plots: Sequence[Path], first_section: str = "") -> Path:
    """``report.md``: ``first_section`` (the bake-off), then results table, plots, sample answers, data
    and settings."""
    lines = [f"# {summary.title} run report", ""]
    if first_section:
        lines += [first_section.rstrip("\n"), ""]
    lines += [f"Base model **{summary.model}**, trained {summary.steps} steps on {summary.device} in "
              f"{summary.train_seconds:.0f} s of training ({summary.wall_seconds:.0f} s wall, "
              f"{summary.tokens_per_s:,.0f} tokens/s, peak memory {summary.peak_memory_gb:.2f} GB).", ""]
    lines += ["## Base vs tuned (held-out split)", ""]
    rows = comparison_rows(summary.before, summary.after)
    lines += [_table(rows, ("metric", "base", "tuned", "change")) if rows else "No held-out split (too little data).", ""]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.relative_to(out).as_posix()})", ""]
    if summary.generations:
        lines += ["## Sample answers", ""]
        sample = [(g["where"], g["prompt"][-200:], g["reference"][:200], g["before"][:200], g["after"][:200])
                  for g in redact_data(summary.generations[:5])]  # redacted before cut: no partial secret
        lines += [_table(sample, ("row", "prompt (end)", "reference", "base answer", "tuned answer")), ""]
    lines += ["## Data", ""]
    lines += [f"- files: {', '.join(summary.data_files)}", f"- shape: {summary.data_shape}"]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in summary.counts.items()]
    lines += ["", "## Settings", "", _table(_settings_rows(summary), ("setting", "value")), ""]
    if summary.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in summary.notes], ""]
    if summary.artifacts:
        lines += ["## Artifacts", "", *[f"- {k}: `{v}`" for k, v in summary.artifacts.items()], ""]
    path = out / "report.md"
    path.write_text(redact("\n".join(lines)), encoding="utf-8")
    return path


def write_model_card(folder: Path, summary: RunSummary, *, base_model: str, library: str,
                     extra_tags: Sequence[str] = ()) -> Path:
    """A Hugging Face model card (``README.md`` with YAML front matter) next to the saved weights."""
    tags = ["tunewise", summary.method, *extra_tags]
    front = ["---", f"base_model: {json.dumps(base_model)}", f"library_name: {library}", "tags:"]
    front += [f"- {t}" for t in tags]
    front += ["---", ""]
    body = [f"# {summary.title} of {summary.model}", "",
            f"Trained with [tunewise](https://example.invalid/tunewise) ({summary.method}) for {summary.steps} "
            f"optimizer steps on {summary.device}.", "", "## Training data", ""]
    body += [f"- {Path(f).name} ({summary.data_shape})" for f in summary.data_files]
    body += [f"- {k.replace('_', ' ')}: {v}" for k, v in summary.counts.items()]
    body += ["", "## Evaluation (held-out split)", ""]
    rows = comparison_rows(summary.before, summary.after)
    body += [_table(rows, ("metric", "base", "tuned", "change")) if rows else "No held-out split.", ""]
    body += ["## Training settings", "", _table(_settings_rows(summary), ("setting", "value")), ""]
    path = folder / "README.md"
    path.write_text(redact("\n".join(front + body)), encoding="utf-8")
    return path
