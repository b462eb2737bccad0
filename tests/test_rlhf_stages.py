"""RLHF / DPO stages on a tiny random model: each stage trains, resumes exactly after an interruption,
and stops on a non-finite loss; a whole RLOO run is cancelled by SIGTERM and finished with --resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from tunewise.methods._hf.device import resolve_placement
from tunewise.methods._hf.settings import TrainingSettings
from tunewise.methods.rlhf.config import RlhfConfig
from tunewise.methods.rlhf.preferences import PreferencePair, Prompt
from tunewise.methods.rlhf.stages import Stage, StageStopped

RUDE = ("Ugh, whatever.", "Figure it out yourself.", "Stupid question.", "Not my problem.")


def make_pairs(n: int) -> list[PreferencePair]:
    """Pairs where the preferred answer is short and polite, the rejected one rude: learnable."""
    return [PreferencePair((("user", f"How do I do task {i}?"),), f"Do step {i}, then check it. Thanks!",
                           f"{RUDE[i % 4]} Task {i} is obvious and boring, go away.", f"pairs.jsonl:{i + 1}")
            for i in range(n)]


class Events(list[dict[str, Any]]):
    def __call__(self, event: str, /, **fields: Any) -> None:
        self.append({"event": event, **fields})

    def messages(self) -> str:
        return "\n".join(str(e.get("message", "")) for e in self)


def make_stage(name: str, root: Path, events: Events, **training: Any) -> Stage:
    settings = TrainingSettings(**{"batch_size": 4, "save_steps": 1, "keep_checkpoints": 3, "max_steps": 2,
                                   "warmup_ratio": 0.0, "seed": 3, **training})
    return Stage(name, root, settings, resolve_placement("cpu", "fp32"), events)


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no weights in {folder}"
    out: dict[str, Any] = {}
    for file in files:
        out.update(load_file(str(file)))
    return out


def assert_same_weights(a: dict[str, Any], b: dict[str, Any]) -> None:
    import torch

    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ from the uninterrupted run: {different[:3]}"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from tunewise.plugins.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def run_stage(kind: str, stage: Stage, model: Path, tokenizer: Any, reward: Path | None) -> dict[str, Any]:
    pairs = make_pairs(8)
    if kind == "reward_model":
        from tunewise.methods.rlhf.reward_model import train_reward_model

        return train_reward_model(stage, RlhfConfig(reward_max_steps=2, reward_learning_rate=1e-3), model,
                                  tokenizer, pairs, 128)
    if kind == "sft":
        from tunewise.methods.rlhf.sft import train_sft

        return train_sft(stage, RlhfConfig(sft=True, sft_max_steps=2, sft_learning_rate=1e-3), model, tokenizer,
                         None, pairs)
    if kind == "dpo":
        from tunewise.methods.rlhf.dpo import train_dpo

        return train_dpo(stage, RlhfConfig(algorithm="dpo"), model, tokenizer, pairs, pairs[:4], 128)
    from tunewise.methods.rlhf.policy import train_policy

    assert reward is not None
    config = RlhfConfig(algorithm=kind, num_generations=2, prompts_per_step=1, max_new_tokens=4, lora=True)
    prompts = [Prompt(p.prompt, p.where) for p in pairs]
    return train_policy(stage, config, model, tokenizer, prompts, reward)


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tokenizer: Any) -> Path:
    stage = make_stage("reward_model", tmp_path_factory.mktemp("judge"), Events(), save_steps=100, max_steps=1)
    run_stage("reward_model", stage, tiny_model_dir, tokenizer, None)
    return stage.model_dir


@pytest.mark.parametrize("kind", ["reward_model", "sft", "dpo", "grpo"])
def test_stage_resumes_after_interruption_with_the_same_weights(kind: str, tmp_path: Path, tiny_model_dir: Path,
                                                               tokenizer: Any, reward_dir: Path) -> None:
    events = Events()
    stage = make_stage("policy" if kind in ("dpo", "grpo") else kind, tmp_path, events,
                       learning_rate=1e-3 if kind != "dpo" else 1e-4)
    summary = run_stage(kind, stage, tiny_model_dir, tokenizer, reward_dir)
    assert summary["steps"] == 2 and len(summary["history"]) == 2
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["step"] for e in progress] == [1, 2] and all(e["stage"] == stage.name for e in progress)
    assert {e["step"] for e in events if e["event"] == "checkpoint"} == {1, 2}
    uninterrupted = weights(stage.model_dir)

    # As if killed during step 2: its checkpoint was half written and the final weights never were.
    shutil.rmtree(stage.model_dir)
    (stage.checkpoints / "checkpoint-2" / "trainer_state.json").unlink()
    events.clear()
    run_stage(kind, stage, tiny_model_dir, tokenizer, reward_dir)
    assert "resuming from" in events.messages() and "checkpoint-1" in events.messages()
    assert [e["step"] for e in events if e["event"] == "progress"] == [2]
    assert_same_weights(uninterrupted, weights(stage.model_dir))
    if kind == "dpo":
        assert 0.0 <= summary["held_out"]["dpo_implicit_accuracy"] <= 1.0


def test_reward_model_learns_the_preference(tmp_path: Path, tiny_model_dir: Path, tokenizer: Any) -> None:
    from tunewise.methods.rlhf.reward_model import RewardScorer, train_reward_model

    stage = make_stage("reward_model", tmp_path, Events(), save_steps=100)
    config = RlhfConfig(reward_epochs=2, reward_learning_rate=2e-3, reward_num_layers=1, reward_top_layers=1)
    train_reward_model(stage, config, tiny_model_dir, tokenizer, make_pairs(16), 128)
    saved = json.loads((stage.model_dir / "config.json").read_text())
    assert saved["num_hidden_layers"] == 1 and len(saved["id2label"]) == 1
    held_out = [PreferencePair((("user", f"How do I do job {i}?"),), f"Do part {i}, then check it. Thanks!",
                               f"{RUDE[i % 4]} Job {i} is obvious and boring, go away.", "x") for i in range(8)]
    accuracy = RewardScorer(stage.model_dir, stage.placement).pairwise_accuracy(held_out)["reward_accuracy"]
    assert accuracy > 0.5


def test_non_finite_loss_stops_the_stage_without_saving(tmp_path: Path, tiny_model_dir: Path,
                                                        tokenizer: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    broken = tmp_path / "broken"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(broken)
    tokenizer.save_pretrained(broken)
    events = Events()
    stage = make_stage("reward_model", tmp_path, events, save_steps=1)
    with pytest.raises(StageStopped) as stop:
        run_stage("reward_model", stage, broken, tokenizer, None)
    assert stop.value.kind == "non_finite" and stop.value.step == 1
    errors = [e for e in events if e["event"] == "error"]
    assert errors and errors[0]["kind"] == "non_finite_loss" and "lower learning rate" in errors[0]["message"]
    assert not stage.model_dir.exists()
    assert stage.resume_checkpoint() is None


def _plan(tmp_path: Path, tiny_model_dir: Path) -> Path:
    rows = [{"prompt": p.prompt[0][1], "chosen": p.chosen, "rejected": p.rejected} for p in make_pairs(20)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""method: rlhf
model: {tiny_model_dir}
data: prefs.jsonl
output_dir: {tmp_path / 'out'}
config:
  algorithm: rloo
  sft: true
  sft_max_steps: 1
  reward_max_steps: 2
  reward_learning_rate: 1.0e-3
  num_generations: 2
  prompts_per_step: 1
  max_new_tokens: 4
  eval_max_prompts: 2
training:
  max_steps: 8
  save_steps: 1
  batch_size: 4
  eval_fraction: 0.2
  learning_rate: 1.0e-4
""")
    return plan


def _events(out: Path) -> list[dict[str, Any]]:
    path = out / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_cancelled_by_sigterm_then_resumed(tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = _plan(tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tunewise.advisor.cli", "run", str(plan), "--quiet",
               "--allow-outside-paths"]  # the tiny model lives outside the plan's folder
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if any(e["event"] == "progress" and e.get("stage") == "policy" for e in _events(out)):
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.2)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 130, stderr
    end = _events(out)[-1]
    assert end["event"] == "end" and end["status"] == "cancelled"
    assert (out / "stages/sft/stage.json").is_file() and (out / "stages/reward_model/stage.json").is_file()
    assert not (out / "stages/policy/stage.json").exists()
    stopped_at = max(e["stage_step"] for e in _events(out) if e["event"] == "progress" and e["stage"] == "policy")
    assert stopped_at < 8

    os.remove(out / "events.jsonl")
    resumed = subprocess.run([*command, "--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    events = _events(out)
    messages = "\n".join(str(e.get("message", "")) for e in events)
    assert "sft: finished earlier" in messages and "reward_model: finished earlier" in messages
    assert f"checkpoint-{stopped_at}" in messages
    policy_steps = [e["stage_step"] for e in events if e["event"] == "progress" and e["stage"] == "policy"]
    assert policy_steps == list(range(stopped_at + 1, 9))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("reward_accuracy", "win_rate", "mean_reward", "kl"):
        assert key in metrics["after"], key
    assert "mean_reward" in metrics["before"]
    report = (out / "report.md").read_text()
    for text in ("reward model accuracy", "win rate", "KL", "Answers side by side", "Why no PPO"):
        assert text in report
    assert (out / "stages/policy/model/README.md").is_file()


def _dpo_plan(folder: Path, tiny_model_dir: Path) -> Path:
    """DPO with a reward-model judge: a reward-model stage, then the DPO policy stage, 4 steps each."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": p.prompt[0][1], "chosen": p.chosen, "rejected": p.rejected} for p in make_pairs(20)]
    (folder / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.yaml"
    plan.write_text(f"""method: rlhf
model: {tiny_model_dir}
data: prefs.jsonl
config:
  algorithm: dpo
  dpo_reward_judge: true
  reward_max_steps: 4
  reward_learning_rate: 1.0e-3
  max_new_tokens: 4
  eval_max_prompts: 2
  eval_samples_per_prompt: 1
  report_samples: 1
training:
  max_steps: 4
  save_steps: 1
  keep_checkpoints: 2
  batch_size: 2
  eval_fraction: 0.2
  learning_rate: 1.0e-4
  seed: 5
""")
    return plan


def _messages(events: list[dict[str, Any]]) -> str:
    return "\n".join(str(e.get("message", "")) for e in events)


STAGE_WEIGHTS = ("stages/reward_model/model/model.safetensors", "stages/policy/model/model.safetensors")


def test_sigkill_in_reward_model_and_dpo_stages_then_resume_gives_the_same_weights(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    """A real run killed with SIGKILL at a seeded random point in each stage, resumed after each kill."""
    from test_checkpoint_resume import kill_at, kill_point, read_events, run, tensors, tunewise

    reference_plan = _dpo_plan(tmp_path / "straight", tiny_model_dir)
    reference_out = tmp_path / "straight" / "out"
    reference = subprocess.Popen(tunewise(str(reference_plan), "--out", str(reference_out)), cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    plan = _dpo_plan(tmp_path / "killed", tiny_model_dir)
    out = tmp_path / "killed" / "out"
    earlier: list[dict[str, Any]] = []
    try:
        # Global steps: 1-4 the reward model, 5-8 DPO (progress events count across stages).
        for number, (stage, low, high) in enumerate((("reward_model", 1, 3), ("policy", 5, 7))):
            step, delay = kill_point(0, f"rlhf-{stage}", low, high)
            args = ["--resume"] if number else []
            killed_at = kill_at(tunewise(str(plan), "--out", str(out), *args), out, step, delay)
            assert killed_at >= step and not (out / STAGE_WEIGHTS[1]).exists()
            if number:  # the second process resumed the reward model when the first had saved a step of it
                assert (out / "stages/reward_model/stage.json").is_file()
                if any(e["event"] == "checkpoint" and e.get("stage") == "reward_model" for e in earlier):
                    assert "reward_model: resuming from" in _messages(read_events(out))
            earlier = read_events(out)
    finally:
        _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err

    # What is on disk decides, not the events: a kill can land after a checkpoint folder is complete
    # and before its `checkpoint` event is written (seen on a loaded machine).
    from tunewise.methods.rlhf.stages import latest_complete_checkpoint

    policy_saved = latest_complete_checkpoint(out / "stages" / "policy" / "checkpoints") is not None
    resumed = run(str(plan), "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    events = read_events(out)
    assert "reward_model: finished earlier" in _messages(events)
    assert ("policy: resuming from" in _messages(events)) == policy_saved
    assert events[-1]["event"] == "end" and events[-1]["status"] == "completed"
    for path in STAGE_WEIGHTS:
        assert_same_weights(tensors(reference_out / path), tensors(out / path))


def test_a_spent_time_budget_checkpoints_and_stops_the_dpo_stage(tmp_path: Path, tiny_model_dir: Path) -> None:
    from test_checkpoint_resume import read_events, run

    plan = _dpo_plan(tmp_path, tiny_model_dir)
    plan.write_text(plan.read_text().replace("dpo_reward_judge: true", "dpo_reward_judge: false")
                    + "  max_hours: 0.000001\n")
    out = tmp_path / "out"
    result = run(str(plan), "--out", str(out))
    assert result.returncode == 3, result.stderr
    end = read_events(out)[-1]
    assert end["status"] == "stopped"
    message = end["result"]["message"]
    assert message.startswith("stopped: budget: training.max_hours 1e-06 reached") and "at policy step 1;" in message
    assert "--resume" in end["result"]["message"]
    assert (out / "stages/policy/checkpoints/checkpoint-1/trainer_state.json").is_file()
    assert not (out / "stages/policy/model").exists()
