"""Real ``tunewise run`` processes on a tiny model: kill -9 at seeded random points, resume, compare
every tensor with an uninterrupted run (full fine-tuning, LoRA, continual pretraining; the RLHF reward
model and DPO stages are in test_rlhf_stages.py).

Also: a checkpoint from another run is refused (naming what differs), SIGTERM checkpoints and
exits 130, and a non-finite loss fails the run without writing weights.
"""

from __future__ import annotations

import json
import os
import random
import re
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
    # --allow-outside-paths: the plans name the session's tiny model, which lives outside their folder.
    return [sys.executable, "-m", "tunewise.advisor.cli", "run", *args, "--quiet", "--allow-outside-paths"]


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


KILL_SEEDS = (0, 1)
"""Seeds of the kill points: each draws a step and a delay after that step's progress event, so the
kill lands inside a step, inside a checkpoint write or between them (one kill per seed, in turn)."""
KILL_STEPS = 8


def kill_at(command: list[str], out: Path, step: int, delay: float, timeout: float = 240) -> int:
    """Start ``command``, SIGKILL it ``delay`` s after its first progress event at ``step`` or later;
    returns the last step it reported."""
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if any(e["event"] == "progress" and e["step"] >= step for e in read_events(out)):
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail(f"run ended before step {step}: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.01)
        else:
            pytest.fail(f"no progress event for step {step} in time")
        assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before the kill landed"
    finally:
        if proc.poll() is None:
            proc.kill()
    events = read_events(out)
    assert not any(e["event"] == "end" for e in events)
    return max(e["step"] for e in events if e["event"] == "progress")


def kill_point(seed: int, name: str, low: int, high: int) -> tuple[int, float]:
    """A step in [low, high] and a delay of up to half a second, drawn from ``seed`` and ``name``."""
    rng = random.Random(f"{seed}:{name}")
    return rng.randint(low, high), rng.uniform(0.0, 0.5)


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """One uninterrupted run per method, shared by every kill seed (started side by side)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    procs = {}
    for method in TRAINED_FILE:
        plan = make_plan(root / method, method, tiny_model_dir, steps=KILL_STEPS, save_steps=2)
        procs[method] = subprocess.Popen(tunewise(str(plan), "--out", str(root / method / "out")), cwd=REPO,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for method, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{method}: {err}"
    return {method: root / method / "out" for method in TRAINED_FILE}


def resumed_steps(events: list[dict]) -> list[int]:
    """The step of each ``resumed from … at step N/`` message."""
    return [int(m.group(1)) for e in events if e["event"] == "log"
            and (m := re.search(r"resumed from .*step-\d+ at step (\d+)/", e["message"]))]


@pytest.mark.parametrize("method", list(TRAINED_FILE))
def test_sigkill_at_seeded_random_points_then_resume_gives_bit_identical_weights(
        method: str, tmp_path: Path, tiny_model_dir: Path, references: dict[str, Path]) -> None:
    """One run killed once per seed, at increasing random points, resumed after each kill."""
    import torch

    plan = make_plan(tmp_path, method, tiny_model_dir, steps=KILL_STEPS, save_steps=2)
    out = tmp_path / "out"
    low = 1
    for number, seed in enumerate(KILL_SEEDS):
        if low > KILL_STEPS - 2:  # the last kill came late (in the final evaluation): no room for another
            break
        high = low + (KILL_STEPS - 2 - low) // (len(KILL_SEEDS) - number)
        step, delay = kill_point(seed, method, low, high)
        saved_before = [e["step"] for e in read_events(out) if e["event"] == "checkpoint"]
        args = ["--resume"] if number else []
        killed_at = kill_at(tunewise(str(plan), "--out", str(out), *args), out, step, delay)
        assert killed_at <= KILL_STEPS  # a kill during the final evaluation or save counts too
        events = read_events(out)
        if number and saved_before:  # a resume starts from the newest checkpoint the killed process finished
            assert resumed_steps(events) and resumed_steps(events)[-1] >= saved_before[-1]
        low = max(step, killed_at) + 1

    saved = [e["step"] for e in read_events(out) if e["event"] == "checkpoint"]
    resumed = run(str(plan), "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    events = read_events(out)
    if saved:  # its event may be missing when the kill came right after the save: then a newer one
        assert saved[-1] <= resumed_steps(events)[-1] <= KILL_STEPS
    assert events[-1]["event"] == "end" and events[-1]["status"] == "completed"

    reference = references[method]
    expected, got = tensors(reference / TRAINED_FILE[method]), tensors(out / TRAINED_FILE[method])
    assert expected.keys() == got.keys() and expected
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), f"{name} differs after kills and resumes"
    before = json.loads((reference / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text()) == before


def test_resume_refuses_a_checkpoint_from_another_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = make_plan(tmp_path / "a", "lora", tiny_model_dir, steps=4)
    out = tmp_path / "out"
    assert run(str(plan), "--out", str(out)).returncode == 0
    assert (out / "checkpoints" / "step-00000003" / "COMPLETE").is_file()

    again = run(str(plan), "--out", str(out))
    assert again.returncode == 1 and "already holds a run" in again.stderr and "--resume" in again.stderr

    other = make_plan(tmp_path / "b", "lora", tiny_model_dir, steps=4, extra_config="r: 4")
    (tmp_path / "b" / "chat.jsonl").write_text(chat_rows(41))
    events_before = (out / "events.jsonl").read_bytes()
    refused = run(str(other), "--out", str(out), "--resume")
    assert refused.returncode == 1
    assert "cannot resume" in refused.stderr and "config.r: checkpoint 8, plan 4" in refused.stderr
    assert "chat.jsonl is new" in refused.stderr and "--force" in refused.stderr
    assert (out / "events.jsonl").read_bytes() == events_before  # a refused run writes nothing

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
    plan = make_plan(tmp_path, "full_finetune", tiny_model_dir, steps=16)
    out = tmp_path / "out"
    assert start_and_stop(plan, out, signal.SIGTERM, when="progress") == 130
    events = read_events(out)
    end = events[-1]
    assert end["event"] == "end" and end["status"] == "cancelled" and "--resume" in end["result"]["message"]
    checkpoint = [e for e in events if e["event"] == "checkpoint"][-1]
    assert (Path(checkpoint["path"]) / "COMPLETE").is_file()
    assert end["peak_memory_gb"] > 0
    finished = run(str(plan), "--out", str(out), "--resume", "--max-steps", "16")
    assert finished.returncode == 0, finished.stderr
    assert read_events(out)[-1]["result"]["steps"] == 16


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
