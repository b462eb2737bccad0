"""Writing the trained weights: safetensors via ``save_pretrained``, into a temp folder renamed into place."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def save_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` and then replace ``target`` with ``tmp`` (never a half-written folder)."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def save_full_model(model: Any, tokenizer: Any, folder: Path, dtype_name: str) -> Path:
    """Save every weight in ``dtype_name`` (the model is cast in place: call it last) plus the tokenizer."""
    import torch

    if getattr(model, "supports_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    model.to(getattr(torch, dtype_name))
    model.config.use_cache = True

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return save_atomically(folder, write)


def save_adapter(model: Any, tokenizer: Any, folder: Path) -> Path:
    """Save only the adapter weights (``adapter_model.safetensors``) and the tokenizer."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return save_atomically(folder, write)


def save_merged(base_path: Path, adapter: Path, tokenizer: Any, folder: Path, dtype_name: str) -> Path:
    """Load a fresh full-precision base on CPU, merge the saved adapter into it and save the result.

    Merging into a fresh copy keeps the trained (possibly 4-bit) model untouched and gives a merged
    model in the base's own dtype.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from tunewise.plugins.trust import check_model_folder

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, dtype_name), use_safetensors=True,
                                                trust_remote_code=check_model_folder(base_path))
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()

    def write(tmp: Path) -> None:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return save_atomically(folder, write)
    check_model_folder(adapter)  # written by this run, but read back from disk: the same checks as any folder
