"""In-context learning: Put a few selected input -> output examples in the prompt; no training."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.methods.in_context.config import InContextConfig
from tunewise.plugins import hookimpl


class InContextMethod(BuiltinMethod):
    id = "in_context"
    title = "In-context learning"
    summary = "Put a few selected input -> output examples in the prompt; no training."
    config_class = InContextConfig


@hookimpl
def tunewise_register_methods(register):
    register(InContextMethod)
