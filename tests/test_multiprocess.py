"""``tunewise run --processes 2``: two real gloo CPU processes train what one process trains.

Semantics under test (``tunewise.methods._hf.distributed``): ``batch_size`` is per process, so two
processes with batch 2 train the same 4 rows per step as one process with batch 4, and the update is
the same. FSDP (the default for full training) and DDP (the default for LoRA) are both checked
against the single-process run, tensor by tensor. Also: the Accelerate config each strategy writes is
one ``accelerate launch`` accepts, and a DeepSpeed plan is refused with a clear message after its
config is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_cli

TRAINED_FILE = {"full_finetune": "model/model.safetensors", "lora": "adapter/adapter_model.safetensors"}


def write_plan(folder: Path, method: str, model: Path, batch_size: int, distributed: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"Where is parcel {500 + i}?"},
                          {"role": "assistant", "content": f"Parcel {500 + i} is in depot {i % 4}."}]}
            for i in range(24)]
    (folder / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.yaml"
    # No LoRA dropout: each rank draws its own masks, which a single process cannot reproduce.
    # precision fp32 is pinned: this test is about the split across processes, and `auto` would pick
    # bf16 autocast on CPUs with AVX512-BF16/AMX, where summation order moves weights by ~1e-3.
    config = "{dropout: 0.0}" if method == "lora" else "{}"
    plan.write_text(f"""\
method: {method}
model: {model}
data: chat.jsonl
config: {config}
training:
  max_steps: 3
  batch_size: {batch_size}
  seq_len: 64
  learning_rate: 1.0e-3
  save_steps: 100
  eval_max_examples: 2
  generation_examples: 0
  device: cpu
  precision: fp32
""" + distributed)
    return plan


def losses(out: Path) -> list[float]:
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if line.strip()]
    return [e["loss"] for e in events if e["event"] == "progress"]


def load_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.parametrize(("method", "strategy"), [("full_finetune", "fsdp"), ("lora", "ddp")])
def test_two_processes_train_what_one_process_trains(tmp_path: Path, tiny_model_dir: Path, method: str,
                                                     strategy: str) -> None:
    single = write_plan(tmp_path / "single", method, tiny_model_dir, batch_size=4)
    done = run_cli("run", str(single), "--out", str(tmp_path / "single" / "out"), "--quiet",
                   "--allow-outside-paths", timeout=600)  # the tiny model lives outside the plan's folder
    assert done.returncode == 0, done.stderr[-3000:]
    multi = write_plan(tmp_path / "multi", method, tiny_model_dir, batch_size=2)
    done = run_cli("run", str(multi), "--out", str(tmp_path / "multi" / "out"), "--quiet", "--processes", "2",
                   "--allow-outside-paths",
                   timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    one, two = tmp_path / "single" / "out", tmp_path / "multi" / "out"
    assert losses(two) == pytest.approx(losses(one), rel=1e-4) and len(losses(one)) == 3
    trained_one, trained_two = load_tensors(one / TRAINED_FILE[method]), load_tensors(two / TRAINED_FILE[method])
    assert trained_one.keys() == trained_two.keys()
    base = load_tensors(tiny_model_dir / "model.safetensors") if method == "full_finetune" else {}
    moved = 0
    for name, tensor in trained_one.items():
        # Adam scales every update to ≈ lr, so only float32 summation-order noise may differ.
        assert (tensor.float() - trained_two[name].float()).abs().max().item() < 2e-5, name
        if name in base:
            moved += int(not base[name].float().equal(tensor.float()))
    assert moved > 0 or method == "lora"
    # Rank 0 wrote the run; the other rank kept its own event file; the Accelerate config names the strategy.
    assert (two / "events.rank-1.jsonl").exists() and not (one / "events.rank-1.jsonl").exists()
    import yaml

    config = yaml.safe_load((two / "accelerate_config.yaml").read_text())
    assert config["num_processes"] == 2 and config["use_cpu"] is True
    assert config["distributed_type"] == ("FSDP" if strategy == "fsdp" else "MULTI_CPU")


def launch_argument_names() -> set[str]:
    from accelerate.commands.launch import launch_command_parser

    return {action.dest for action in launch_command_parser()._actions}


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_written_accelerate_config_is_one_accelerate_accepts(tmp_path: Path, tiny_model_dir: Path,
                                                             strategy: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig
    from tunewise.advisor.launch import accelerate_config, write_accelerate_config
    from tunewise.advisor.plans import load_plan
    from tunewise.plugins.parallelism import DistributedSettings

    plan = load_plan(write_plan(tmp_path, "full_finetune", tiny_model_dir, 2,
                                f"distributed:\n  strategy: {strategy}\n  processes: 4\n"), allow_outside_paths=True)
    settings = DistributedSettings(**plan.distributed)
    path = write_accelerate_config(tmp_path / "out", accelerate_config(plan, settings, cuda=True,
                                                                       model_dir=tiny_model_dir))
    loaded = ClusterConfig.from_yaml_file(str(path))  # refuses unknown top-level keys
    assert loaded.num_processes == 4
    expected = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED"}
    assert loaded.distributed_type.value == expected[strategy]
    known = launch_argument_names()
    if strategy == "fsdp":
        assert loaded.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
        assert loaded.fsdp_config["fsdp_version"] == 2
        assert set(loaded.fsdp_config) <= known, set(loaded.fsdp_config) - known
    if strategy.startswith("deepspeed"):
        assert loaded.deepspeed_config["zero_stage"] == int(strategy[-1])
        # accelerate launch turns each key into its --flag of the same name
        assert set(loaded.deepspeed_config) <= known, set(loaded.deepspeed_config) - known


def test_deepspeed_plan_is_refused_clearly_and_leaves_its_config(tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = write_plan(tmp_path, "full_finetune", tiny_model_dir, 2, "distributed:\n  strategy: deepspeed_zero3\n")
    done = run_cli("run", str(plan), "--out", str(tmp_path / "out"), "--processes", "2", "--quiet",
                   "--allow-outside-paths")  # the tiny model lives outside the plan's folder
    assert done.returncode != 0
    assert "deepspeed_zero3" in done.stderr and "fsdp" in done.stderr and "Traceback" not in done.stderr
    import yaml

    config = yaml.safe_load((tmp_path / "out" / "accelerate_config.yaml").read_text())
    assert config["distributed_type"] == "DEEPSPEED" and config["deepspeed_config"]["zero_stage"] == 3
    assert not (tmp_path / "out" / "events.jsonl").exists()  # nothing trained
