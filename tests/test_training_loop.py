"""The training loop on a tiny real model: schedule, loss, accumulation, checkpoints, the non-finite guard."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from tunewise.methods._hf.batches import PackedBatches, collate
from tunewise.methods._hf.checkpoint import MARKER, CheckpointStore
from tunewise.methods._hf.device import Placement
from tunewise.methods._hf.encoding import IGNORE
from tunewise.methods._hf.loop import LoopState, TrainLoop, lr_factor
from tunewise.methods._hf.loss import causal_lm_loss
from tunewise.methods._hf.packing import Packed
from tunewise.methods._hf.settings import TrainingSettings

CPU = Placement("cpu", "fp32")


def tiny_model(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")


def sequences(count: int, length: int = 24, seed: int = 0) -> list[Packed]:
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        row = Packed()
        ids = [rng.randrange(100, 2000) for _ in range(length)]
        # Two examples per row; the first half's tokens are "prompt" (no loss).
        half = length // 2
        for chunk in (ids[:half], ids[half:]):
            targets = [*chunk[1:], IGNORE]
            targets[: len(chunk) // 3] = [IGNORE] * (len(chunk) // 3)
            row.add(chunk, targets, "x")
        out.append(row)
    return out


def events_list():
    got: list[tuple[str, dict]] = []

    def sink(kind: str, /, **fields) -> None:
        got.append((kind, fields))

    return got, sink


def test_schedule_warms_up_then_decays_to_zero() -> None:
    total, warmup = 100, 10
    assert lr_factor(0, total, warmup, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, total, warmup, "cosine") == pytest.approx(1.0)
    cosine = [lr_factor(s, total, warmup, "cosine") for s in range(warmup, total)]
    assert all(a >= b for a, b in itertools.pairwise(cosine)) and cosine[-1] == pytest.approx(0.0)
    assert lr_factor(54, total, warmup, "linear") == pytest.approx(0.5)
    assert lr_factor(70, total, 0, "constant") == 1.0


def test_loss_on_targets_only_matches_full_logits_cross_entropy(tiny_model_dir: Path) -> None:
    import torch
    import torch.nn.functional as F

    model = tiny_model(tiny_model_dir)
    batch = collate(sequences(2), pad_id=2)
    with torch.no_grad():
        summed = causal_lm_loss(model, batch)
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                       attention_mask=batch.attention_mask, use_cache=False).logits
        expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1),
                                   ignore_index=IGNORE, reduction="sum")
    assert batch.num_targets == int((batch.targets != IGNORE).sum())
    torch.testing.assert_close(summed, expected, rtol=1e-5, atol=1e-4)


def _one_step(model_dir: Path, tmp: Path, batch_size: int, grad_accum: int):
    model = tiny_model(model_dir)
    settings = TrainingSettings(max_steps=1, batch_size=batch_size, grad_accum=grad_accum, warmup_ratio=0.0,
                                lr_schedule="constant", max_grad_norm=0.0)
    batches = PackedBatches(sequences(4, seed=3), batch_size, grad_accum, seed=0, pad_id=2)
    _, sink = events_list()
    loop = TrainLoop(model=model, settings=settings, placement=CPU, batches=batches, loss_fn=causal_lm_loss,
                     learning_rate=1e-2, events=sink, store=CheckpointStore(tmp), identity={})
    loop.run()
    # After one step Adam's first moment is 0.1 x the gradient: compare gradients through it (the
    # weights themselves move by about +-lr whatever the gradient's size, which hides differences).
    return {name: loop.optimizer.state[p]["exp_avg"] for name, p in loop.named}


def test_accumulated_micro_batches_equal_one_big_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Loss is normalised by the step's target count, so accumulation does not change the gradient."""
    import torch

    big = _one_step(tiny_model_dir, tmp_path / "a", batch_size=4, grad_accum=1)
    accumulated = _one_step(tiny_model_dir, tmp_path / "b", batch_size=1, grad_accum=4)
    assert any(g.abs().max() > 0 for g in big.values())
    for name, grad in big.items():
        torch.testing.assert_close(grad, accumulated[name], rtol=1e-3, atol=1e-7, msg=name)


def test_training_lowers_the_loss_and_reports_progress(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    model = tiny_model(tiny_model_dir)
    rows = sequences(4, seed=5)
    settings = TrainingSettings(max_steps=8, batch_size=4, save_steps=100, warmup_ratio=0.0)
    batches = PackedBatches(rows, 4, 1, seed=0, pad_id=2)
    got, sink = events_list()
    loop = TrainLoop(model=model, settings=settings, placement=CPU, batches=batches, loss_fn=causal_lm_loss,
                     learning_rate=1e-2, events=sink, store=CheckpointStore(tmp_path), identity={})
    with torch.no_grad():
        before = causal_lm_loss(model, collate(rows, 2)).item()
    outcome = loop.run()
    with torch.no_grad():
        after = causal_lm_loss(model, collate(rows, 2)).item()
    assert outcome.status == "completed" and outcome.state.step == 8
    assert after < before * 0.8
    progress = [f for kind, f in got if kind == "progress"]
    assert [p["step"] for p in progress] == list(range(1, 9))
    assert all(p["total_steps"] == 8 and p["tokens_per_s"] > 0 and p["peak_memory_gb"] > 0 for p in progress)
    assert outcome.state.tokens_seen == 8 * sum(len(r) for r in rows)


def test_checkpoint_store_ignores_incomplete_folders_and_prunes(tmp_path: Path) -> None:
    import torch

    store = CheckpointStore(tmp_path, keep=2)
    for step in (2, 4, 6):
        store.save(step, {"w": torch.full((2,), float(step))}, {}, {"cpu": torch.zeros(1)}, {"loop": {"step": step}})
    assert [s for s, _ in store.complete()] == [4, 6]
    # A crash mid-write leaves a temp folder; a folder missing its marker is not complete either.
    (tmp_path / ".tmp-step-00000008-1").mkdir()
    half = tmp_path / "step-00000010"
    half.mkdir()
    (half / "state.json").write_text("{}")
    assert store.latest() == tmp_path / "step-00000006"
    loaded = CheckpointStore.load(store.latest())
    assert loaded.step == 6 and torch.equal(loaded.weights["w"], torch.full((2,), 6.0))
    assert json.loads((tmp_path / "step-00000006" / MARKER).read_text()) == {"step": 6}
    with pytest.raises(FileNotFoundError):
        CheckpointStore.load(half)


def test_non_finite_loss_stops_keeps_the_last_good_checkpoint_and_says_what_to_try(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    """A loss that turns NaN at step 3 (as from an overflow): nothing after step 2 is written."""
    import torch

    calls = {"n": 0}

    def loss_going_bad(model, batch):
        calls["n"] += 1
        loss = causal_lm_loss(model, batch)
        return loss * float("nan") if calls["n"] >= 3 else loss

    model = tiny_model(tiny_model_dir)
    settings = TrainingSettings(max_steps=6, batch_size=2, save_steps=2, keep_checkpoints=5)
    store = CheckpointStore(tmp_path)
    got, sink = events_list()
    loop = TrainLoop(model=model, settings=settings, placement=CPU, batches=PackedBatches(sequences(4), 2, 1, 0, 2),
                     loss_fn=loss_going_bad, learning_rate=1e-3, events=sink, store=store, identity={})
    outcome = loop.run()
    assert outcome.status == "non_finite" and outcome.state.step == 3
    assert [s for s, _ in store.complete()] == [2]
    saved = CheckpointStore.load(store.latest())
    assert all(torch.isfinite(t).all() for t in saved.weights.values())
    errors = [f for kind, f in got if kind == "error"]
    assert len(errors) == 1 and errors[0]["kind"] == "non_finite_loss"
    assert "lower the learning rate" in errors[0]["message"] and "step-00000002" in errors[0]["message"]
    assert not [f for kind, f in got if kind == "progress" and not math.isfinite(f["loss"])]


def test_restore_brings_back_weights_optimizer_and_rng(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    settings = TrainingSettings(max_steps=4, batch_size=2, save_steps=2)
    rows = sequences(4)

    def make_loop(store_dir: Path):
        _, sink = events_list()
        return TrainLoop(model=tiny_model(tiny_model_dir), settings=settings, placement=CPU,
                         batches=PackedBatches(rows, 2, 1, 0, 2), loss_fn=causal_lm_loss, learning_rate=1e-3,
                         events=sink, store=CheckpointStore(store_dir), identity={"x": 1})

    first = make_loop(tmp_path / "a")
    first.run()
    checkpoint = CheckpointStore.load(CheckpointStore(tmp_path / "a").latest())
    assert checkpoint.step == 2 and checkpoint.state["identity"] == {"x": 1}
    second = make_loop(tmp_path / "b")
    state = second.restore(checkpoint)
    assert isinstance(state, LoopState) and state.step == 2
    assert torch.equal(torch.get_rng_state(), checkpoint.rng["cpu"])
    for name, param in second.named:
        assert torch.equal(param, checkpoint.weights[name])
        assert torch.equal(second.optimizer.state[param]["exp_avg"], checkpoint.optimizer[f"{name}::exp_avg"])
