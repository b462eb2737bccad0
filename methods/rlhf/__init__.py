"""RLHF / DPO: Align to human preferences: reward model + policy optimisation, or DPO directly."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.plugins import hookimpl


class RlhfMethod(BuiltinMethod):
    id = "rlhf"
    title = "RLHF / DPO"
    summary = "Align to human preferences: reward model + policy optimisation, or DPO directly."


@hookimpl
def tunewise_register_methods(register):
    register(RlhfMethod)
