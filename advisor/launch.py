"""Starting a plan on several processes: the Accelerate config for its strategy, and torch's launcher (no torch here).

``tunewise run PLAN --processes N`` starts N copies of ``tunewise run PLAN`` through PyTorch's
elastic launcher (``python -m torch.distributed.run --standalone``). Each copy finds
``RANK``/``WORLD_SIZE`` in its environment and joins the process group
(``tunewise.methods._hf.distributed``). Signals sent to this process (Ctrl-C, SIGTERM from the TUI)
are passed on, so the ranks checkpoint and stop together. The launcher holds the output folder's lock
for its ranks (:mod:`~tunewise.advisor.output_lock`).

The run's ``accelerate_config.yaml`` (what the run does, in the form ``accelerate launch
--config_file`` reads, so the same training can be started on a cluster by hand) travels to the ranks
in ``TUNEWISE_ACCELERATE_CONFIG`` and rank 0 writes it into the output folder once its run is
accepted, so a refused run leaves the folder untouched. A DeepSpeed plan is the exception: it is
refused here and its config is written as the refusal's deliverable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.parallelism import DEEPSPEED, DistributedSettings
from tunewise.plugins.redaction import redact
from tunewise.plugins.types import Plan

CONFIG_NAME = "accelerate_config.yaml"
CONFIG_ENV = "TUNEWISE_ACCELERATE_CONFIG"
"""The config text rank 0 writes into the output folder when the run is accepted."""
TRAIN_KIND = {"lora": "lora"}
"""Training kind per method id (everything else trains every weight)."""


class LaunchError(TunewiseError):
    """A multi-process run cannot be started as asked."""


def plan_settings(plan: Plan, processes: int | None) -> DistributedSettings:
    """The plan's ``distributed`` section with ``--processes`` applied."""
    values = dict(plan.distributed)
    if processes is not None:
        values["processes"] = processes
    settings = DistributedSettings(**values)
    problems = settings.problems()
    if problems:
        raise LaunchError("; ".join(f"distributed.{k}: {m}" for k, m in problems))
    return settings


def _layer_class(model_dir: Path | None) -> str | None:
    """The decoder-layer class FSDP wraps, from config.json (``LlamaForCausalLM`` → ``LlamaDecoderLayer``)."""
    if model_dir is None or not os.path.lexists(model_dir / "config.json"):
        return None
    from tunewise.plugins.model_files import read_model_config

    archs = read_model_config(model_dir).get("architectures") or []  # a damaged config is named, not a traceback
    for arch in archs:
        if arch.endswith("ForCausalLM"):
            return arch[: -len("ForCausalLM")] + "DecoderLayer"
    return None


def accelerate_config(plan: Plan, settings: DistributedSettings, *, cuda: bool,
                      model_dir: Path | None = None) -> dict[str, Any]:
    """The ``accelerate launch`` config describing this run (keys as ``accelerate config`` writes them)."""
    training = plan.training
    strategy = settings.resolved_strategy(TRAIN_KIND.get(plan.method, "full"))
    precision = str(training.get("precision", "auto"))
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}.get(precision, "bf16" if cuda else "no")
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": "MULTI_GPU" if cuda else "MULTI_CPU",
        "downcast_bf16": "no",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": mixed,
        "num_machines": 1,
        "num_processes": settings.processes,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": not cuda,
    }
    if cuda:
        config["gpu_ids"] = "all"
    if strategy == "fsdp":
        config["distributed_type"] = "FSDP"
        fsdp: dict[str, Any] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_offload_params": False,
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_activation_checkpointing": bool(training.get("gradient_checkpointing", False)),
        }
        layer = _layer_class(model_dir)
        if layer:
            fsdp["fsdp_transformer_layer_cls_to_wrap"] = layer
        config["fsdp_config"] = fsdp
    elif strategy in DEEPSPEED:
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {
            "zero_stage": 2 if strategy == "deepspeed_zero2" else 3,
            "gradient_accumulation_steps": int(training.get("grad_accum", 1)),
            "gradient_clipping": float(training.get("max_grad_norm", 1.0)),
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": strategy == "deepspeed_zero3",
            "zero3_save_16bit_model": strategy == "deepspeed_zero3",
        }
    return config


def render_accelerate_config(config: Mapping[str, Any]) -> str:
    header = ("# Written by tunewise run --processes: the same training with `accelerate launch --config_file "
              f"{CONFIG_NAME} -m tunewise.advisor.cli run PLAN`\n")
    return redact(header + yaml.safe_dump(dict(config), sort_keys=True))


def write_accelerate_config(out_dir: Path, config: Mapping[str, Any] | str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CONFIG_NAME
    path.write_text(config if isinstance(config, str) else render_accelerate_config(config), encoding="utf-8")
    return path


def worker_command(processes: int, run_args: Sequence[str]) -> list[str]:
    """torch's elastic launcher starting ``processes`` copies of ``tunewise run RUN_ARGS`` on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "--module", "tunewise.advisor.cli", "run", *run_args]


def launch(plan: Plan, settings: DistributedSettings, run_args: Sequence[str], *, cuda: bool,
           model_dir: Path | None = None, extra_env: Mapping[str, str] | None = None,
           lock_fd: int | None = None) -> int:
    """Start the processes (they write the Accelerate config once accepted), wait; the launcher's exit code."""
    strategy = settings.resolved_strategy(TRAIN_KIND.get(plan.method, "full"))
    out = Path(plan.output_dir).expanduser().resolve()
    config = accelerate_config(plan, settings, cuda=cuda, model_dir=model_dir)
    if strategy in DEEPSPEED:
        # Refused here, but the config is what a DeepSpeed user needs for `accelerate launch` on a cluster.
        written = write_accelerate_config(out, config)
        import importlib.util

        installed = importlib.util.find_spec("deepspeed") is not None
        raise LaunchError(
            f"distributed.strategy {strategy}: tunewise's training loop drives PyTorch DDP and FSDP; DeepSpeed "
            f"ZeRO engines are not wired in (and the deepspeed package is "
            f"{'installed' if installed else 'not installed here'}). Use fsdp (the ZeRO-3 equivalent) or ddp; "
            f"the DeepSpeed settings are in {written} for `accelerate launch` with your own script")
    env = {**os.environ, **(extra_env or {}), CONFIG_ENV: render_accelerate_config(config)}
    if not cuda and "OMP_NUM_THREADS" not in env:
        # CPU processes share the cores; oversubscribing threads makes every rank slower.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // settings.processes))
    command = worker_command(settings.processes, run_args)
    # Its own session: a terminal's Ctrl-C reaches only this process, which passes one SIGTERM on
    # (a worker treats a second signal as "stop now, no checkpoint").
    # The launcher shares its output-folder lock with torch's launcher process, so the folder stays
    # owned while the ranks run even if this process is killed.
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               pass_fds=(lock_fd,) if lock_fd is not None else ())
    stopped: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        stopped.append(signum)
        process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 130 if stopped else code
