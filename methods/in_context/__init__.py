"""In-context learning: Put a few selected input -> output examples in the prompt; no training."""

from __future__ import annotations

from tunewise.methods._builtin import BuiltinMethod
from tunewise.plugins import hookimpl


class InContextMethod(BuiltinMethod):
    id = "in_context"
    title = "In-context learning"
    summary = "Put a few selected input -> output examples in the prompt; no training."


@hookimpl
def tunewise_register_methods(register):
    register(InContextMethod)
