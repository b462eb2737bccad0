"""Spent vs quoted (advisor/spend.py): one definition of wall and training time, summed over every
session of a run folder, and the quote the estimator gives for the plan as it ran."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import pytest
from support import run_cli
from tunewise.advisor import spend as spending
from tunewise.advisor.tui.run_watch import read_events

PLAN = {"method": "lora", "model": None, "training": {"seq_len": 128}}


def _write(path: Path, events: list[dict]) -> list[dict]:
    """Events as a run writes them (one JSON object per line), read back through the app's own reader."""
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return read_events(path)


def _session(t0: float, *, wall: float | None, training: tuple[float, float], steps: tuple[int, int],
             total: int = 8, per_step: int = 300, status: str = "cancelled", plan: dict | None = None,
             device: str = "cpu (fp32)") -> list[dict]:
    """One `tunewise run` session: evaluation, a training phase from training[0] to training[1] (with
    step reports and mid-training evaluations inside), then its end (none when ``wall`` is None)."""
    start, stop = training
    events = [{"event": "log", "time": t0 - 0.5, "level": "info", "message": "resuming"},
              {"event": "start", "time": t0, "method": "lora", "total_steps": total, "device": device,
               "plan": plan or PLAN, "session_started": t0 - 2},
              {"event": "phase", "time": t0 + 1, "phase": "evaluating before", "done": 0, "total": 10,
               "unit": "examples"},
              {"event": "phase", "time": t0 + 2, "phase": "evaluating before", "done": 10, "total": 10,
               "unit": "examples"},
              {"event": "phase", "time": start, "phase": "training", "done": steps[0], "total": total,
               "unit": "steps"}]
    for step in range(steps[0] + 1, steps[1] + 1):
        when = start + (stop - start) * (step - steps[0]) / (steps[1] - steps[0] + 1)
        events.append({"event": "progress", "time": when, "step": step, "total_steps": total, "loss": 2.0,
                       "tokens_per_s": 100.0, "elapsed_s": 1.0, "tokens_seen": step * per_step})
        events.append({"event": "eval", "time": when + 0.1, "phase": "during", "step": step,
                       "metrics": {"loss": 1.9}})
    if wall is not None:
        events += [{"event": "phase", "time": stop, "phase": "evaluating after", "done": 0, "total": 10,
                    "unit": "examples"},
                   {"event": "end", "time": stop + 3, "status": status, "wall_s": wall, "result": {}}]
    return events


def test_wall_and_training_time_are_summed_over_a_cancelled_and_a_resumed_session(tmp_path: Path) -> None:
    first = _session(1000.0, wall=31.0, training=(1005.0, 1020.0), steps=(0, 4))
    second = _session(2000.0, wall=26.0, training=(2004.0, 2016.0), steps=(4, 8), status="completed")
    events = _write(tmp_path / "events.jsonl", first + second)
    spent = spending.compute_spent(events)
    assert spent.sessions == 2
    assert spent.wall_s == pytest.approx(31.0 + 26.0)  # each session's runner-measured wall_s
    assert spent.train_s == pytest.approx((1020 - 1005) + (2016 - 2004))  # training phases, evaluations excluded
    assert spent.device == "cpu" and spent.gpu_hours == 0 and spent.usd_high == 0
    sentence = spending.spend_report(events, quote=False).sentence()
    assert sentence.startswith("spent 57 s (2 sessions, training 27 s), $0 (CPU)")


def test_a_session_killed_without_end_counts_to_its_last_event_and_a_live_one_to_now(tmp_path: Path) -> None:
    killed = _session(1000.0, wall=None, training=(1003.0, 1040.0), steps=(0, 3))
    last = max(e["time"] for e in killed)
    resumed = _session(2000.0, wall=20.0, training=(2003.0, 2012.0), steps=(2, 8), status="completed")
    events = _write(tmp_path / "events.jsonl", killed + resumed)
    spent = spending.compute_spent(events)
    assert spent.sessions == 2
    # from when its process began (session_started) to its last event; the resumed session's early log is its own
    assert spent.wall_s == pytest.approx((last - 998.0) + 20.0)
    assert spent.train_s == pytest.approx((last - 1003.0) + (2012 - 2003))
    live = spending.compute_spent(_write(tmp_path / "live.jsonl", killed), now=1100.0)
    assert live.wall_s == pytest.approx(102.0) and live.train_s == pytest.approx(97.0)


def test_quote_is_the_estimators_for_the_plan_as_it_ran(tmp_path: Path) -> None:
    from tunewise.advisor.hardware import find_hardware
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.models import EMBEDDED_MODEL
    from tunewise.plugins.types import DataProfile, HardwareChoice, ModelProfile, Profile

    events = _write(tmp_path / "events.jsonl", _session(1000.0, wall=30.0, training=(1005, 1020), steps=(0, 8),
                                                         total=8, per_step=250, status="completed"))
    report = spending.spend_report(events)
    assert report.quoted is not None, report.quote_error
    hardware = find_hardware("cpu")
    expected = get_host().method("lora").estimate(
        Profile(model=ModelProfile(EMBEDDED_MODEL, 0.135), data=DataProfile(),
                hardware=HardwareChoice(hardware.name, 1), training_tokens=250 * 8, seq_len=128), hardware)
    assert report.quoted.tokens == 2000 and report.quoted.covers == "training"
    assert report.quoted.wall_s == pytest.approx(expected.wall_hours * 3600, rel=1e-3, abs=0.006)
    assert f"quoted {spending.duration(expected.wall_hours * 3600)} of training" in report.sentence()
    assert report.to_dict()["quoted"]["tokens_from"] == "250 tokens per step × 8 planned steps"


def test_gpu_runs_are_priced_from_the_plan(tmp_path: Path) -> None:
    from tunewise.advisor.hardware import find_hardware

    a100 = find_hardware("A100-80GB")
    plan = {"method": "lora", "training": {"seq_len": 128, "budget_hardware": "a100-80gb"},
            "distributed": {"processes": 2}}
    events = _write(tmp_path / "a.jsonl", _session(0.0, wall=1800.0, training=(5, 1700), steps=(0, 8),
                                                    plan=plan, device="cuda:0 (bf16)", status="completed"))
    spent = spending.compute_spent(events)
    assert spent.device == "gpu" and spent.gpus == 2 and spent.gpu_hours == pytest.approx(1.0)
    assert (spent.usd_low, spent.usd_high) == pytest.approx((a100.usd_per_hour_low, a100.usd_per_hour_high))
    priced = {**plan, "training": {**plan["training"], "usd_per_hour": 3.5}}
    spent = spending.compute_spent(events, priced)
    assert spent.usd_low == spent.usd_high == pytest.approx(3.5)
    unknown = {"method": "lora", "training": {"budget_hardware": "no-such-gpu"}}
    report = spending.spend_report(events, unknown)
    assert report.spent.usd_high is None and report.quoted is None
    assert "training.budget_hardware 'no-such-gpu' is not in the catalogue" in report.sentence()
    assert "$ unknown" in report.sentence()


def test_report_section_is_replaced_not_repeated(tmp_path: Path) -> None:
    events = _write(tmp_path / "events.jsonl", _session(0.0, wall=12.0, training=(3, 9), steps=(0, 2)))
    report_md = tmp_path / "report.md"
    report_md.write_text("# LoRA run report\n\nbody\n")
    first = spending.spend_report(events, quote=False)
    assert spending.append_to_report(report_md, first)
    longer = spending.spend_report(events + _session(100.0, wall=30.0, training=(103, 120), steps=(2, 4)),
                                   quote=False)
    assert spending.append_to_report(report_md, longer)
    text = report_md.read_text()
    assert text.count("## Spent vs quoted") == 1 and text.startswith("# LoRA run report\n\nbody\n")
    assert longer.sentence() in text and first.sentence() not in text
    assert not spending.append_to_report(tmp_path / "missing.md", first)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, str, str]:
    """A real LoRA run of a tiny model on classification data: 2 steps, then resumed to 4 steps.

    Returns the folder and both sessions' console output (stdout + stderr)."""
    root = tmp_path_factory.mktemp("spend-run")
    shutil.copytree(tiny_model_dir, root / "tiny")
    source = Path(__file__).resolve().parents[1] / "examples" / "data" / "support_intents.jsonl"
    (root / "intents.jsonl").write_text("".join(source.read_text(encoding="utf-8").splitlines(True)[:40]))
    (root / "plan.yaml").write_text(
        "method: lora\nmodel: tiny\ndata: intents.jsonl\noutput_dir: run\n"
        "training: {batch_size: 4, seq_len: 96, precision: fp32, save_steps: 2, eval_fraction: 0.25, "
        "max_new_tokens: 4}\n")
    first = run_cli("run", "plan.yaml", "--max-steps", "2", cwd=root)
    assert first.returncode == 0, first.stderr
    # The resumed session runs in this process (torch already loaded by other tests): the same CLI code.
    from tunewise.advisor.cli import main

    console = io.StringIO()
    here = Path.cwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stderr(console), contextlib.redirect_stdout(console):
            assert main(["run", "plan.yaml", "--max-steps", "4", "--resume"]) == 0
    finally:
        os.chdir(here)
    return root / "run", first.stdout + first.stderr, console.getvalue()


def test_tunewise_run_ends_with_the_verdict_interval_and_spend(resumed_run: tuple[Path, str, str]) -> None:
    """The first session's console (the real CLI in a subprocess) against what that session recorded."""
    run, console, _ = resumed_run
    events = read_events(run / "events.jsonl")
    first = events[:next(i for i, e in enumerate(events) if e["event"] == "end") + 1]
    bake = next(e for e in first if e["event"] == "bakeoff")
    spend = first[-1]["spend"]
    lines = console.splitlines()
    verdict = lines.index(bake["sentence"])  # the whole sentence on its own line
    lo, hi = bake["interval_95"]
    assert "95% interval" in lines[verdict + 1] and f"of {bake['examples']}" in lines[verdict + 1]
    assert f"{lo:+.2f}" in lines[verdict + 1] and f"{hi:+.2f}" in lines[verdict + 1]
    spent_line = lines.index(spend["sentence"])
    adapter = next(i for i, line in enumerate(lines) if line.startswith("adapter: "))
    assert verdict < spent_line < adapter  # verdict and spend come before the artifact list
    assert spend["spent"]["sessions"] == 1 and spend["spent"]["wall_s"] == first[-1]["wall_s"]


def test_a_resumed_run_sums_its_sessions_everywhere(resumed_run: tuple[Path, str, str]) -> None:
    run, _, console = resumed_run
    events = read_events(run / "events.jsonl")
    ends = [e for e in events if e["event"] == "end"]
    assert len(ends) == 2
    spend = json.loads((run / "spend.json").read_text(encoding="utf-8"))
    assert spend["spent"]["sessions"] == 2
    assert spend["spent"]["wall_s"] == pytest.approx(math.fsum(e["wall_s"] for e in ends), abs=0.02)
    assert ends[-1]["spend"] == spend  # the end event carries the same figures
    assert spend["spent"]["train_s"] == pytest.approx(spending.compute_spent(events).train_s)
    assert 0 < spend["spent"]["train_s"] < spend["spent"]["wall_s"]
    per_step = next(e for e in reversed(events) if e["event"] == "progress")
    assert spend["quoted"]["tokens"] == int(per_step["tokens_seen"] / per_step["step"] * 4)
    report = (run / "report.md").read_text(encoding="utf-8")
    assert report.count("## Spent vs quoted") == 1 and spend["sentence"] in report
    assert "(2 sessions" in spend["sentence"] and spend["sentence"] in console
