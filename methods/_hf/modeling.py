"""Loading the model to train: dtype per placement, SDPA attention, optional 4-bit base, recompute."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from tunewise.methods._hf.device import Placement
from tunewise.plugins.errors import MethodNotRunnable


def qlora_problem(placement: Placement) -> str | None:
    """Why a 4-bit (QLoRA) base cannot be used here, or None when it can."""
    if not placement.is_cuda:
        return ("QLoRA (quantization: 4bit) needs a CUDA GPU: its 4-bit NF4 weights are multiplied by "
                "bitsandbytes' GPU kernels, which do not run on a CPU. On this machine use quantization: none "
                "(plain LoRA on the full-precision base; a 135M-1B model fits in RAM), or run the plan on a "
                "machine with an NVIDIA GPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        return "QLoRA (quantization: 4bit) needs the bitsandbytes package: pip install bitsandbytes"
    return None


def base_dtype_name(model_path: Path) -> str:
    """The dtype the model's weights are stored in (config.json ``dtype``/``torch_dtype``), default float32."""
    import json

    cfg = json.loads((model_path / "config.json").read_text())
    name = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")
    return name if name in ("float32", "bfloat16", "float16") else "float32"


def load_for_training(model_path: Path, placement: Placement, *, frozen_base: bool = False,
                      quantize_4bit: bool = False, gradient_checkpointing: bool = False) -> Any:
    """The causal LM ready to train on ``placement``.

    Trained weights load in fp32 (the master copy; 16-bit precisions compute under autocast). A
    frozen base (LoRA) loads in the 16-bit compute dtype when there is one, halving its memory.
    Only safetensors are read; remote code runs only when the user opted in (``--trust-remote-code``).
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-tensor loading bars would flood logs and the TUI
    dtype = torch.float32
    if frozen_base and placement.precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if placement.precision == "bf16" else torch.float16
    from tunewise.plugins.trust import check_model_folder

    remote_code = check_model_folder(model_path, need_weights=True)  # True only on --trust-remote-code
    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": remote_code}
    if quantize_4bit:
        problem = qlora_problem(placement)
        if problem:
            raise MethodNotRunnable(problem)
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if placement.precision == "bf16" else torch.float16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
        kwargs["dtype"] = compute
        kwargs["device_map"] = {"": placement.device}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as exc:
        if "sdpa" not in str(exc).lower():
            raise
        model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if not quantize_4bit:
        model.to(placement.device)
    model.config.use_cache = False
    if quantize_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
