"""RLHF / DPO: Align to human preferences: reward model + policy optimisation, or DPO directly."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.methods.rlhf.config import RlhfConfig
from tunewise.plugins import hookimpl


class RlhfMethod(BuiltinMethod):
    id = "rlhf"
    title = "RLHF / DPO"
    summary = "Align to human preferences: reward model + policy optimisation, or DPO directly."
    config_class = RlhfConfig


@hookimpl
def tunewise_register_methods(register):
    register(RlhfMethod)
