"""LoRA / QLoRA: Train small low-rank adapters on a frozen (optionally 4-bit) base model."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.methods.lora.config import LoraConfig
from tunewise.plugins import hookimpl


class LoraMethod(BuiltinMethod):
    id = "lora"
    title = "LoRA / QLoRA"
    summary = "Train small low-rank adapters on a frozen (optionally 4-bit) base model."
    config_class = LoraConfig


@hookimpl
def tunewise_register_methods(register):
    register(LoraMethod)
