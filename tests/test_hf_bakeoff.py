"""The bake-off of the Hugging Face training methods (LoRA, full fine-tuning, continual pretraining), on
real runs of a tiny random model through the real pipeline.

Each run answers (or scores) every held-out example before and after training and compares them on
the task the data calls for: accuracy with per-label counts for a classification, ROUGE-L for free
text, per-document perplexity for raw text. The evidence lands in metrics.json, bakeoff.jsonl,
report.md (first section) and the RunResult; a run too short to learn says so and names the setting.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tunewise.plugins.types import Plan, RunResult

LABELS = ("billing", "shipping", "refund")
TOPIC = {"billing": "invoice charged twice", "shipping": "parcel still not delivered",
         "refund": "want my money back"}
WHERE = re.compile(r".+\.(jsonl|txt):\d+$|.+\.txt$")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def classification_rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        label = LABELS[i % 3]
        rows.append({"messages": [{"role": "user", "content": f"Ticket {i}: my {TOPIC[label]} (case {i * 7})"},
                                  {"role": "assistant", "content": label}]})
    return rows


def free_text_rows(count: int) -> list[dict[str, Any]]:
    return [{"instruction": f"Describe order {1000 + i}.",
             "output": f"Order {1000 + i} holds {i % 4 + 1} items and ships from warehouse {chr(65 + i % 5)} "
                       f"within {i % 6 + 2} days."} for i in range(count)]


def write_documents(folder: Path, count: int, words: int = 50) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        text = f"Document {i}. " + " ".join(f"term{(i * 7 + j) % 40}" for j in range(words))
        (folder / f"doc{i:02d}.txt").write_text(text, encoding="utf-8")
    return folder


class Recorder:
    """An event sink that keeps every event; ``stop_after`` asks the loop to stop after that step."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.stop_after = stop_after

    def __call__(self, kind: str, /, **fields: Any) -> None:
        self.events.append((kind, fields))

    @property
    def stop_requested(self) -> bool:
        steps = [f["step"] for k, f in self.events if k == "progress"]
        return self.stop_after is not None and bool(steps) and steps[-1] >= self.stop_after

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for k, f in self.events if k == kind]


def run_method(method: str, model: Path, data: Path, out: Path, sink: Callable[..., Any] | None = None,
               resume: bool = False, **training: Any) -> tuple[RunResult, Recorder]:
    from importlib import import_module

    recorder = sink if isinstance(sink, Recorder) else Recorder()
    settings = {"batch_size": 4, "seq_len": 96, "eval_fraction": 0.25, "early_stopping_patience": 0,
                "max_new_tokens": 8, "save_steps": 100, **training}
    plan = Plan(method=method, model=str(model), data=(str(data),), output_dir=str(out), training=settings,
                resume=resume)
    result = import_module(f"tunewise.methods.{method}.run").run(plan, recorder)
    return result, recorder


def bakeoff_lines(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in (out / "bakeoff.jsonl").read_text(encoding="utf-8").splitlines()]
    return lines[0]["bakeoff"], lines[1:]


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[RunResult, Recorder,
                                                                                                  Path]:
    folder = tmp_path_factory.mktemp("cls")
    data = write_jsonl(folder / "tickets.jsonl", classification_rows(60))
    result, recorder = run_method("full_finetune", tiny_model_dir, data, folder / "out", max_steps=6,
                                  learning_rate=1e-4)
    return result, recorder, folder / "out"


def test_classification_data_gets_an_accuracy_bakeoff_over_every_held_out_example(classification_run) -> None:
    result, recorder, out = classification_run
    assert result.status == "completed", result.message
    bake = result.bakeoff
    assert bake is not None and bake["metric"] == "accuracy" and bake["higher_is_better"]
    # The labels come from the data: every gold label of the held-out split is counted, base and result.
    assert {c["label"] for c in bake["labels"]} <= set(LABELS) and len(bake["labels"]) >= 2
    assert sum(c["examples"] for c in bake["labels"]) == bake["examples"]

    header, rows = bakeoff_lines(out)
    held_out = recorder.of("start")[0]["counts"]["held_out_examples"]
    assert len(rows) == held_out == bake["examples"] == bake["wins"] + bake["ties"] + bake["losses"]
    assert all(WHERE.match(r["id"]) and r["id"].startswith(str(out.parent / "tickets.jsonl")) for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    generations = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert {g["where"] for g in generations} == {r["id"] for r in rows}
    # Each row's score is its answer judged against its reference; the means are the bake-off's numbers.
    for r in rows:
        assert r["result_score"] == float(r["result_answer"].strip().lower() == r["reference"])
    assert bake["before"]["accuracy"] == pytest.approx(sum(r["base_score"] for r in rows) / len(rows))
    assert bake["after"]["accuracy"] == pytest.approx(sum(r["result_score"] for r in rows) / len(rows))
    assert header == bake


def test_metrics_json_keeps_before_after_and_adds_the_main_metric_and_interval(classification_run) -> None:
    result, _, out = classification_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["main_metric"] == "accuracy" and metrics["bakeoff"]["metric"] == "accuracy"
    low, high = metrics["interval_95"]
    assert low <= metrics["bakeoff"]["difference"] <= high
    for side in ("before", "after"):
        assert {"loss", "perplexity", "exact_match", "containment", "rouge_l", "accuracy"} <= set(metrics[side])
        assert metrics[side]["accuracy"] == metrics["bakeoff"][side]["accuracy"]
    assert result.metrics_after["accuracy"] == metrics["after"]["accuracy"]


def test_report_opens_with_the_bakeoff_and_the_message_is_its_verdict(classification_run) -> None:
    result, recorder, out = classification_run
    report = (out / "report.md").read_text()
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[0].startswith("## Bake-off") and "## Settings" in sections
    assert report.index(result.bakeoff["sentence"]) < report.index("## Base vs tuned")
    assert result.message.startswith(result.bakeoff["sentence"].rstrip("."))
    assert "steps; held-out loss" in result.message
    assert recorder.of("bakeoff") == [result.bakeoff]
    phases = [f["phase"] for f in recorder.of("phase")]
    assert phases.index("evaluating before") < phases.index("training") < phases.index("evaluating after") \
        < phases.index("saving")
    before = [f for f in recorder.of("phase") if f["phase"] == "evaluating before"]
    assert before[-1]["done"] == before[-1]["total"] == result.bakeoff["examples"]
    assert before[-1]["unit"] == "examples"


def test_free_text_is_scored_by_rouge_l(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.methods._hf.rouge import rouge_l

    data = write_jsonl(tmp_path / "orders.jsonl", free_text_rows(40))
    result, _ = run_method("lora", tiny_model_dir, data, tmp_path / "out", max_steps=3, learning_rate=1e-3)
    assert result.status == "completed", result.message
    assert result.bakeoff is not None and result.bakeoff["metric"] == "rouge_l"
    _, rows = bakeoff_lines(tmp_path / "out")
    assert len(rows) == result.bakeoff["examples"] == 10
    for r in rows:
        assert r["base_score"] == pytest.approx(rouge_l(r["base_answer"], r["reference"]))
        assert r["result_score"] == pytest.approx(rouge_l(r["result_answer"], r["reference"]))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["main_metric"] == "rouge_l" and {"exact_match", "containment"} <= set(metrics["after"])


@pytest.mark.parametrize("documents", [12, 3])
def test_raw_text_gets_a_perplexity_bakeoff_per_held_out_document(tmp_path: Path, tiny_model_dir: Path,
                                                                  documents: int) -> None:
    """12 documents: held out by document; 3 documents: held out by packed sequence."""
    docs = write_documents(tmp_path / "docs", documents, words=50 if documents > 3 else 150)
    result, _ = run_method("continual_pretraining", tiny_model_dir, docs, tmp_path / "out", max_steps=8,
                           learning_rate=3e-4, seq_len=64)
    assert result.status == "completed", result.message
    bake = result.bakeoff
    assert bake is not None and bake["metric"] == "perplexity" and not bake["higher_is_better"]
    _, rows = bakeoff_lines(tmp_path / "out")
    assert len(rows) == bake["examples"] >= 1
    if documents > 3:
        assert bake["unit"] == "held-out documents" and all(re.match(r".+doc\d\d\.txt", r["id"]) for r in rows)
    else:
        assert bake["unit"] == "held-out sequences" and all("(sequence " in r["id"] for r in rows)
    # Weighted by target tokens, the per-document losses give exactly the run's held-out perplexity.
    assert bake["before"]["perplexity"] == pytest.approx(result.metrics_before["perplexity"], rel=1e-6)
    assert bake["after"]["perplexity"] == pytest.approx(math.exp(result.metrics_after["loss"]), rel=1e-6)
    # A random model learns this repetitive text at once: every held-out document's perplexity falls.
    assert bake["after"]["perplexity"] < bake["before"]["perplexity"]
    assert bake["wins"] == bake["examples"] and all(r["result_score"] < r["base_score"] for r in rows)


def test_a_run_too_short_to_learn_is_not_better_and_names_the_setting(tmp_path: Path,
                                                                      tiny_model_dir: Path) -> None:
    data = write_jsonl(tmp_path / "tickets.jsonl", classification_rows(40))
    result, _ = run_method("lora", tiny_model_dir, data, tmp_path / "out", max_steps=1, batch_size=1,
                           packing=False, learning_rate=2e-4)
    bake = result.bakeoff
    assert bake is not None and bake["verdict"] == "not_better"
    first = bake["reasons"][0]
    assert first["code"] == "too_few_steps" and first["setting"] == "training.max_steps"
    assert "training.max_steps" in bake["sentence"] and "training.max_steps" in result.message
    assert "training.max_steps" in (tmp_path / "out" / "report.md").read_text()


def test_no_held_out_split_says_why_and_which_setting(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_jsonl(tmp_path / "tickets.jsonl", classification_rows(12))
    result, recorder = run_method("lora", tiny_model_dir, data, tmp_path / "out", max_steps=1, eval_fraction=0.0)
    assert result.status == "completed" and result.bakeoff is None and not recorder.of("bakeoff")
    assert "no bake-off" in result.message and "training.eval_fraction" in result.message
    report = (tmp_path / "out" / "report.md").read_text()
    assert next(line for line in report.splitlines() if line.startswith("## ")).startswith("## Bake-off")
    assert "training.eval_fraction" in report and not (tmp_path / "out" / "bakeoff.jsonl").exists()
    assert "bakeoff" not in json.loads((tmp_path / "out" / "metrics.json").read_text())


def test_a_resumed_run_keeps_the_bases_answers_and_the_same_bakeoff(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_jsonl(tmp_path / "tickets.jsonl", classification_rows(24))
    settings = {"max_steps": 4, "learning_rate": 1e-3, "save_steps": 2}
    whole, _ = run_method("lora", tiny_model_dir, data, tmp_path / "whole", **settings)
    stopped, _ = run_method("lora", tiny_model_dir, data, tmp_path / "parts", sink=Recorder(stop_after=1), **settings)
    assert 0 < stopped.steps < 4  # stopped (and checkpointed) part way
    resumed, recorder = run_method("lora", tiny_model_dir, data, tmp_path / "parts", resume=True, **settings)
    assert resumed.status == "completed" and resumed.steps == 4
    # The base was not answered again (the model had trained by then): its answers came from the checkpoint.
    assert not [f for f in recorder.of("phase") if f["phase"] == "evaluating before"]
    assert resumed.bakeoff == whole.bakeoff
    assert (tmp_path / "parts" / "bakeoff.jsonl").read_text() == (tmp_path / "whole" / "bakeoff.jsonl").read_text()
    assert json.loads((tmp_path / "parts" / "metrics.json").read_text()) == \
        json.loads((tmp_path / "whole" / "metrics.json").read_text())


def test_report_rows_keep_the_line_number_of_long_paths() -> None:
    """Absolute data paths are long: a row's id is cut from the left, so its ``:line`` stays visible."""
    from tunewise.plugins.bakeoff import bake_off
    from tunewise.plugins.bakeoff_report import ExampleOutcome, bakeoff_markdown

    where = "/home/someone/projects/support/data/exports/support_chat.jsonl"
    examples = [ExampleOutcome(f"{where}:{line}", "q", "ref", "a", "b", 0.0, 1.0) for line in (101, 202)]
    bake = bake_off({e.id: 0.0 for e in examples}, {e.id: 1.0 for e in examples}, "rouge_l")
    text = bakeoff_markdown(bake, examples)
    assert "support_chat.jsonl:101 |" in text and "support_chat.jsonl:202 |" in text
