"""Early stopping on held-out loss, on a tiny real model and the real loop.

A tiny Llama trained at a high learning rate on four random sequences first lowers the loss on four
other random sequences (it learns which token ids occur), then memorises its training rows and the
held-out loss rises: the overfitting early stopping exists for. The expected weights come from an
independent run of exactly ``best_step`` steps with early stopping off (constant schedule, so the
trajectory does not depend on the number of steps), compared tensor by tensor.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from test_training_loop import CPU, events_list, sequences, tiny_model
from tunewise.methods._hf.batches import PackedBatches, eval_batches
from tunewise.methods._hf.checkpoint import BEST_FILE, CheckpointStore, checkpoint_problem
from tunewise.methods._hf.evaluation import held_out_loss
from tunewise.methods._hf.loop import LoopOutcome, TrainLoop, eval_interval
from tunewise.methods._hf.loss import causal_lm_loss
from tunewise.methods._hf.settings import (
    AUTO_EVALUATIONS,
    EVAL_SHARE,
    TrainingSettings,
    evaluation_count,
    evaluation_share,
)

OVERFIT_LR = 1e-2
STEPS = 16


def make_loop(model_dir: Path, store: Path, **overrides: Any) -> tuple[TrainLoop, list]:
    """A loop over 4 random training rows (batch 2) that evaluates on 4 other random rows."""
    values: dict[str, Any] = {"max_steps": STEPS, "batch_size": 2, "save_steps": 1000, "warmup_ratio": 0.0,
                              "lr_schedule": "constant", "eval_steps": 1, "early_stopping_min_delta": 0.0}
    eval_sequences = overrides.pop("eval_sequences", None)
    values.update(overrides)
    settings = TrainingSettings(**values)
    model = tiny_model(model_dir)
    held = eval_batches(sequences(4, seed=2), 4, 2)
    got, sink = events_list()
    loop = TrainLoop(model=model, settings=settings, placement=CPU,
                     batches=PackedBatches(sequences(4, seed=1), settings.batch_size, 1, 0, 2), loss_fn=causal_lm_loss,
                     learning_rate=OVERFIT_LR, events=sink, store=CheckpointStore(store, settings.keep_checkpoints),
                     identity={}, evaluate=lambda: held_out_loss(model, held, causal_lm_loss, CPU),
                     eval_sequences=eval_sequences)
    return loop, got


def weights(loop: TrainLoop) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in loop.named}


def losses(outcome: LoopOutcome) -> dict[int, float]:
    return {int(e["step"]): float(e["loss"]) for e in outcome.state.eval_history}


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    import torch

    assert got.keys() == expected.keys() and got
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def weights_after(model_dir: Path, store: Path, steps: int) -> dict[str, Any]:
    """The weights after exactly ``steps`` steps, early stopping off: the independent reference."""
    loop, _ = make_loop(model_dir, store, max_steps=steps, early_stopping_patience=0, eval_steps=None)
    assert loop.run().state.step == steps
    return weights(loop)


@pytest.fixture(scope="module")
def stopped(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[LoopOutcome, dict, list]:
    """One overfitting run with patience 3, a checkpoint after every step (for the resume test)."""
    loop, got = make_loop(tiny_model_dir, tmp_path_factory.mktemp("stopped"), early_stopping_patience=3,
                          save_steps=1, keep_checkpoints=100)
    outcome = loop.run()
    return outcome, weights(loop), got


def test_rising_held_out_loss_stops_early_and_keeps_the_best_steps_weights(
        stopped: tuple[LoopOutcome, dict, list], tiny_model_dir: Path, tmp_path: Path) -> None:
    outcome, returned, got = stopped
    seen = losses(outcome)
    best = min(seen, key=lambda s: seen[s])
    assert seen[outcome.state.step] > seen[best]  # the loss did rise after its lowest point
    assert outcome.status == "completed" and outcome.state.step < STEPS
    # min_delta 0: exactly `patience` evaluations after the lowest loss, none of them lower
    assert outcome.best_step == outcome.state.best_step == best and outcome.state.step == best + 3
    assert outcome.early_stopped is not None
    assert outcome.early_stopped.startswith(f"stopped early at step {outcome.state.step} of {STEPS}: ")
    assert f"kept the weights of step {best}" in outcome.early_stopped
    logged = [f for kind, f in got if kind == "log" and f.get("kind") == "early_stopping"]
    assert len(logged) == 1 and logged[0]["message"] == outcome.early_stopped and logged[0]["best_step"] == best
    assert not [f for kind, f in got if kind == "progress" and f["step"] > outcome.state.step]
    # The model holds exactly the weights of step `best`, not those of the step it stopped at.
    assert_same(returned, weights_after(tiny_model_dir, tmp_path, best))


def test_patience_off_trains_every_step_and_evaluates_only_when_asked(tiny_model_dir: Path, tmp_path: Path) -> None:
    for patience in (0, None):
        loop, got = make_loop(tiny_model_dir, tmp_path / str(patience), early_stopping_patience=patience,
                              eval_steps=None)
        outcome = loop.run()
        assert outcome.state.step == STEPS and outcome.early_stopped is None and outcome.best_step is None
        assert outcome.state.eval_history == []  # no cadence is invented when early stopping is off
        assert not [f for kind, f in got if kind == "log" and f.get("kind") == "early_stopping"]
    # With evaluations asked for, the loss rises past its lowest point and the run still goes on to the end.
    loop, _ = make_loop(tiny_model_dir, tmp_path / "evaluated", early_stopping_patience=0)
    outcome = loop.run()
    seen = losses(outcome)
    assert outcome.state.step == STEPS and max(seen) == STEPS - 1  # evaluated each step but the last
    assert min(seen.values()) < seen[STEPS - 1]


def test_min_delta_counts_only_improvements_of_that_share(tiny_model_dir: Path, tmp_path: Path) -> None:
    """min_delta 0.5: no evaluation after the first lowers the loss by half, so the patience runs from
    step 1 although the loss falls; the kept weights are still those of the lowest loss seen."""
    loop, _ = make_loop(tiny_model_dir, tmp_path, early_stopping_patience=3, early_stopping_min_delta=0.5)
    outcome = loop.run()
    seen = losses(outcome)
    assert outcome.state.step == 1 + 3 and sorted(seen) == [1, 2, 3, 4]
    best = min(seen, key=lambda s: seen[s])
    assert best != 1 and seen[best] < seen[1]  # an improvement, too small to reset the patience
    assert outcome.best_step == best and outcome.early_stopped and "improved by 50.00%" in outcome.early_stopped
    assert_same(weights(loop), weights_after(tiny_model_dir, tmp_path / "ref", best))
    # The same run with min_delta 0 counts that improvement and trains on.
    loop, _ = make_loop(tiny_model_dir, tmp_path / "zero", early_stopping_patience=3)
    assert loop.run().state.step > 4


def test_last_step_worse_than_the_best_restores_the_best(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A patience too long to stop: the run ends at its last step and still returns the best weights."""
    loop, got = make_loop(tiny_model_dir, tmp_path, early_stopping_patience=STEPS)
    outcome = loop.run()
    seen = losses(outcome)
    best = min(seen, key=lambda s: seen[s])
    assert outcome.state.step == STEPS and sorted(seen) == list(range(1, STEPS + 1))  # the last step evaluated
    assert seen[STEPS] > seen[best] and outcome.early_stopped is None and outcome.best_step == best
    assert f"kept the weights of step {best}" in outcome.message
    assert [f["best_step"] for kind, f in got if kind == "log" and f.get("kind") == "early_stopping"] == [best]
    assert_same(weights(loop), weights_after(tiny_model_dir, tmp_path / "ref", best))
    # Few steps, loss still falling: the last weights are the best and stay.
    loop, got = make_loop(tiny_model_dir, tmp_path / "short", max_steps=2, early_stopping_patience=3)
    outcome = loop.run()
    assert outcome.best_step == 2 and outcome.message == "" and outcome.early_stopped is None
    assert not [f for kind, f in got if kind == "log" and f.get("kind") == "early_stopping"]


def test_default_cadence_evaluates_about_ten_times_and_every_epoch(tiny_model_dir: Path, tmp_path: Path) -> None:
    on, off = TrainingSettings(), TrainingSettings(early_stopping_patience=0)
    assert eval_interval(on, 115, 23) == 12  # 5 epochs of 23 steps: ~10 evaluations
    assert eval_interval(on, 200, 4) == 4  # short epochs: at least one evaluation per epoch
    assert eval_interval(on, 3, 3) == 1
    assert eval_interval(off, 115, 23) is None
    assert eval_interval(TrainingSettings(eval_steps=7), 115, 23) == 7
    # Known held-out size (batches of 4): ten passes over 30 sequences add ~22%: kept. Over 60 they
    # would add 43%: stretched to the first interval within 25%. Over 200 not even two fit: off.
    assert eval_interval(on, 115, 23, eval_sequences=30) == 12
    stretched = eval_interval(on, 115, 23, eval_sequences=60)
    assert stretched is not None and stretched > 12 and evaluation_count(115, stretched) >= 2
    assert evaluation_share(115, stretched, 60, 4) <= EVAL_SHARE < evaluation_share(115, stretched - 1, 60, 4)
    assert eval_interval(on, 115, 23, eval_sequences=200) is None
    assert eval_interval(TrainingSettings(eval_steps=5), 115, 23, eval_sequences=200) == 5  # asked for: kept
    # Real runs with the default cadence, always evaluating the last step too. 4 rows in batches of 2
    # are 2 steps per epoch: 24 steps evaluate every 2nd step (once per epoch, not every 24 / 10).
    loop, _ = make_loop(tiny_model_dir, tmp_path / "a", early_stopping_patience=STEPS, eval_steps=None)
    assert sorted(losses(loop.run())) == [*range(2, STEPS, 2), STEPS]
    # A held-out split too large to evaluate during the run: no evaluations, early stopping off, and
    # the run says why.
    loop, got = make_loop(tiny_model_dir, tmp_path / "costly", eval_steps=None, eval_sequences=1000)
    outcome = loop.run()
    assert outcome.state.step == STEPS and outcome.state.eval_history == [] and outcome.best_step is None
    said = [f["message"] for kind, f in got if kind == "log" and f.get("kind") == "early_stopping"]
    assert len(said) == 1 and said[0].startswith("early stopping is off: evaluating the 1,000 held-out sequences")
    # In batches of 1 an epoch is 4 steps: 29 steps evaluate every ceil(29 / 10) = 3rd step.
    total = AUTO_EVALUATIONS * 3 - 1
    loop, _ = make_loop(tiny_model_dir, tmp_path / "b", early_stopping_patience=STEPS, eval_steps=None,
                        max_steps=total, batch_size=1)
    assert sorted(losses(loop.run())) == [*range(3, total, 3), total]


def test_resume_keeps_the_best_weights_and_the_patience_count(
        stopped: tuple[LoopOutcome, dict, list], tiny_model_dir: Path, tmp_path: Path) -> None:
    """Resumed from a checkpoint written after the best step (patience partly used), the run stops at
    the same step with the same best step and bit-identical weights."""
    outcome, returned, _ = stopped
    store_root = Path(next(f["path"] for kind, f in stopped[2] if kind == "checkpoint")).parent
    between = CheckpointStore.load(store_root / f"step-{outcome.state.step - 1:08d}")
    saved = between.state["loop"]
    assert saved["best_step"] == outcome.best_step and saved["stale_evaluations"] == 2
    assert between.best is not None and (between.path / BEST_FILE).is_file()
    at_best = CheckpointStore.load(store_root / f"step-{outcome.best_step:08d}")
    assert at_best.best is None and not (at_best.path / BEST_FILE).exists()  # its own weights are the best

    for checkpoint in (between, at_best):
        loop, _ = make_loop(tiny_model_dir, tmp_path / checkpoint.path.name, early_stopping_patience=3)
        state = loop.restore(checkpoint)
        assert (state.best_step, state.stale_evaluations) == (saved["best_step"],
                                                              checkpoint.state["loop"]["stale_evaluations"])
        again = loop.run(state)
        assert (again.state.step, again.best_step, again.early_stopped) == (
            outcome.state.step, outcome.best_step, outcome.early_stopped)
        assert_same(weights(loop), returned)

    # A checkpoint that lost its best weights is damaged, not resumed with the wrong ones.
    copy = tmp_path / "damaged" / between.path.name
    shutil.copytree(between.path, copy)
    (copy / BEST_FILE).unlink()
    assert checkpoint_problem(copy) == f"{BEST_FILE} is missing"
    assert CheckpointStore(copy.parent).latest() is None


def test_bad_early_stopping_settings_are_named(tiny_model_dir: Path) -> None:
    from tunewise.advisor.plans import PlanError, parse_plan

    for value in (-1, 1.5, True, "3"):
        problems = dict(TrainingSettings(early_stopping_patience=value).problems())  # type: ignore[arg-type]
        assert "whole number >= 0" in problems["early_stopping_patience"] and repr(value) in \
            problems["early_stopping_patience"]
    for value in (-0.1, 1.0, float("nan"), "0.1", False):
        problems = dict(TrainingSettings(early_stopping_min_delta=value).problems())  # type: ignore[arg-type]
        assert "in [0, 1)" in problems["early_stopping_min_delta"]
    assert TrainingSettings(early_stopping_patience=None, early_stopping_min_delta=0).problems() == []
    plan = (f"method: lora\nmodel: {tiny_model_dir}\ndata: d.jsonl\ntraining:\n  early_stopping_patience: -2\n"
            "  early_stopping_min_delta: 5\n")
    with pytest.raises(PlanError) as err:
        parse_plan(plan)
    text = str(err.value)  # each problem with its YAML line
    assert "plan.yaml:5: training.early_stopping_patience: must be a whole number >= 0" in text
    assert "plan.yaml:6: training.early_stopping_min_delta: must be a number in [0, 1)" in text


def test_early_stopping_settings_do_not_change_the_run_identity() -> None:
    """They decide where a run ends and which evaluated step it keeps, never what a step computes:
    a resume may change them (like max_hours)."""
    assert TrainingSettings(early_stopping_patience=9, early_stopping_min_delta=0.2).identity() == \
        TrainingSettings().identity()


def test_a_real_run_saves_the_best_steps_weights_and_evaluates_them_after(tmp_path: Path,
                                                                          tiny_model_dir: Path) -> None:
    """``tunewise run`` (full fine-tuning) on answers of random words: the held-out loss falls while the
    model learns the vocabulary, then rises as it memorises; the saved model is the best step's
    checkpointed weights, and the after-evaluation is that step's loss."""
    import json
    import random
    import subprocess
    import sys

    from safetensors.torch import load_file
    from support import REPO

    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    with open(tmp_path / "chat.jsonl", "w") as fh:
        for _ in range(40):
            fh.write(json.dumps({"messages": [
                {"role": "user", "content": " ".join(rng.choice(words) for _ in range(5))},
                {"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(8))}]}) + "\n")
    (tmp_path / "plan.yaml").write_text(f"""\
method: full_finetune
model: {tiny_model_dir}
data: chat.jsonl
training: {{max_steps: 30, batch_size: 2, seq_len: 64, learning_rate: 1.0e-2, lr_schedule: constant,
           warmup_ratio: 0, eval_fraction: 0.25, eval_steps: 1, save_steps: 1, keep_checkpoints: 100,
           generation_examples: 0, early_stopping_min_delta: 0}}
""")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "tunewise.advisor.cli", "run", str(tmp_path / "plan.yaml"),
                           "--out", str(out), "--quiet", "--allow-outside-paths"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    stops = [e for e in events if e["event"] == "log" and e.get("kind") == "early_stopping"]
    assert len(stops) == 1 and stops[0]["message"].startswith(f"stopped early at step {stops[0]['step']} of 30")
    best, stopped_at = stops[0]["best_step"], stops[0]["step"]
    during = {e["step"]: e["metrics"]["loss"] for e in events if e["event"] == "eval" and e["phase"] == "during"}
    assert best == min(during, key=lambda s: during[s]) and stopped_at == best + 3 < 30
    assert events[-1]["event"] == "end" and events[-1]["status"] == "completed"
    assert not [e for e in events if e["event"] == "progress" and e["step"] > stopped_at]

    saved = load_file(str(out / "model" / "model.safetensors"))
    at_best = load_file(str(out / "checkpoints" / f"step-{best:08d}" / "weights.safetensors"))
    later = load_file(str(out / "checkpoints" / f"step-{stopped_at - 1:08d}" / "weights.safetensors"))
    shared = sorted(set(saved) & set(at_best))
    assert len(shared) >= len(saved) - 1  # all but a tied head
    assert_same({n: saved[n] for n in shared}, {n: at_best[n] for n in shared})
    assert any(not later[n].equal(saved[n]) for n in shared)  # not the weights it trained on to
    after = json.loads((out / "metrics.json").read_text())["after"]["loss"]
    assert after == pytest.approx(during[best], rel=1e-6)


def test_a_non_finite_evaluation_is_never_the_best(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The first evaluation returns NaN (as an overflowing evaluation would): it is not kept, counts
    against the patience, and the weights kept are those of the best finite evaluation."""
    loop, _ = make_loop(tiny_model_dir, tmp_path, max_steps=6, early_stopping_patience=10)
    real = loop.evaluate
    assert real is not None
    calls = {"n": 0}

    def first_nan() -> dict[str, float]:
        calls["n"] += 1
        metrics = real()
        return {**metrics, "loss": float("nan")} if calls["n"] == 1 else metrics

    loop.evaluate = first_nan
    outcome = loop.run()
    finite = {s: v for s, v in losses(outcome).items() if v == v}
    assert 1 not in finite and outcome.best_step == min(finite, key=lambda s: finite[s])
    assert outcome.state.best_loss == finite[outcome.best_step]
