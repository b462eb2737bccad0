"""Both CPU precision paths train, wherever the suite runs.

``training.precision: auto`` picks bf16 autocast on CPUs with AMX/AVX512-BF16 and fp32 elsewhere, so
a suite that only ever used ``auto`` would cover one path per machine. Here the same short run is
forced to ``fp32`` and to ``bf16`` through the real ``tunewise run``; each must train (finite,
falling loss, moved weights), record the precision it used, and start from the same loss within the
rounding of the precision in use. On a CPU without fast bf16 the 16-bit matmuls are emulated: on a
2-layer tiny model that costs seconds, not minutes, so neither path is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_cli

# bfloat16 keeps 8 significant bits: one rounding of an input is within 2**-8 relative. A loss is a
# long chain of such roundings that partly cancel; 3% on the first loss is well above the observed
# ~0.3% and far below what a broken autocast (wrong dtype on the head, no upcast of logits) gives.
BF16_FIRST_LOSS_REL = 3e-2


def _plan(folder: Path, model: Path, precision: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"Which shelf holds box {i}?"},
                          {"role": "assistant", "content": f"Box {i} is on shelf {i % 3}."}]} for i in range(16)]
    (folder / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.yaml"
    plan.write_text(f"""\
method: full_finetune
model: {model}
data: chat.jsonl
training:
  max_steps: 6
  batch_size: 4
  seq_len: 64
  learning_rate: 3.0e-3
  warmup_ratio: 0.0
  save_steps: 100
  eval_max_examples: 2
  generation_examples: 0
  device: cpu
  precision: {precision}
""")
    return plan


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    outs = {}
    for precision in ("fp32", "bf16"):
        folder = tmp_path_factory.mktemp(f"precision-{precision}")
        out = folder / "out"
        done = run_cli("run", str(_plan(folder, tiny_model_dir, precision)), "--out", str(out), "--quiet",
                       "--allow-outside-paths", timeout=600)  # the tiny model lives outside the plan's folder
        assert done.returncode == 0, done.stderr[-3000:]
        outs[precision] = out
    return outs


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_forced_precision_trains_and_says_which_it_used(runs: dict[str, Path], tiny_model_dir: Path,
                                                        precision: str) -> None:
    from safetensors.torch import load_file

    events = _events(runs[precision])
    start = next(e for e in events if e["event"] == "start")
    assert f"({precision})" in start["device"], start["device"]
    losses = [e["loss"] for e in events if e["event"] == "progress"]
    assert len(losses) == 6 and all(loss == loss and loss < float("inf") for loss in losses)
    assert min(losses[-2:]) < losses[0], losses  # it learned something in six steps at this rate
    base, trained = load_file(str(tiny_model_dir / "model.safetensors")), load_file(
        str(runs[precision] / "model" / "model.safetensors"))
    assert any(not base[name].float().equal(tensor.float()) for name, tensor in trained.items() if name in base)
    for name, tensor in trained.items():
        # The saved weights are finite and keep the base's dtype whatever the compute precision was.
        assert bool(tensor.float().isfinite().all()), name
        if name in base:
            assert tensor.dtype == base[name].dtype, name


def test_bf16_and_fp32_start_from_the_same_loss_within_bf16_rounding(runs: dict[str, Path]) -> None:
    first = {p: next(e["loss"] for e in _events(out) if e["event"] == "progress") for p, out in runs.items()}
    assert first["bf16"] == pytest.approx(first["fp32"], rel=BF16_FIRST_LOSS_REL)
    # bf16 must not be silently fp32: autocast rounds the matmuls, so the losses are not bit-equal.
    assert first["bf16"] != first["fp32"]
