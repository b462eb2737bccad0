"""Calibration store and its use in quotes, with throughput and memory measured here on a real tiny model."""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path

import pytest
from tunewise.advisor import calibration
from tunewise.advisor.hardware import find_hardware
from tunewise.advisor.probe import calibration_from_measurement, predict_step, write_probe_data
from tunewise.plugins import costs
from tunewise.plugins.data import load_dataset
from tunewise.plugins.manager import get_host
from tunewise.plugins.types import HardwareChoice, ModelProfile, Profile


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data-dir"
    monkeypatch.setenv(calibration.DATA_DIR_ENV, str(folder))
    return folder


def measure_tiny_training(model_dir: Path, *, steps: int = 4, batch: int = 2, seq: int = 64) -> tuple[float, float]:
    """Real forward/backward/AdamW steps on the tiny model: (tokens/s after one warm-up step, peak RSS GB)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    timings = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        timings.append(time.perf_counter() - start)
    per_step = sorted(timings[1:])[len(timings[1:]) // 2]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return batch * seq / per_step, peak


def test_measured_calibration_is_stored_and_used_by_quotes(tiny_model_dir: Path, data_dir: Path) -> None:
    tokens_per_s, peak = measure_tiny_training(tiny_model_dir)
    cpu = find_hardware("cpu")
    shape = costs.resolve_shape(str(tiny_model_dir), 0.1)
    cal = calibration_from_measurement(method="full_finetune", model="tiny", shape=shape, hardware=cpu,
                                       tokens_per_s=tokens_per_s, peak_memory_gb=peak, seq_len=64, micro_batch=2,
                                       steps=4)
    assert 0 < cal.mfu < 1
    assert cal.mfu == pytest.approx(tokens_per_s * costs.flops_per_token(shape, 64, "full") / (cpu.peak_tflops * 1e12),
                                    rel=1e-3)
    path = calibration.save(cal)
    assert path == data_dir / calibration.STORE_NAME and path.exists()
    assert calibration.lookup("CPU", "full_finetune") == cal  # names match case-insensitively
    assert calibration.lookup("cpu", "lora") is None

    calibrated = find_hardware("cpu")
    assert calibrated.calibration["full_finetune"]["mfu"] == cal.mfu
    # The probed setup is predicted as measured: step time and memory.
    step_s, memory, assumptions = predict_step("full_finetune", shape, calibrated, 64, 2)
    assert step_s == pytest.approx(128 / tokens_per_s, rel=0.01)
    assert memory == pytest.approx(peak, abs=0.01)
    assert "probe" in assumptions["calibration"]
    # Quotes through the method plugin say they used it; other methods keep the default MFU.
    profile = Profile(model=ModelProfile(name=str(tiny_model_dir)), hardware=HardwareChoice("cpu"),
                      training_tokens=1_000_000, seq_len=64)
    quote = get_host().method("full_finetune").estimate(profile, calibrated)
    assert quote.assumptions["mfu"] == pytest.approx(cal.mfu, rel=1e-3) and quote.assumptions["mfu_source"] == "probe calibration"
    uncalibrated = get_host().method("lora").estimate(profile, calibrated)
    assert uncalibrated.assumptions["mfu_source"].startswith("default")
    # A faster machine (higher MFU) gives a shorter quote: the calibration really drives the figure.
    faster = dataclasses.replace(calibrated, calibration={"full_finetune": {**calibrated.calibration["full_finetune"],
                                                                            "mfu": cal.mfu * 2}})
    assert get_host().method("full_finetune").estimate(profile, faster).wall_hours == pytest.approx(quote.wall_hours / 2)


def test_cpu_peak_record_replaces_the_catalogue_figure() -> None:
    default = find_hardware("cpu").peak_tflops
    calibration.record_cpu_peak(default * 1.5)
    cpu = find_hardware("cpu")
    assert cpu.peak_tflops == pytest.approx(default * 1.5, rel=1e-3) and "measured" in cpu.source


def test_corrupt_store_is_a_clear_error(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / calibration.STORE_NAME).write_text("{not json")
    with pytest.raises(calibration.CalibrationError, match="unreadable calibration store"):
        calibration.lookup("cpu", "lora")


def test_probe_data_matches_the_method_shape(tmp_path: Path) -> None:
    assert load_dataset(write_probe_data("lora", tmp_path / "a"), expect={"instruction"}).shape == "instruction"
    assert load_dataset(write_probe_data("continual_pretraining", tmp_path / "b"), expect={"text"}).shape == "text"
