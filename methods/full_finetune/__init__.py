"""Full fine-tuning: Update every weight of the model on labeled examples."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.plugins import hookimpl


class FullFinetuneMethod(BuiltinMethod):
    id = "full_finetune"
    title = "Full fine-tuning"
    summary = "Update every weight of the model on labeled examples."


@hookimpl
def tunewise_register_methods(register):
    register(FullFinetuneMethod)
