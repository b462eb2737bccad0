"""Guardrails of a real ``tunewise run`` on a tiny model, each with a real fault and no mocks.

- damaged latest checkpoints (a truncated safetensors file, a missing ``COMPLETE`` marker) are
  skipped with a warning for the newest complete one; with none left, --resume refuses to restart
  from step 0 unless forced;
- weights holding inf (a poisoned base model whose loss stays finite) never reach a checkpoint;
- a spent budget (``max_usd`` priced from the hardware catalogue, ``max_hours``) checkpoints and
  stops with status ``stopped`` and exit code 3, and --resume continues once it is raised;
- too little disk (``min_free_disk_gb`` larger than the disk's real free space) stops before the
  next checkpoint with the folder, bytes needed and bytes free, leaving earlier checkpoints intact;
- running out of memory (an address-space limit, ``RLIMIT_AS``, on the real process; a long example
  makes one batch far larger than the others) ends the run with the last checkpoint intact and
  advice computed from the plan's values.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO
from test_checkpoint_resume import make_plan, read_events, run, tensors, tunewise

STOPPED = 3


def checkpoint_steps(out: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*"))


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def rewrite_training(plan: Path, **values: object) -> None:
    """Set (or with None, drop) keys of the plan's training section."""
    import yaml

    data = yaml.safe_load(plan.read_text())
    for key, value in values.items():
        if value is None:
            data["training"].pop(key, None)
        else:
            data["training"][key] = value
    plan.write_text(yaml.safe_dump(data))


def test_damaged_latest_checkpoints_are_skipped_never_silently_restarted(tmp_path: Path,
                                                                          tiny_model_dir: Path) -> None:
    import torch
    from tunewise.methods._hf.checkpoint import checkpoint_problem

    plan = make_plan(tmp_path, "full_finetune", tiny_model_dir, steps=8, save_steps=2, keep=3)
    out = tmp_path / "out"
    first = run(str(plan), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert checkpoint_steps(out) == [2, 4, 6]
    uninterrupted = tensors(out / "model" / "model.safetensors")

    # The newest checkpoint's weights cut short (a disk filled mid-write, a partial copy) and the one
    # before it without its marker (the save never finished).
    weights = out / "checkpoints" / "step-00000006" / "weights.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    (out / "checkpoints" / "step-00000004" / "COMPLETE").unlink()
    shutil.rmtree(out / "model")
    resumed = run(str(plan), "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    warnings = [e["message"] for e in read_events(out) if e["event"] == "log" and e["level"] == "warning"]
    assert any("step-00000006 is damaged (" in m and "weights.safetensors: " in m and "truncated" in m
               and "skipped for the newest complete one, step-00000002" in m for m in warnings), warnings
    assert any("step-00000004 is damaged (no COMPLETE marker" in m for m in warnings), warnings
    assert any(e["event"] == "log" and "resumed from" in e["message"] and "step-00000002 at step 2/8"
               in e["message"] for e in read_events(out))
    got = tensors(out / "model" / "model.safetensors")
    assert all(torch.equal(uninterrupted[n], got[n]) for n in uninterrupted), "resume from step 2 differs"

    # Every checkpoint damaged: --resume refuses to start again from step 0 ...
    for folder in (out / "checkpoints").glob("step-*"):
        (folder / "COMPLETE").unlink()
    refused = run(str(plan), "--out", str(out), "--resume")
    assert refused.returncode == 1
    assert "no complete checkpoint" in refused.stderr and "--force" in refused.stderr
    assert "step-00000006: no COMPLETE marker" in refused.stderr
    assert all(checkpoint_problem(p) for p in (out / "checkpoints").glob("step-*"))  # nothing deleted unasked


def poisoned_model(source: Path, target: Path, token: int) -> Path:
    """``source`` with untied output weights and an infinite input embedding for token ``token``.

    The data never uses that token, so the loss and gradients stay finite: only the weights tell.
    """
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (target / "config.json").write_text(json.dumps(config))
    weights = load_file(str(target / "model.safetensors"))
    embed = weights["model.embed_tokens.weight"]
    weights["lm_head.weight"] = embed.clone()
    embed[token] = float("inf")
    save_file(weights, str(target / "model.safetensors"))
    return target


def test_weights_that_are_not_finite_never_reach_a_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    token = 45_000
    model = poisoned_model(tiny_model_dir, tmp_path / "poisoned", token)
    plan = make_plan(tmp_path, "full_finetune", model, steps=4, save_steps=1)
    out = tmp_path / "out"
    result = run(str(plan), "--out", str(out))
    assert result.returncode == 1, result.stderr
    events = read_events(out)
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and all(e["loss"] == e["loss"] and e["loss"] < 1e6 for e in progress)  # the loss looked fine
    error = [e for e in events if e["event"] == "error"][-1]
    assert error["kind"] == "non_finite_weights"
    assert "model.embed_tokens.weight" in error["message"] and "refusing to write them" in error["message"]
    assert "No checkpoint had been written yet" in error["message"] and "lower learning rate" in error["message"]
    assert events[-1]["status"] == "failed" and json.loads((out / "run.json").read_text())["status"] == "failed"
    assert not list((out / "checkpoints").glob("step-*")) and not (out / "model").exists()
    written = list(out.rglob("*.safetensors"))
    for file in written:  # nothing non-finite anywhere on disk (none written at all, in fact)
        assert all(bool(t.isfinite().all()) for t in load_file(str(file)).values() if t.is_floating_point())
    assert not list(out.rglob(".tmp-step-*")), "a half-written checkpoint was left behind"


def test_budget_and_disk_guardrails_checkpoint_stop_and_resume(tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = make_plan(tmp_path, "full_finetune", tiny_model_dir, steps=6, save_steps=3, keep=2,
                     extra_training="max_usd: 0.000001\nbudget_hardware: A100-80GB")
    out = tmp_path / "out"

    # 1. The money budget is spent after the first step: checkpoint, stop, exit code 3.
    first = run(str(plan), "--out", str(out))
    assert first.returncode == STOPPED, first.stderr
    end = read_events(out)[-1]
    assert end["event"] == "end" and end["status"] == "stopped"
    message = end["result"]["message"]
    assert message.startswith("stopped: budget: training.max_usd 1e-06 reached")
    assert "A100-80GB's high catalogue price (usd_per_hour_high)" in message and "--resume" in message
    assert checkpoint_steps(out) == [1] and not (out / "model").exists()
    assert json.loads((out / "run.json").read_text())["reason"] == "budget"
    assert any(e["event"] == "log" and e.get("kind") == "budget" for e in read_events(out))
    kept = digest(out / "checkpoints" / "step-00000001")

    # 2. Resumed with the same limit: it says so and trains nothing more.
    again = run(str(plan), "--out", str(out), "--resume")
    assert again.returncode == STOPPED and "nothing more was trained" in read_events(out)[-1]["result"]["message"]

    # 3. Limit lifted, but the disk check demands more free space than the disk has: it stops at the
    #    next save (step 3) before writing, naming the folder, bytes needed and bytes free.
    rewrite_training(plan, max_usd=None, budget_hardware=None, min_free_disk_gb=1e9)
    full = run(str(plan), "--out", str(out), "--resume")
    assert full.returncode == STOPPED, full.stderr
    error = [e for e in read_events(out) if e["event"] == "error"][-1]
    assert error["kind"] == "disk_space" and error["folder"] == str(out / "checkpoints")
    assert error["needed_bytes"] > 0 and error["free_bytes"] == pytest.approx(shutil.disk_usage(out).free, rel=0.2)
    assert f"not enough disk space in {out / 'checkpoints'} for checkpoint step-00000003" in error["message"]
    assert f"({error['needed_bytes']:,} bytes)" in error["message"] and f"({error['free_bytes']:,} bytes)" in \
        error["message"]
    assert "Last complete checkpoint" in error["message"] and "step-00000001" in error["message"]
    assert read_events(out)[-1]["status"] == "stopped"
    assert checkpoint_steps(out) == [1] and digest(out / "checkpoints" / "step-00000001") == kept
    assert not list((out / "checkpoints").glob(".tmp-*"))

    # 4. Space "freed": --resume continues from the intact checkpoint to the end.
    rewrite_training(plan, min_free_disk_gb=None)
    done = run(str(plan), "--out", str(out), "--resume")
    assert done.returncode == 0, done.stderr
    events = read_events(out)
    assert any(e["event"] == "log" and "step-00000001 at step 1/6" in e["message"] for e in events)
    assert events[-1]["status"] == "completed" and events[-1]["result"]["steps"] == 6
    assert (out / "model" / "model.safetensors").is_file()


def test_max_hours_stops_after_the_step_that_spends_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = make_plan(tmp_path, "lora", tiny_model_dir, steps=6, save_steps=3, extra_training="max_hours: 0.000001")
    out = tmp_path / "out"
    result = run(str(plan), "--out", str(out))
    assert result.returncode == STOPPED, result.stderr
    assert "stopped: budget: training.max_hours 1e-06 reached" in read_events(out)[-1]["result"]["message"]
    assert checkpoint_steps(out) == [1]
    state = json.loads((out / "checkpoints" / "step-00000001" / "state.json").read_text())
    assert state["loop"]["extra"]["budget_wall_s"] > 0  # the time used so far travels with the checkpoint


def test_bad_budget_settings_are_named_before_any_model_loads(tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = make_plan(tmp_path, "lora", tiny_model_dir, steps=2, extra_training="max_usd: 5")
    result = run(str(plan), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "training.max_usd" in result.stderr and "usd_per_hour" in result.stderr
    rewrite_training(plan, budget_hardware="no-such-gpu", min_free_disk_gb=-1)
    result = run(str(plan), "--out", str(tmp_path / "out"))
    assert result.returncode != 0 and "training.min_free_disk_gb" in result.stderr
    rewrite_training(plan, min_free_disk_gb=None)
    result = run(str(plan), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "training.budget_hardware: unknown hardware 'no-such-gpu'" in result.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


# -- out of memory ---------------------------------------------------------------------------------

HEADROOM_BYTES = int(1.85e9)
"""Address space allowed above an idle torch + transformers process: enough for the short batches,
far too little for the batch holding the 2,048-token example (its logits alone are ~0.4 GB a copy)."""


def _baseline_address_space(env: dict[str, str]) -> int:
    code = ("import torch, transformers\nfrom tunewise.methods._hf import modeling\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmPeak')))")
    kb = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                        check=True).stdout.split()[-1]
    return int(kb) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux")
def test_out_of_memory_mid_training_keeps_the_last_checkpoint_and_advises(tmp_path: Path,
                                                                          tiny_model_dir: Path) -> None:
    from tunewise.methods._hf.checkpoint import checkpoint_problem

    rows = [{"messages": [{"role": "user", "content": f"Status of order {1000 + i}?"},
                          {"role": "assistant", "content": f"Order {1000 + i} ships in {i % 5 + 1} days."}]}
            for i in range(39)]
    rows.insert(20, {"messages": [{"role": "user", "content": "Write many words."},
                                  {"role": "assistant", "content": " ".join(f"word{j % 97}" for j in range(2500))}]})
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""method: full_finetune
model: {tiny_model_dir}
data: chat.jsonl
training:
  max_steps: 10
  batch_size: 4
  seq_len: 2048
  packing: false
  precision: fp32
  learning_rate: 1.0e-3
  save_steps: 1
  generation_examples: 0
""")
    # Fixed thread and malloc-arena counts keep the address space the same on machines with more cores.
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "MALLOC_ARENA_MAX": "2"}
    limit = _baseline_address_space(env) + HEADROOM_BYTES

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out = tmp_path / "out"
    result = subprocess.run(tunewise(str(plan), "--out", str(out)), cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300, preexec_fn=limit_memory)
    assert result.returncode == 1, result.stderr
    events = read_events(out)
    error = [e for e in events if e["event"] == "error"][-1]
    assert error["kind"] == "oom", error
    message = error["message"]
    steps_done = max(e["step"] for e in events if e["event"] == "progress")
    assert steps_done >= 2, "the fault should come mid-training, after some checkpoints"
    assert message.startswith("out of memory on cpu") and "allocate" in message
    assert "training.batch_size 4 -> 2 with training.grad_accum 1 -> 2" in message
    assert "training.gradient_checkpointing: true" in message and "training.seq_len 2048 -> 1024" in message
    assert "method lora instead of full_finetune" in message and "QLoRA" in message
    last = out / "checkpoints" / f"step-{steps_done:08d}"
    assert f"Last complete checkpoint: {last}" in message
    assert checkpoint_problem(last) is None and checkpoint_steps(out) == [steps_done]
    assert events[-1]["status"] == "failed" and json.loads((out / "run.json").read_text())["reason"] == "oom"
