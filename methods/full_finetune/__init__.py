"""Full fine-tuning: Update every weight of the model on labeled examples."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.methods.full_finetune.config import FullFinetuneConfig
from tunewise.plugins import hookimpl


class FullFinetuneMethod(BuiltinMethod):
    id = "full_finetune"
    title = "Full fine-tuning"
    summary = "Update every weight of the model on labeled examples."
    config_class = FullFinetuneConfig


@hookimpl
def tunewise_register_methods(register):
    register(FullFinetuneMethod)
