"""Real ``tunewise run`` processes on a tiny model: kill -9 mid-run, resume, compare every tensor.

Also: a checkpoint from another run is refused (naming what differs), SIGTERM checkpoints and
exits 130, and a non-finite loss fails the run without writing weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import REPO

TRAINED_FILE = {"full_finetune": "model/model.safetensors", "lora": "adapter/adapter_model.safetensors",
                "continual_pretraining": "model/model.safetensors"}


def chat_rows(count: int) -> str:
    rows = []
    for i in range(count):
        rows.append({"messages": [
            {"role": "user", "content": f"What is the status of order {1000 + i}?"},
            {"role": "assistant", "content": f"Order {1000 + i} ships in {i % 5 + 1} days."}]})
    return "".join(json.dumps(r) + "\n" for r in rows)


def make_plan(folder: Path, method: str, model: Path, *, steps: int = 24, extra_config: str = "",
              save_steps: int = 3, keep: int = 2, extra_training: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if method == "continual_pretraining":
        docs = folder / "docs"
        docs.mkdir(exist_ok=True)
        for i in range(12):
            (docs / f"doc{i:02d}.txt").write_text(f"Document {i}. " + " ".join(f"word{(i * 7 + j) % 50}"
                                                                                for j in range(60)))
        data = "docs"
    else:
        (folder / "chat.jsonl").write_text(chat_rows(40))
        data = "chat.jsonl"
    plan = folder / "plan.yaml"
    plan.write_text(f"""\
method: {method}
model: {model}
data: {data}
config: {{{extra_config}}}
training:
  max_steps: {steps}
  batch_size: 2
  seq_len: 64
  learning_rate: 1.0e-3
  save_steps: {save_steps}
  keep_checkpoints: {keep}
  generation_examples: 2
  max_new_tokens: 4
""" + "".join(f"  {line}\n" for line in extra_training.splitlines() if line.strip()))
    return plan


def tunewise(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunewise.advisor.cli", "run", *args, "--quiet"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tunewise(*args), capture_output=True, text=True, cwd=REPO, timeout=timeout)


def read_events(out: Path) -> list[dict]:
    path = out / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_and_stop(plan: Path, out: Path, sig: int, when: str = "checkpoint", timeout: float = 240) -> int:
    """Start a run, send ``sig`` as soon as its first ``when`` event is written, return its exit code."""
    proc = subprocess.Popen(tunewise(str(plan), "--out", str(out)), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if any(e["event"] == when for e in read_events(out)):
                proc.send_signal(sig)
                break
            if proc.poll() is not None:
                pytest.fail(f"run ended before it could be stopped: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.02)
        else:
            pytest.fail("no checkpoint event in time")
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.parametrize("method", ["full_finetune", "lora", "continual_pretraining"])
def test_kill_9_then_resume_gives_bit_identical_weights(method: str, tmp_path: Path, tiny_model_dir: Path) -> None:
    import torch

    plan = make_plan(tmp_path, method, tiny_model_dir)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    reference = subprocess.Popen(tunewise(str(plan), "--out", str(straight)), cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        code = start_and_stop(plan, interrupted, signal.SIGKILL)
        assert code == -signal.SIGKILL
        events = read_events(interrupted)
        assert not any(e["event"] == "end" for e in events)
        killed_at = max(e["step"] for e in events if e["event"] == "progress")
        assert killed_at < 24 and not (interrupted / TRAINED_FILE[method]).exists()
    finally:
        _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    resumed = run(str(plan), "--out", str(interrupted), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    events = read_events(interrupted)
    assert any(e["event"] == "log" and "resumed from" in e["message"] for e in events)
    assert events[-1]["event"] == "end" and events[-1]["status"] == "completed"

    expected, got = tensors(straight / TRAINED_FILE[method]), tensors(interrupted / TRAINED_FILE[method])
    assert expected.keys() == got.keys() and expected
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), f"{name} differs after resume"
    before = json.loads((straight / "metrics.json").read_text())
    assert json.loads((interrupted / "metrics.json").read_text()) == before
    assert before["after"]["loss"] < before["before"]["loss"]


def test_resume_refuses_a_checkpoint_from_another_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = make_plan(tmp_path / "a", "lora", tiny_model_dir, steps=4)
    out = tmp_path / "out"
    assert run(str(plan), "--out", str(out)).returncode == 0
    assert (out / "checkpoints" / "step-00000003" / "COMPLETE").is_file()

    again = run(str(plan), "--out", str(out))
    assert again.returncode == 1 and "already holds a run" in again.stderr and "--resume" in again.stderr

    other = make_plan(tmp_path / "b", "lora", tiny_model_dir, steps=4, extra_config="r: 4")
    (tmp_path / "b" / "chat.jsonl").write_text(chat_rows(41))
    refused = run(str(other), "--out", str(out), "--resume")
    assert refused.returncode == 1
    assert "cannot resume" in refused.stderr and "config.r: checkpoint 8, plan 4" in refused.stderr
    assert "chat.jsonl is new" in refused.stderr and "--force" in refused.stderr
    error = [e for e in read_events(out) if e["event"] == "error"][-1]
    assert error["kind"] == "resume" and read_events(out)[-1]["status"] == "failed"

    # --force cannot bridge a different adapter shape ...
    reshaped = run(str(other), "--out", str(out), "--resume", "--force")
    assert reshaped.returncode == 1 and "other shapes" in reshaped.stderr and "lora_A" in reshaped.stderr
    # ... but resumes across other differences (here: the data file changed).
    same_shape = make_plan(tmp_path / "c", "lora", tiny_model_dir, steps=4)
    (tmp_path / "c" / "chat.jsonl").write_text(chat_rows(41))
    forced = run(str(same_shape), "--out", str(out), "--resume", "--force")
    assert forced.returncode == 0, forced.stderr
    assert any(e["event"] == "log" and "despite differences" in e["message"] for e in read_events(out))


def test_sigterm_checkpoints_and_exits_130_then_resumes(tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = make_plan(tmp_path, "full_finetune", tiny_model_dir, steps=40)
    out = tmp_path / "out"
    assert start_and_stop(plan, out, signal.SIGTERM, when="progress") == 130
    events = read_events(out)
    end = events[-1]
    assert end["event"] == "end" and end["status"] == "cancelled" and "--resume" in end["result"]["message"]
    checkpoint = [e for e in events if e["event"] == "checkpoint"][-1]
    assert (Path(checkpoint["path"]) / "COMPLETE").is_file()
    assert end["peak_memory_gb"] > 0
    finished = run(str(plan), "--out", str(out), "--resume", "--max-steps", "40")
    assert finished.returncode == 0, finished.stderr
    assert read_events(out)[-1]["result"]["steps"] == 40


def test_non_finite_loss_fails_without_writing_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A model with an infinite weight: the loss is not finite from the first step."""
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    weights = load_file(str(broken / "model.safetensors"))
    name = next(n for n in weights if n.endswith("post_attention_layernorm.weight"))
    weights[name][0] = float("inf")
    save_file(weights, str(broken / "model.safetensors"))
    plan = make_plan(tmp_path, "full_finetune", broken, steps=6)
    out = tmp_path / "out"
    result = run(str(plan), "--out", str(out))
    assert result.returncode == 1
    errors = [e for e in read_events(out) if e["event"] == "error"]
    assert errors and errors[0]["kind"] == "non_finite_loss"
    assert "lower the learning rate" in errors[0]["message"] and "without saving" in errors[0]["message"]
    assert not (out / "model").exists() and not list((out / "checkpoints").glob("step-*"))
    assert os.path.exists(out / "run.json") and json.loads((out / "run.json").read_text())["status"] == "failed"
