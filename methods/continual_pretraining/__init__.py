"""Continual pretraining: Keep pretraining on raw domain or language text (next-token prediction)."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.methods.continual_pretraining.config import ContinualPretrainingConfig
from tunewise.plugins import hookimpl


class ContinualPretrainingMethod(BuiltinMethod):
    id = "continual_pretraining"
    title = "Continual pretraining"
    summary = "Keep pretraining on raw domain or language text (next-token prediction)."
    config_class = ContinualPretrainingConfig


@hookimpl
def tunewise_register_methods(register):
    register(ContinualPretrainingMethod)
