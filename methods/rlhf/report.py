"""What an RLHF / DPO run writes: ``report.md``, ``metrics.json``, ``generations.jsonl``, plots, model card."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.methods.rlhf.config import PPO_NOTE
from tunewise.plugins.redaction import redact, redact_data

HEADLINE = (
    ("reward_accuracy", "reward model accuracy on held-out pairs", "higher"),
    ("win_rate", "win rate of the tuned policy vs the base (see the bake-off for the judge)", "higher"),
    ("mean_reward", "mean reward of answers to held-out prompts", "higher"),
    ("kl", "KL(tuned ‖ reference), nats per answer", "lower"),
    ("kl_per_token", "KL per answer token, nats", "lower"),
    ("unchanged_answers", "share of held-out answers identical to the base's", ""),
    ("mean_answer_tokens", "mean answer length, tokens", ""),
    ("dpo_implicit_accuracy", "DPO implicit-reward accuracy on held-out pairs", "higher"),
)


@dataclass
class RlhfSummary:
    """Everything the report says about a run."""

    algorithm: str
    model: str
    device: str
    data_files: Sequence[str]
    counts: Mapping[str, Any]
    before: Mapping[str, float]
    after: Mapping[str, float]
    stages: Mapping[str, Mapping[str, Any]]
    generations: Sequence[Mapping[str, Any]]
    config: Mapping[str, Any]
    settings: Mapping[str, Any]
    wall_seconds: float
    peak_memory_gb: float
    artifacts: dict[str, str] = field(default_factory=dict)
    notes: Sequence[str] = ()


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if value and abs(value) < 1e-2:
            return f"{value:.2g}"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> list[str]:
    def cell(value: Any) -> str:
        return _fmt(value).replace("|", "\\|").replace("\n", " ⏎ ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def headline_rows(before: Mapping[str, float], after: Mapping[str, float]) -> list[tuple[str, Any, Any]]:
    """(metric, base, tuned) for every headline figure the run measured."""
    rows = []
    for key, label, _better in HEADLINE:
        if key in before or key in after:
            rows.append((label, before.get(key), after.get(key)))
    return rows


def write_plots(folder: Path, summary: RlhfSummary) -> list[Path]:
    """``stages.png``: each stage's training loss (and reward / accuracy); ``rewards.png``: base vs tuned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    trained = [(name, s) for name, s in summary.stages.items() if s.get("history")]
    if trained:
        fig, axes = plt.subplots(1, len(trained), figsize=(4.2 * len(trained), 3.4), squeeze=False)
        for ax, (name, stage) in zip(axes[0], trained, strict=True):
            history = stage["history"]
            steps = [h["step"] for h in history]
            ax.plot(steps, [h["loss"] for h in history], label="loss", color="#3b82f6")
            extra = next((k for k in ("reward", "accuracy", "rewards/accuracies") if k in history[-1]), None)
            if extra:
                twin = ax.twinx()
                twin.plot(steps, [h.get(extra, math.nan) for h in history], color="#f59e0b", label=extra)
                twin.set_ylabel(extra, color="#f59e0b")
            ax.set_title(name)
            ax.set_xlabel("step")
            ax.set_ylabel("training loss")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        path = folder / "stages.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if "mean_reward" in summary.before and "mean_reward" in summary.after:
        fig, ax = plt.subplots(figsize=(4.5, 3.4))
        bars = ax.bar(["base", "tuned"], [summary.before["mean_reward"], summary.after["mean_reward"]],
                      color=["#9aa5b1", "#3b82f6"])
        ax.bar_label(bars, fmt="%.3f")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title("mean reward on held-out prompts")
        fig.tight_layout()
        path = folder / "rewards.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_report(out: Path, summary: RlhfSummary, plots: Sequence[Path], samples: int, first_section: str = "") -> Path:
    """``report.md``: ``first_section`` (the bake-off), then the figures, stages, answers, data and settings."""
    title = "DPO" if summary.algorithm == "dpo" else f"RLHF ({summary.algorithm.upper()})"
    lines = [f"# {title} run report", ""]
    if first_section:
        lines += [first_section.rstrip("\n"), ""]
    lines += [f"Base model **{summary.model}** on {summary.device}; {summary.wall_seconds:.0f} s wall, "
              f"peak memory {summary.peak_memory_gb:.2f} GB.", ""]
    lines += ["## Results", ""]
    rows = headline_rows(summary.before, summary.after)
    lines += _table(rows, ("metric", "base", "tuned")) if rows else ["No held-out evaluation."]
    lines += ["", "Mean reward: the run's reward model on the greedy answers to the held-out prompts; a win rate of "
              "0.5 means no difference. KL is estimated from answers sampled from the tuned policy (temperature 1) "
              "as the mean summed log-probability difference to the reference; unchanged answers: the share of "
              "held-out prompts whose tuned greedy answer is the base's word for word.", ""]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.relative_to(out).as_posix()})", ""]
    lines += ["## Stages", ""]
    stage_rows = []
    for name, stage in summary.stages.items():
        what = stage.get("what", "")
        stage_rows.append((name, what, stage.get("steps", "–"), stage.get("train_seconds", "–"),
                           stage.get("learning_rate", "–")))
    lines += [*_table(stage_rows, ("stage", "what", "steps", "train s", "lr")), ""]
    if summary.generations:
        lines += ["## Answers side by side (held-out prompts)", ""]
        shown = [(g["prompt"], g["base"], g.get("base_reward"), g["tuned"], g.get("tuned_reward"))
                 for g in redact_data(summary.generations[:samples])]  # redacted before cut: no partial secret
        lines += [*_table([(p[:160], b[:300], br, t[:300], tr) for p, b, br, t, tr in shown], ("prompt", "base answer", "reward", "tuned answer", "reward")), ""]
    lines += ["## Data", "", f"- files: {', '.join(summary.data_files)}"]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in summary.counts.items()] + [""]
    lines += ["## Why no PPO", "", PPO_NOTE, ""]
    settings = [(f"config.{k}", json.dumps(v)) for k, v in summary.config.items()]
    settings += [(f"training.{k}", json.dumps(v)) for k, v in summary.settings.items()]
    lines += ["## Settings", "", *_table(settings, ("setting", "value")), ""]
    if summary.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in summary.notes], ""]
    if summary.artifacts:
        lines += ["## Artifacts", "", *[f"- {k}: `{v}`" for k, v in summary.artifacts.items()], ""]
    path = out / "report.md"
    path.write_text(redact("\n".join(lines)), encoding="utf-8")
    return path


def write_model_card(folder: Path, summary: RlhfSummary, base_model: str, adapter: bool) -> Path:
    """A Hugging Face model card next to the tuned policy's weights."""
    tags = ["tunewise", "rlhf", summary.algorithm, *(["lora"] if adapter else [])]
    lines = ["---", f"base_model: {json.dumps(base_model)}", f"library_name: {'peft' if adapter else 'transformers'}",
             "tags:", *[f"- {t}" for t in tags], "---", "",
             f"# {summary.algorithm.upper()} policy tuned from {summary.model}", "",
             f"Trained with tunewise on preference pairs from {', '.join(Path(f).name for f in summary.data_files)}.",
             "", "## Evaluation (held-out prompts)", ""]
    rows = headline_rows(summary.before, summary.after)
    lines += _table(rows, ("metric", "base", "tuned")) if rows else ["No held-out evaluation."]
    path = folder / "README.md"
    path.write_text(redact("\n".join(lines) + "\n"), encoding="utf-8")
    return path


def write_metrics(out: Path, summary: RlhfSummary, metrics: Mapping[str, Any] | None = None) -> Path:
    """``metrics.json``: ``metrics`` (before/after with the bake-off merged in, see
    :func:`tunewise.plugins.bakeoff.merge_metrics`) plus the stages, counts and wall time."""
    path = out / "metrics.json"
    stages = {name: {k: v for k, v in s.items() if k != "history"} for name, s in summary.stages.items()}
    data = {"algorithm": summary.algorithm, "before": dict(summary.before), "after": dict(summary.after),
            **(metrics or {}), "stages": stages, "counts": dict(summary.counts),
            "wall_s": round(summary.wall_seconds, 2)}
    path.write_text(redact(json.dumps(redact_data(data), indent=2, default=str)), encoding="utf-8")
    return path


def write_generations(out: Path, generations: Sequence[Mapping[str, Any]]) -> Path:
    path = out / "generations.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for g in generations:
            fh.write(json.dumps(redact_data(g), ensure_ascii=False) + "\n")
    return path
