"""Plans sized to learn: training settings from the audit, the model and the hardware; warnings for runs too small."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from support import REPO, run_cli
from tunewise.advisor.audit import AuditReport, TokenStats, audit
from tunewise.advisor.hardware import find_hardware
from tunewise.advisor.plan_sizing import (
    LEARNING_RATE_RANGES,
    SizedPlan,
    size_training,
    sizing_warnings,
    start_warnings,
)
from tunewise.advisor.plans import load_plan
from tunewise.methods._hf.settings import AUTO_EVALUATIONS as EVALUATIONS
from tunewise.methods._hf.settings import EVAL_SHARE, TrainingSettings
from tunewise.plugins.costs import resolve_shape, shape_from_params
from tunewise.plugins.types import Hardware

INTENTS = REPO / "examples" / "data" / "support_intents.jsonl"
CPU = Hardware("cpu", peak_tflops=0.1, memory_gb=16, kind="cpu")
"""A fixed CPU (the catalogue's entry carries this machine's measured peak)."""


def _report(rows: int, median: float = 60, p95: float = 110, max_tokens: int = 180) -> AuditReport:
    """An audit of ``rows`` single-turn examples, built directly (no 50,000-row file)."""
    stats = TokenStats(total=int(rows * median), mean=float(median), median=float(median), p95=float(p95),
                       max=max_tokens, min=10)
    return AuditReport(source="tickets.jsonl", shape="instruction", files=("tickets.jsonl",), rows=rows,
                       usable_rows=rows, tokens=stats, tokenizer="test", max_tokens=2048, duplicates=0, empty=0,
                       over_long=0, problems=())


def _embedded():  # type: ignore[no-untyped-def]
    return resolve_shape("smollm2-135m-instruct", 0.135)


def _steps(sized: SizedPlan, examples: int) -> int:
    s = sized.settings
    held = round(examples * s["eval_fraction"])
    per_epoch = math.ceil((examples - held) / (s["batch_size"] * s["grad_accum"]))
    return s["max_steps"] or s["epochs"] * per_epoch


def test_small_data_on_a_cpu_sees_every_example_several_times() -> None:
    sized = size_training("lora", _report(120, median=43, p95=46, max_tokens=49), _embedded(), CPU)
    s = sized.settings
    assert s["epochs"] >= 3 and s["max_steps"] is None and s["packing"] is False
    assert _steps(sized, 120) >= 3 * (90 / s["batch_size"])  # every training example seen at least three times
    assert s["seq_len"] % 64 == 0 and s["seq_len"] >= 46 + 32  # p95 plus the chat template, never truncated
    low, high = LEARNING_RATE_RANGES["lora"]
    assert s["learning_rate"] > 2e-4 and low <= s["learning_rate"] <= high  # tiny data, small model: higher
    assert round(120 * s["eval_fraction"]) >= 30  # a held-out split large enough to compare
    assert 0 < s["max_hours"] <= 1  # minutes on a CPU, not hours
    assert set(sized.reasons) == set(s) and all(sized.reasons.values())
    assert TrainingSettings(**s).problems() == []  # every sized value is one the run accepts
    assert sizing_warnings("lora", s, 120) == []


def test_large_data_packs_caps_the_held_out_split_and_fits_a_cpu_budget() -> None:
    report = _report(50_000)
    cpu = size_training("lora", report, _embedded(), CPU)
    gpu = size_training("lora", report, _embedded(), find_hardware("A100-80GB"))
    for sized in (cpu, gpu):
        s = sized.settings
        assert s["packing"] is True and s["epochs"] == 1
        assert 60 <= round(50_000 * s["eval_fraction"]) <= 250  # at most about the 200 evaluation keeps
        assert s["seq_len"] == 192  # p95 110 + template, rounded up to 64
        assert TrainingSettings(**s).problems() == []
    # A CPU cannot take all of it: the plan stops early within its budget and says so; a GPU runs it all.
    assert cpu.settings["max_steps"] is not None and "CPU" in cpu.reasons["max_steps"]
    assert gpu.settings["max_steps"] is None
    assert gpu.settings["batch_size"] > cpu.settings["batch_size"]
    assert gpu.settings["max_hours"] < 1 and gpu.estimated_hours is not None and gpu.estimated_hours < cpu.settings["max_hours"]
    assert "quoted" in gpu.reasons["max_hours"]


def test_methods_get_their_own_rates_and_untrained_methods_nothing() -> None:
    report = _report(800)
    small = {m: size_training(m, report, _embedded(), CPU).settings["learning_rate"]
             for m in ("lora", "full_finetune", "continual_pretraining")}
    assert small["lora"] > small["continual_pretraining"] and small["lora"] > small["full_finetune"]
    big = {m: size_training(m, report, shape_from_params(7), find_hardware("A100-80GB")).settings["learning_rate"]
           for m in ("lora", "full_finetune", "continual_pretraining")}
    assert big == {"lora": 2e-4, "full_finetune": 2e-5, "continual_pretraining": 5e-5}  # the method defaults
    for method, rate in {**small, **big}.items():
        low, high = LEARNING_RATE_RANGES[method]
        assert low <= rate <= high
    # A 7B full fine-tune needs more memory than an A10G: batch 1 with activation recompute, or less.
    tight = size_training("full_finetune", report, shape_from_params(7), find_hardware("A10G")).settings
    assert tight["batch_size"] == 1
    assert size_training("rag", report, _embedded(), CPU).settings == {}
    assert size_training("in_context", report, _embedded(), CPU).settings == {}
    assert size_training("lora", None, _embedded(), CPU).settings == {}  # nothing known about the data


def test_documents_are_packed_into_long_sequences() -> None:
    report = AuditReport(source="docs", shape="documents", files=("docs/a.md",), rows=40, usable_rows=40,
                         tokens=TokenStats(total=400_000, mean=10_000, median=10_000, p95=20_000, max=30_000,
                                           min=100),
                         tokenizer="test", max_tokens=2048, duplicates=0, empty=0, over_long=0, problems=())
    s = size_training("continual_pretraining", report, _embedded(), CPU).settings
    assert s["seq_len"] == 512 and "packing" not in s
    assert TrainingSettings(**s).problems() == []


def test_too_small_settings_are_warned_and_the_sized_ones_are_not() -> None:
    tiny = {"max_steps": 5, "batch_size": 4}
    warnings = sizing_warnings("lora", tiny, 120)
    assert any("fewer than one pass" in w for w in warnings), warnings
    assert any("held-out" in w for w in warnings)  # 10% of 120 = 12 examples
    far = sizing_warnings("lora", {"epochs": 3, "learning_rate": 1e-7, "eval_fraction": 0.25}, 120)
    assert len(far) == 1 and "learning_rate" in far[0]
    truncated = sizing_warnings("lora", {"epochs": 3, "seq_len": 32, "eval_fraction": 0.25}, 120, median_tokens=43)
    assert len(truncated) == 1 and "truncated" in truncated[0]
    sized = size_training("lora", audit(INTENTS), _embedded(), CPU)
    assert sizing_warnings("lora", sized.settings, 120, median_tokens=43) == []


def test_plan_command_writes_a_sized_plan_the_loader_accepts(tmp_path: Path) -> None:
    shutil.copy(INTENTS, tmp_path / "intents.jsonl")
    answers = REPO / "examples" / "answers" / "ticket-routing.yaml"
    result = run_cli("plan", "--answers", str(answers), "--method", "lora", "--data", "intents.jsonl",
                     "--hardware", "cpu", "--out", "plan.yaml", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "plan.yaml").read_text()
    assert text.startswith("# tunewise plan for lora, written by `tunewise plan`.")
    assert "# 95% of examples have ≤ 46 tokens" in text  # the reason is the value's comment
    plan = load_plan(tmp_path / "plan.yaml")
    sized = size_training("lora", audit(tmp_path / "intents.jsonl"), _embedded(), find_hardware("cpu"))
    for name in ("epochs", "batch_size", "seq_len", "learning_rate", "eval_fraction", "packing", "max_hours"):
        assert plan.training[name] == sized.settings[name], name
    bad = run_cli("plan", "--answers", str(answers), "--method", "nope", cwd=tmp_path, timeout=120)
    assert bad.returncode == 1 and "unknown method 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    no_data = run_cli("plan", "--answers", str(answers), "--method", "lora", cwd=tmp_path, timeout=120)
    assert no_data.returncode == 1 and "no data to plan for: pass --data" in no_data.stderr
    folder = run_cli("plan", "--answers", str(answers), "--method", "lora", "--data", "intents.jsonl",
                     "--out", str(tmp_path), cwd=tmp_path, timeout=120)
    assert folder.returncode == 1 and f"--out {tmp_path}: cannot write the plan there" in folder.stderr


def test_start_warnings_skip_methods_that_count_steps_their_own_way() -> None:
    start = {"method": "rlhf", "plan": {"training": {"max_steps": 1}}, "counts": {"rows": 100}}
    assert start_warnings(start) == []
    start = {"method": "lora", "plan": {"training": {"max_steps": 1, "batch_size": 2}},
             "counts": {"rows": 40, "train_sequences": 36, "held_out_examples": 4}, "learning_rate": 1e-3}
    assert any("36 training sequences" in w for w in start_warnings(start))


def test_a_run_with_too_small_settings_is_warned_not_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = [{"instruction": f"Route ticket {i}", "output": "billing" if i % 2 else "delivery"} for i in range(40)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "plan.yaml").write_text(
        f"method: lora\nmodel: {tiny_model_dir}\ndata: data.jsonl\noutput_dir: out\n"
        "training: {max_steps: 1, batch_size: 2, seq_len: 64, packing: false, generation_examples: 1, "
        "max_new_tokens: 4}\n")
    result = run_cli("run", "plan.yaml", "--events", "-", "--allow-outside-paths", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fewer than one pass" in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    warned = [i for i, e in enumerate(events) if e["event"] == "log" and "fewer than one pass" in e["message"]]
    assert warned and kinds.index("start") < warned[0] < kinds.index("progress")  # before the first step
    assert events[-1]["status"] == "completed"


PATIENCE_PLUS_ONE = 4
"""Evaluations a patience of 3 needs before it can stop a run."""


def _evaluations(s: dict, steps: int) -> int:
    """Held-out evaluations a run of ``steps`` makes with these settings (every eval_steps, and the last)."""
    return (steps - 1) // s["eval_steps"] + 1


def test_trained_plans_stop_early_and_evaluate_about_ten_times(tmp_path: Path) -> None:
    """Every plan that trains with the shared loop watches held-out loss often enough for a patience of 3."""
    cases = [("lora", _report(120, median=43, p95=46, max_tokens=49), CPU),
             ("full_finetune", _report(800), CPU),
             ("lora", _report(1_500), find_hardware("A100-80GB")),
             ("continual_pretraining", _report(800), find_hardware("A100-80GB"))]
    for method, report, hardware in cases:
        sized = size_training(method, report, _embedded(), hardware)
        s = sized.settings
        steps = _steps(sized, report.usable_rows)
        assert s["early_stopping_patience"] == 3 and 0 < s["early_stopping_min_delta"] < 0.01, method
        assert PATIENCE_PLUS_ONE <= _evaluations(s, steps) <= EVALUATIONS + 1, (method, s["eval_steps"], steps)
        assert "early stopping" in sized.reasons["eval_steps"] and "keep the best" in \
            sized.reasons["early_stopping_patience"]
        assert TrainingSettings(**s).problems() == []
    # The RLHF stages train with trl's loop: no early-stopping settings are written for them.
    preference = AuditReport(source="prefs.jsonl", shape="preference", files=("prefs.jsonl",), rows=200,
                             usable_rows=200, tokens=TokenStats(total=12_000, mean=60, median=60, p95=110, max=180,
                                                                min=10),
                             tokenizer="test", max_tokens=2048, duplicates=0, empty=0, over_long=0, problems=())
    rlhf = size_training("rlhf", preference, _embedded(), CPU).settings
    assert rlhf and not {"eval_steps", "early_stopping_patience", "early_stopping_min_delta"} & set(rlhf)


def test_small_epochs_evaluate_once_per_epoch_and_costly_held_out_splits_fewer_times() -> None:
    # 120 examples on a GPU: 10 epochs of 12 steps; every epoch is evaluated.
    gpu = size_training("lora", _report(120, median=43, p95=46, max_tokens=49), _embedded(),
                        find_hardware("A100-80GB"))
    assert gpu.settings["eval_steps"] <= math.ceil(90 / gpu.settings["batch_size"])

    def share(reason: str) -> float:
        return int(reason.split("adding ~")[1].split("%")[0]) / 100

    # 800 examples on a CPU, cut to the steps that fit its time budget: ten passes over the 80 held-out
    # examples would cost more than the budget's slack, so the plan evaluates less often and says why.
    costly = size_training("lora", _report(800), _embedded(), CPU)
    s, steps = costly.settings, _steps(costly, 800)
    assert s["max_steps"] is not None and f"not {EVALUATIONS}" in costly.reasons["eval_steps"]
    assert PATIENCE_PLUS_ONE <= _evaluations(s, steps) < EVALUATIONS
    assert 0 < share(costly.reasons["eval_steps"]) <= EVAL_SHARE
    # Longer examples: two evaluations fit; early stopping cannot stop early then and the reason says so.
    two = size_training("lora", _report(100, median=500, p95=900, max_tokens=2000), _embedded(), CPU)
    assert _evaluations(two.settings, _steps(two, 100)) == 2
    assert "cannot stop early" in two.reasons["early_stopping_patience"]
    # A CPU run cut to a few steps by its time budget cannot afford two evaluations: early stopping
    # is written off, with the reason, instead of doubling the run's time.
    short = size_training("full_finetune", _report(40, median=900, p95=1900, max_tokens=2000), _embedded(), CPU)
    assert short.settings["max_steps"] is not None and short.settings["eval_steps"] is None
    assert short.settings["early_stopping_patience"] == 0 and "held-out" in short.reasons["eval_steps"]
    assert TrainingSettings(**short.settings).problems() == []


def test_small_data_gets_more_epochs_on_a_gpu_where_early_stopping_guards_them() -> None:
    report = _report(120, median=43, p95=46, max_tokens=49)
    cpu = size_training("lora", report, _embedded(), CPU)
    gpu = size_training("lora", report, _embedded(), find_hardware("A100-80GB"))
    assert gpu.settings["epochs"] == 2 * cpu.settings["epochs"]
    assert "early stopping keeps the best step" in gpu.reasons["epochs"]
    assert "early stopping" not in cpu.reasons["epochs"]  # a CPU keeps its time budget
    large = size_training("lora", _report(50_000), _embedded(), find_hardware("A100-80GB"))
    assert large.settings["epochs"] == 1
