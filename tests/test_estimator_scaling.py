"""Quote assumptions that must match what a run does: calibrated throughput, processes and sharding (no torch)."""

from __future__ import annotations

import dataclasses

import pytest
from tunewise.plugins import costs
from tunewise.plugins.costs import TrainSetup
from tunewise.plugins.parallelism import state_fractions
from tunewise.plugins.types import Hardware

SHAPE = costs.shape_from_params(0.135)
CPU = Hardware("cpu", 0.05, 16, 0, 0, kind="cpu")
H100 = Hardware("H100-SXM", 989, 80, 2.0, 3.5)


def test_calibrated_throughput_survives_a_later_peak_measurement() -> None:
    """A probe's MFU is relative to the peak it measured; a later probe replacing the CPU peak must not
    change the predicted step time of the first method."""
    setup = TrainSetup(seq_len=128, micro_batch=2)
    tokens = 256
    flops = costs.flops_per_token(SHAPE, 128, "lora") * tokens
    cal = {"lora": {"mfu": 0.4, "peak_tflops": 0.05, "memory_offset_gb": 0.0}}
    probed = dataclasses.replace(CPU, calibration=cal)
    remeasured = dataclasses.replace(CPU, peak_tflops=0.04, calibration=cal)
    expected_s = flops / (0.4 * 0.05e12)
    for hardware in (probed, remeasured):
        quote = costs.training_quote("lora", SHAPE, tokens, hardware, setup, kind="lora", auto_fit=False)
        assert quote.wall_hours * 3600 == pytest.approx(expected_s, rel=1e-6)


def test_cpu_processes_share_the_machine_gpus_divide_the_work() -> None:
    one, two = TrainSetup(seq_len=256), TrainSetup(seq_len=256, gpus=2)
    cpu_one = costs.training_quote("full_finetune", SHAPE, 1e6, CPU, one, auto_fit=False)
    cpu_two = costs.training_quote("full_finetune", SHAPE, 1e6, CPU, two, auto_fit=False)
    assert cpu_two.wall_hours == pytest.approx(cpu_one.wall_hours)  # same cores, split between processes
    assert "share this machine" in cpu_two.assumptions["scaling"]
    tight = dataclasses.replace(CPU, memory_gb=cpu_two.peak_memory_gb * 1.5)
    assert not costs.training_quote("full_finetune", SHAPE, 1e6, tight, two, auto_fit=False).fits  # 2 copies
    gpu_one = costs.training_quote("full_finetune", SHAPE, 1e6, H100, one, auto_fit=False)
    gpu_two = costs.training_quote("full_finetune", SHAPE, 1e6, H100, two, auto_fit=False)
    assert gpu_two.wall_hours == pytest.approx(gpu_one.wall_hours / 2)


@pytest.mark.parametrize(("strategy", "kind"), [("ddp", "full"), ("fsdp", "full"), ("deepspeed_zero2", "full"),
                                                ("deepspeed_zero3", "full"), ("ddp", "lora"), ("fsdp", "lora")])
def test_memory_split_per_strategy_is_the_runtime_table(strategy: str, kind: costs.TrainKind) -> None:
    """The quote divides exactly the states the strategy shards (the table the runtime uses) by N."""
    one = costs.training_memory(SHAPE, TrainSetup(seq_len=256), H100, kind)
    four = costs.training_memory(SHAPE, TrainSetup(seq_len=256, gpus=4, strategy=strategy), H100, kind)
    share = state_fractions(strategy, 4)
    assert four["weights"] == pytest.approx(one["weights"] * share.weights)
    assert four["gradients"] == pytest.approx(one["gradients"] * share.gradients)
    assert four["optimizer"] == pytest.approx(one["optimizer"] * share.optimizer)
    assert four["activations"] == pytest.approx(one["activations"])  # never sharded
    expected = {"ddp": (1, 1, 1), "deepspeed_zero2": (1, 0.25, 0.25)}.get(strategy, (0.25, 0.25, 0.25))
    assert (share.weights, share.gradients, share.optimizer) == expected


def test_fp32_runs_hold_a_four_byte_base_and_activations() -> None:
    """A CPU without fast bf16 trains in fp32 (methods._hf.device): the frozen LoRA base and the layer
    activations take 4 bytes per value, not 2; the calibration carries the probed precision into quotes."""
    bf16 = costs.training_memory(SHAPE, TrainSetup(seq_len=256, micro_batch=2), CPU, "lora")
    fp32 = costs.training_memory(SHAPE, TrainSetup(seq_len=256, micro_batch=2, precision="fp32"), CPU, "lora")
    assert fp32["weights"] - bf16["weights"] == pytest.approx(2 * SHAPE.params / 1e9)
    logits = 256 * 2 * SHAPE.vocab * costs.LOGIT_BYTES / 1e9
    assert fp32["activations"] - logits == pytest.approx(2 * (bf16["activations"] - logits))
    cal = {"lora": {"mfu": 0.4, "peak_tflops": 0.05, "memory_offset_gb": 0.1, "precision": "fp32"}}
    quote = costs.training_quote("lora", SHAPE, 512, dataclasses.replace(CPU, calibration=cal),
                                 TrainSetup(seq_len=256, micro_batch=2), kind="lora", auto_fit=False)
    assert quote.peak_memory_gb == pytest.approx(costs.total_gb(fp32) + 0.1, abs=1e-3)
