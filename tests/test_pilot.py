"""``tunewise pilot``: real runs of two methods on one shared held-out split, the re-rank rule, bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from support import REPO, run_cli
from tunewise.advisor.pilot import (
    Measurement,
    PilotError,
    check_minutes,
    draw_sample,
    explain,
    head_to_heads,
    rerank,
)

INTENTS = REPO / "examples" / "data" / "support_intents.jsonl"


def write_answers(folder: Path, *, rows: int = 24, model: Path | None = None) -> Path:
    """Answers for routing messages on the first ``rows`` example intents, on this CPU."""
    data = folder / "intents.jsonl"
    data.write_text("".join(INTENTS.read_text(encoding="utf-8").splitlines(keepends=True)[:rows]), encoding="utf-8")
    answers = folder / "answers.yaml"
    answers.write_text(
        "use_case: route support messages\ngoals: [task]\n"
        f"data: {{path: {data}}}\n"
        f"model: {{name: {json.dumps(str(model)) if model else 'null'}, params_b: 0.135}}\n"
        "hardware: {gpu: cpu, gpus: 1}\nbudget: {usd: 10, days: 1}\n", encoding="utf-8")
    return answers


def expected_order(result: dict) -> list[str]:
    """The stated rule, re-implemented from the pilot's JSON (not from its code)."""
    measured = {m["method"]: m for m in result["measurements"]}
    rank = {"better": 0, "not_better": 1, None: 1, "worse": 2}

    def key(method: str) -> tuple[int, int, int, int]:
        m = measured[method]
        ok = m["status"] == "completed" and m["after"] is not None
        wins = sum(1 for d in result["head_to_head"] if d["winner"] == method)
        losses = sum(1 for d in result["head_to_head"]
                     if d["winner"] not in (None, method) and method in (d["first"], d["second"]))
        own = rank[m["verdict"]] if ok and m["metric"] == result["sample"]["main_metric"] else 1
        return (0 if ok else 1, losses - wins, own, result["order_before"].index(method))

    return sorted(result["order_before"], key=key)


def test_pilot_of_two_methods_on_a_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    answers = write_answers(tmp_path)
    data_dir = tmp_path / "user-data"
    out = tmp_path / "pilot"
    proc = run_cli("pilot", "--answers", str(answers), "--methods", "lora,in_context", "--minutes", "4",
                   "--model", str(tiny_model_dir), "--out", str(out), "--format", "json",
                   env={"TUNEWISE_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # the advisor's order, whatever order --methods named them in
    assert sorted(c["method"] for c in result["candidates"]) == ["in_context", "lora"]
    ranks = [c["rank"] for c in result["candidates"]]
    assert ranks == sorted(ranks) and [c["method"] for c in result["candidates"]] == result["order_before"]
    held = result["sample"]["held_out_ids"]
    assert held and all(h.startswith(str(tmp_path / "intents.jsonl") + ":") for h in held)
    for m in result["measurements"]:
        # both measured, on exactly the shared held-out rows of the user's file
        assert m["status"] == "completed", m
        assert sorted(m["example_ids"]) == sorted(held), m["method"]
        assert m["metric"] == "accuracy" and 0.0 <= m["after"] <= 1.0
        assert m["wall_s"] > 0 and m["after_interval_95"] is not None
        assert m["spend"].startswith("spent ") and m["usd"] == 0.0  # the run's own spend.json, priced for a CPU
    [duel] = result["head_to_head"]
    assert duel["examples"] == len(held) and {duel["first"], duel["second"]} == {"lora", "in_context"}
    assert result["order_after"] == expected_order(result)
    assert any(f"on the same {len(held)} held-out" in line for line in result["changes"])
    # each plan is a real plan file, the run folders hold the runs' own evidence
    for c in result["candidates"]:
        assert Path(c["plan"]).is_file() and (Path(c["run_dir"]) / "events.jsonl").is_file()
    assert "eval_data:" in (out / "in_context.plan.yaml").read_text()
    # the decision log records the pilot
    [log] = list((data_dir / "decisions").glob("*.jsonl"))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["answers", "ranking", "pilot"]
    pilot = next(r for r in records if r["kind"] == "pilot")
    assert pilot["order_after"] == result["order_after"] and pilot["sample"]["held_out_ids"] == held
    assert pilot["rule"] and len(pilot["measurements"]) == 2
    assert pilot["candidates"][0]["plan_text"] == Path(pilot["candidates"][0]["plan"]).read_text()


def _measured(method: str, scores: dict[str, float], verdict: str | None = "not_better") -> Measurement:
    after = sum(scores.values()) / len(scores)
    return Measurement(method, "completed", metric="accuracy", metric_name="accuracy", before=0.1, after=after,
                       after_interval=(after - 0.1, after + 0.1), verdict=verdict, examples=len(scores),
                       wall_s=12.0, scores=scores, sentence=f"{method}: own bake-off {verdict}")


def test_rerank_rule_on_fixed_measurements() -> None:
    ids = [f"d.jsonl:{i}" for i in range(1, 31)]
    titles = {"in_context": "In-context", "lora": "LoRA", "rag": "RAG"}
    weak = _measured("in_context", {k: float(i % 3 == 0) for i, k in enumerate(ids)})  # 10 of 30 right
    strong = _measured("lora", {k: float(i % 10 != 0) for i, k in enumerate(ids)})  # 27 of 30 right
    measurements = {"in_context": weak, "lora": strong}
    duels = head_to_heads([weak, strong], titles, "held-out messages")
    assert [d.winner for d in duels] == ["lora"]
    order = rerank(["in_context", "lora"], measurements, duels)
    assert order == ["lora", "in_context"]
    lines = explain(["in_context", "lora"], order, measurements, duels, titles, "held-out messages")
    assert lines[0].startswith("LoRA measured accuracy 0.90") and "on the same 30 held-out messages" in lines[0]
    assert lines[0].endswith("LoRA wins the head-to-head and moves up to first (was second)")

    # the head-to-head outranks each one's verdict against its own base: a strong base that the result
    # barely improved still beats a weak base that improved a lot, on the same examples
    strong_not_better = _measured("lora", dict(strong.scores), verdict="not_better")
    weak_better = _measured("in_context", dict(weak.scores), verdict="better")
    both = {"in_context": weak_better, "lora": strong_not_better}
    duels = head_to_heads(list(both.values()), titles, "held-out messages")
    assert rerank(["in_context", "lora"], both, duels) == ["lora", "in_context"]

    # a clear own-verdict outranks the advisor's order; a failed candidate goes last whatever its rank
    failed = Measurement("rag", "failed", "its data had no documents")
    better = _measured("in_context", {k: 1.0 for k in ids[:3]}, verdict="better")
    unclear = _measured("lora", {k: 1.0 for k in ids[3:6]})  # other ids: no head-to-head
    measurements = {"rag": failed, "lora": unclear, "in_context": better}
    duels = head_to_heads(list(measurements.values()), titles, "held-out messages")
    assert duels == []
    order = rerank(["rag", "lora", "in_context"], measurements, duels)
    assert order == ["in_context", "lora", "rag"]
    lines = explain(["rag", "lora", "in_context"], order, measurements, duels, titles, "held-out examples")
    assert "RAG moves down to third (was first): its pilot failed" in lines

    # a verdict on another metric than the data's (RAG's containment on labeled rows) does not move anyone
    contained = Measurement("rag", "completed", metric="containment", metric_name="containment", before=0.0,
                            after=1.0, verdict="better", examples=3)
    unclear_first = {"in_context": _measured("in_context", {k: 0.0 for k in ids[:3]}), "rag": contained}
    assert rerank(["in_context", "rag"], unclear_first, [], "accuracy") == ["in_context", "rag"]
    assert rerank(["in_context", "rag"], unclear_first, []) == ["rag", "in_context"]  # without a main metric
    lines = explain(["in_context", "rag"], ["in_context", "rag"], unclear_first, [], titles, "held-out examples",
                    "accuracy")
    assert "RAG measured containment, not the data's accuracy: shown, not used to re-rank" in lines

    # no significant difference: the advisor's order stands, and the sentence says why
    tie = _measured("lora", dict(weak.scores))
    duels = head_to_heads([weak, tie], titles, "held-out messages")
    assert [d.winner for d in duels] == [None]
    assert rerank(["in_context", "lora"], {"in_context": weak, "lora": tie}, duels) == ["in_context", "lora"]
    lines = explain(["in_context", "lora"], ["in_context", "lora"], {"in_context": weak, "lora": tie}, duels, titles,
                    "held-out messages")
    assert lines[0] == "the advisor's order stands: the evidence does not contradict it"
    assert "no clear winner" in lines[1]


def test_sample_is_deterministic_and_split_once(tmp_path: Path) -> None:
    first = draw_sample(str(INTENTS), tmp_path / "a", max_rows=50)
    second = draw_sample(str(INTENTS), tmp_path / "b", max_rows=50)
    assert first.rows == 50 and first.total_rows == 120
    assert first.held_ids == second.held_ids and first.train_ids == second.train_ids
    assert not set(first.held_ids) & set(first.train_ids)
    assert first.task == "classification" and first.main_metric == "accuracy"
    held_file = Path(first.files["held_out"])
    assert [first.original(f"{held_file}:{n}") for n in range(1, len(first.held_ids) + 1)] == list(first.held_ids)
    assert first.original("held_out.jsonl:1#2") == f"{first.held_ids[0]}#2"  # a relative name, a repeated row
    assert first.original("questions.jsonl:7") == "questions.jsonl:7"  # not a pilot file: unchanged


@pytest.mark.parametrize("minutes", [0, -1, math.nan, math.inf, 1e9])
def test_minutes_out_of_range_are_refused(minutes: float) -> None:
    with pytest.raises(PilotError, match="--minutes"):
        check_minutes(minutes)


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    answers = write_answers(tmp_path)
    env = {"TUNEWISE_DATA_DIR": str(tmp_path / "data")}
    cases = [
        (["--methods", "lora,nosuch"], "unknown method 'nosuch'"),
        (["--methods", "rag"], "rag does not apply to these answers: RAG needs documents"),
        (["--methods", ","], "--methods: name at least one method"),
        (["--minutes", "0"], "argument --minutes: must be a number > 0"),
        (["--minutes", "nan"], "argument --minutes: must be a finite number"),
    ]
    for extra, message in cases:
        proc = run_cli("pilot", "--answers", str(answers), "--out", str(tmp_path / "out"), *extra, env=env)
        assert proc.returncode in (1, 2) and message in proc.stderr, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("mine")
    proc = run_cli("pilot", "--answers", str(answers), "--out", str(busy), env=env)
    assert proc.returncode == 1 and "already exists and is not an empty folder" in proc.stderr
    assert (busy / "x").read_text() == "mine"
    no_data = tmp_path / "no-data.yaml"
    no_data.write_text("use_case: x\ngoals: [task]\ndata: {labeled_examples: 100}\nhardware: {gpu: cpu}\n")
    proc = run_cli("pilot", "--answers", str(no_data), env=env)
    assert proc.returncode == 1 and "no data to pilot on" in proc.stderr


def test_measure_reads_a_runs_bakeoff_and_names_a_failure(tmp_path: Path) -> None:
    """The bake-off every run writes (RunResult.bakeoff + bakeoff.jsonl) is what the pilot reads first."""
    from tunewise.advisor.pilot import Candidate, measure
    from tunewise.plugins.bakeoff import bake_off
    from tunewise.plugins.bakeoff_report import ExampleOutcome, write_bakeoff

    sample = draw_sample(str(INTENTS), tmp_path / "sample", max_rows=40)
    run_dir = tmp_path / "lora"
    run_dir.mkdir()
    sample_file = Path(sample.files["sample"])
    originals = list(sample.lines[str(sample_file)])
    held_lines = [originals.index(h) + 1 for h in sample.held_ids]
    ids = [f"{sample_file}:{n}" for n in held_lines]
    base = {i: 0.0 for i in ids}
    result = {i: float(n % 4 != 0) for n, i in enumerate(ids)}
    bake = bake_off(base, result, "accuracy", method="LoRA", unit="held-out messages")
    write_bakeoff(run_dir, bake, [ExampleOutcome(i, "p", "r", "b", "a", base[i], result[i]) for i in ids])
    candidate = Candidate("lora", "LoRA", 1, 0.8, None, run_dir=str(run_dir))
    m = measure(candidate, {"status": "completed", "wall_s": 36.0, "result": {"bakeoff": bake.to_dict()}}, sample,
                usd_per_hour=2.0)
    assert m.measured and m.source == "bakeoff" and m.metric == "accuracy" and m.verdict == bake.verdict
    assert m.after == bake.after and m.difference_interval == bake.interval and m.usd == 0.02
    assert sorted(m.scores) == sorted(sample.held_ids)  # by the user's file:line, not the pilot file's
    assert m.after_interval is not None and m.after_interval[0] <= m.after <= m.after_interval[1]

    from dataclasses import replace

    from tunewise.advisor.pilot import _coverage

    assert _coverage(m, sample) == ""
    fewer = replace(m, scores={k: v for k, v in m.scores.items() if k != sample.held_ids[0]})
    assert _coverage(fewer, sample).startswith(f"evaluated {len(sample.held_ids) - 1} of the {len(sample.held_ids)}")
    other = replace(m, scores={**m.scores, "elsewhere.jsonl:1": 1.0})
    assert "and 1 others (its own split)" in _coverage(other, sample)

    failed = measure(candidate, {"status": "failed", "wall_s": 3.0, "message": "model.safetensors is damaged"},
                     sample)
    assert not failed.measured and failed.figure() == "failed: model.safetensors is damaged"


def test_split_is_the_one_the_training_methods_compute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows holding a secret are redacted in the sample; the shared split is still exactly the split a
    training method computes from the sample file with the pilot plan's seed and size."""
    from tunewise.advisor.pilot import SEED
    from tunewise.methods._hf.split import row_key, split_indices
    from tunewise.plugins.data import load_dataset

    secret = "tok-9f8e7d6c5b4a3210"
    monkeypatch.setenv("HF_TOKEN", secret)
    rows = [json.loads(line) for line in INTENTS.read_text().splitlines()[:60]]
    for row in rows[::3]:
        row["input"] += f" (my token is {secret})"
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sample = draw_sample(str(data), tmp_path / "sample")
    written = Path(sample.files["sample"]).read_text()
    assert secret not in written and "[redacted]" in written
    loaded = load_dataset(sample.files["sample"])
    keys = [row_key(r.data) for r in loaded.rows]
    _, held = split_indices(keys, sample.held_count / sample.rows, sample.held_count, SEED)
    assert [sample.original(loaded.rows[i].where) for i in held] == list(sample.held_ids)


def test_a_run_over_its_time_is_stopped_at_a_checkpoint_and_still_measured(
        tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training candidate that would train past its minutes checkpoints, stops, and is evaluated anyway."""
    from tunewise.advisor import pilot
    from tunewise.advisor.pilot import Candidate, run_candidate

    # 3 s of minutes (training is stopped at the first step seen after ~2 s), but a hard limit far away:
    # on a loaded machine loading and evaluating alone can take a minute, and this is not about the limit.
    monkeypatch.setattr(pilot, "GRACE_S", 900.0)

    answers = write_answers(tmp_path)  # writes intents.jsonl beside it
    plan = tmp_path / "lora.plan.yaml"
    plan.write_text(f"method: lora\nmodel: {tiny_model_dir}\ndata: {tmp_path / 'intents.jsonl'}\n"
                    f"output_dir: {tmp_path / 'lora'}\ntraining: {{epochs: 200, batch_size: 2, seq_len: 128, "
                    "packing: false, eval_fraction: 0.25, max_new_tokens: 8, save_steps: 1000000}\n")
    assert answers.exists()
    candidate = Candidate("lora", "LoRA", 1, 0.5, None, plan_path=str(plan), run_dir=str(tmp_path / "lora"),
                          minutes=0.05, trains=True)
    outcome = run_candidate(candidate, tmp_path)
    assert outcome["status"] == "completed", outcome["message"]
    assert outcome["finished_early_at"] is not None and 0 < outcome["finished_early_at"] < outcome["total_steps"]
    assert outcome["result"]["steps"] == outcome["finished_early_at"]
    assert outcome["result"]["metrics_after"]  # evaluated from the checkpoint
