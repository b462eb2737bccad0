"""The tunewise plugin API: what a method plugin imports.

Everything here is light (no torch, no transformers) so that listing plugins and answering
``tunewise --help`` stays fast. A plugin module looks like::

    from tunewise.plugins import hookimpl

    @hookimpl
    def tunewise_register_methods(register):
        register(MyMethod)
"""

from __future__ import annotations

from tunewise.plugins.errors import MethodNotRunnable, PluginError
from tunewise.plugins.markers import hookimpl, hookspec
from tunewise.plugins.method import Method
from tunewise.plugins.types import (
    Budget,
    DataProfile,
    EventSink,
    Fit,
    Hardware,
    HardwareChoice,
    ModelProfile,
    Plan,
    Profile,
    Question,
    Quote,
    RunResult,
)

__all__ = [
    "Budget",
    "DataProfile",
    "EventSink",
    "Fit",
    "Hardware",
    "HardwareChoice",
    "Method",
    "MethodNotRunnable",
    "ModelProfile",
    "Plan",
    "PluginError",
    "Profile",
    "Question",
    "Quote",
    "RunResult",
    "hookimpl",
    "hookspec",
]
