"""In-context bake-off: zero-shot (base) vs with selected examples (result) on every held-out example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tunewise.methods._hf.rouge import rouge_l
from tunewise.methods.in_context.bakeoff import example_ids, icl_bake_off
from tunewise.methods.in_context.evaluate import Outcome, text_scores
from tunewise.methods.in_context.examples import Example
from tunewise.plugins.events import make_event
from tunewise.plugins.task_detection import detect_task, normalise_label
from tunewise.plugins.types import Plan

LABELS = {
    "billing": ["I was charged twice", "Refund the extra fee on my invoice", "My card was billed wrongly",
                "Why is there a second charge", "The invoice total is wrong", "Cancel the double payment"],
    "delivery": ["Where is my parcel", "The package never arrived", "Tracking shows no update",
                 "The courier left it at the wrong door", "My order is late", "The box came damaged"],
    "account": ["I cannot log in", "Reset my password please", "My account is locked",
                "Change the email on my profile", "Two-factor codes do not arrive", "Delete my account"],
}
ANSWERS = {"What does a bare raise do outside a handler?": "It raises RuntimeError because no exception is active",
           "What does pass do?": "Nothing happens when pass is executed",
           "What does del of an unbound name raise?": "It raises NameError for the unbound name",
           "What does return without a value give?": "The function returns None to the caller",
           "Where may continue appear?": "Only nested inside a for or while loop body",
           "What does break do to the loop else?": "It skips the else clause of the loop entirely"}


def _classification_data(path: Path) -> Path:
    rows = [{"instruction": "Classify the message: billing, delivery or account.", "input": text, "output": label}
            for label, texts in LABELS.items() for text in texts]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _run(plan: Plan) -> tuple[Any, list[dict[str, Any]]]:
    from tunewise.methods.in_context.run import run

    events: list[dict[str, Any]] = []
    result = run(plan, lambda kind, **fields: events.append(make_event(kind, **fields)))
    return result, events


@pytest.fixture(scope="module")
def classification_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("icl-bakeoff")
    data = _classification_data(root / "tickets.jsonl")
    plan = Plan(method="in_context", model=str(tiny_model_dir), data=(str(data),),
                config={"shots": 2, "prompt_token_budget": 120, "eval_fraction": 0.5, "compare_selections": False,
                        "selection": "random"},
                output_dir=str(root / "out"))
    result, events = _run(plan)
    return {"data": data, "out": root / "out", "result": result, "events": events}


def test_classification_run_scores_every_held_out_example_by_accuracy(classification_run: dict[str, Any]) -> None:
    out, result = classification_run["out"], classification_run["result"]
    from tunewise.methods.in_context.examples import load_examples, split_examples

    _, held_out = split_examples(load_examples(classification_run["data"]), 0.5, 0)
    lines = _lines(out / "bakeoff.jsonl")
    header, rows = lines[0]["bakeoff"], lines[1:]
    # Every held-out row, by its file:line, once; none of the pool.
    assert sorted(r["id"] for r in rows) == sorted(e.where for e in held_out) and len(rows) == 9
    assert all(r["id"].startswith(str(classification_run["data"]) + ":") for r in rows)
    # Scores are accuracy of each answer's first line against its label, recomputed here.
    for row in rows:
        assert row["base_score"] == float(normalise_label(row["base_answer"]) == normalise_label(row["reference"]))
        assert row["result_score"] == float(normalise_label(row["result_answer"]) == normalise_label(row["reference"]))
    assert header["metric"] == "accuracy" and header["examples"] == 9
    assert header["before"]["accuracy"] == pytest.approx(sum(r["base_score"] for r in rows) / 9)
    # Per-label counts cover the held-out golds.
    gold_counts: dict[str, int] = {}
    for row in rows:
        gold_counts[row["reference"]] = gold_counts.get(row["reference"], 0) + 1
    assert {c["label"]: c["examples"] for c in header["labels"]} == gold_counts
    assert result.bakeoff == header
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["main_metric"] == "accuracy" and metrics["bakeoff"] == header
    assert metrics["before"]["accuracy"] == header["before"]["accuracy"]
    assert metrics["after"]["accuracy"] == header["after"]["accuracy"] == result.metrics_after["accuracy"]
    assert len(metrics["interval_95"]) == 2 and metrics["task"]["task"] == "classification"


def test_verdict_leads_message_report_and_events(classification_run: dict[str, Any]) -> None:
    out, result, events = classification_run["out"], classification_run["result"], classification_run["events"]
    sentence = result.bakeoff["sentence"]
    assert result.message.startswith(sentence.rstrip("."))
    report = (out / "report.md").read_text()
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Bake-off: base vs result on the held-out split"
    assert sentence in report.split("## Run")[0]
    [bake_event] = [e for e in events if e["event"] == "bakeoff"]
    assert bake_event["sentence"] == sentence and bake_event["verdict"] == result.bakeoff["verdict"]
    phases = [e for e in events if e["event"] == "phase"]
    names = list(dict.fromkeys(e["phase"] for e in phases))
    assert names == ["selecting examples", "answering zero-shot", "answering with examples"]
    for name in names[1:]:
        last = [e for e in phases if e["phase"] == name][-1]
        assert last["done"] == last["total"] == 9 and last["unit"] == "examples"
    # Answers are bounded by the longest reference answer (a label of a few tokens), not the config's cap.
    [start] = [e for e in events if e["event"] == "start"]
    assert 1 <= start["max_new_tokens"] <= 10


def test_random_model_is_not_better_and_the_reason_names_a_setting(classification_run: dict[str, Any]) -> None:
    bake = classification_run["result"].bakeoff
    # A random 2-layer model cannot route tickets either way: no gain, and a stated reason.
    assert bake["verdict"] != "better" and bake["reasons"]
    settings = [r["setting"] for r in bake["reasons"]]
    assert "config.system_prompt" in settings  # its answers name no label
    assert settings[-1] == "model"  # the model's size comes last, after every setting
    top = bake["reasons"][0]
    assert f"Most likely {top['reason']}; {top['change']}." in bake["sentence"]


def _outcome(name: str, examples: list[Example], replies: list[str], free_text: bool = False,
             shots: int = 0) -> Outcome:
    records = [{"prediction": r, "correct": normalise_label(r) == normalise_label(e.answer),
                **text_scores(r, e.answer), "shots": shots, "extra_prompt_tokens": 30 * shots}
               for e, r in zip(examples, replies, strict=True)]
    accuracy = sum(float(r["correct"]) for r in records) / len(records)
    return Outcome(name, accuracy, 30.0 * shots, 50.0, float(shots), 30 * shots, records, free_text)


def test_examples_that_teach_the_labels_win_with_per_label_counts_and_confusions() -> None:
    held = [Example((("user", text),), label, None, f"d.jsonl:{n}")
            for n, (label, text) in enumerate(((lab, t) for lab, ts in LABELS.items() for t in ts), start=1)]
    task = detect_task([{"prompt": e.query_text, "completion": e.answer} for e in held], "prompt_completion")
    zero = _outcome("zero-shot", held, ["I am not sure."] * len(held))
    right = [e.answer if n % 4 else "delivery" for n, e in enumerate(held)]  # every fourth one answers delivery
    few = _outcome("few-shot knn", held, right, shots=2)
    bake, evidence = icl_bake_off(task, held, zero, few, budget=100, shots=2, model_params=135_000_000,
                                  held_out_from="18 held out")
    assert bake.verdict == "better" and bake.metric == "accuracy" and bake.reasons == ()
    assert bake.before == 0.0 and bake.after == pytest.approx(14 / 18) and bake.wins == 14
    assert bake.sentence.startswith("In-context learning beats the base on 14 of 18 held-out examples")
    assert bake.classification is not None
    counts = {c.label: (c.examples, c.base_correct, c.result_correct) for c in bake.classification.labels}
    assert counts == {"billing": (6, 0, 4), "delivery": (6, 0, 6), "account": (6, 0, 4)}
    assert [(c.gold, c.predicted, c.count) for c in bake.classification.confusions] == \
        [("account", "delivery", 2), ("billing", "delivery", 2)]
    assert [e.id for e in evidence] == [e.where for e in held]


def test_free_text_is_scored_by_rouge_l_and_no_gain_names_the_unchanged_answers() -> None:
    held = [Example((("user", q),), a, None, f"qa.jsonl:{n}") for n, (q, a) in enumerate(ANSWERS.items(), start=1)]
    task = detect_task([{"prompt": e.query_text, "completion": e.answer} for e in held], "prompt_completion")
    assert task.task == "generation"
    replies = ["It raises an error", "Nothing", "NameError", "None", "In a loop", "It skips it"]
    zero = _outcome("zero-shot", held, replies, free_text=True)
    few = _outcome("few-shot knn", held, replies, free_text=True, shots=1)  # the examples changed nothing
    bake, evidence = icl_bake_off(task, held, zero, few, budget=100, shots=4, model_params=135_000_000,
                                  held_out_from="6 held out")
    assert bake.metric == "rouge_l" and bake.verdict == "not_better" and bake.ties == 6
    assert bake.before == pytest.approx(sum(rouge_l(r, e.answer) for r, e in zip(replies, held, strict=True)) / 6)
    assert [r.code for r in bake.reasons][:1] == ["answers_unchanged"]
    assert bake.reasons[0].setting == "config.shots" and "changed only 0 of the 6 answers" in bake.sentence
    assert [e.base_score for e in evidence] == [rouge_l(r, e.answer) for r, e in zip(replies, held, strict=True)]
    assert zero.metrics().keys() >= {"rouge_l", "exact_match", "containment"}


def test_budget_that_fits_no_example_is_named_first() -> None:
    held = [Example((("user", t),), lab, None, f"d.jsonl:{n}")
            for n, (lab, t) in enumerate(((lab, t) for lab, ts in LABELS.items() for t in ts), start=1)]
    task = detect_task([{"prompt": e.query_text, "completion": e.answer} for e in held], "prompt_completion")
    answers = [e.answer if n % 2 else "billing" for n, e in enumerate(held)]
    zero = _outcome("zero-shot", held, answers)
    few = _outcome("few-shot knn", held, answers, shots=0)  # the budget fit no example for any query
    bake, _ = icl_bake_off(task, held, zero, few, budget=10, shots=8, model_params=None, held_out_from="18 held out")
    assert bake.reasons[0].code == "no_examples_fit" and bake.reasons[0].setting == "config.prompt_token_budget"
    assert "fit no example for 18 of the 18 held-out queries" in bake.sentence


def test_a_row_named_twice_keeps_distinct_ids() -> None:
    example = Example((("user", "x"),), "y", None, "d.jsonl:3")
    assert example_ids([example, example, Example((("user", "z"),), "y", None, "d.jsonl:4")]) == \
        ["d.jsonl:3", "d.jsonl:3#2", "d.jsonl:4"]
