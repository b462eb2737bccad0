"""Common shape of the six built-in methods (third-party methods need not inherit from it)."""

from __future__ import annotations

from typing import Any, ClassVar

from tunewise.plugins.errors import MethodNotRunnable
from tunewise.plugins.types import EventSink, Fit, Hardware, Plan, Profile, Quote, RunResult


class BuiltinMethod:
    """Base for built-in methods: subclasses fill in ``fit``, ``estimate`` and ``run``."""

    id: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    config_class: ClassVar[type[Any] | None] = None

    def fit(self, profile: Profile) -> Fit:
        raise MethodNotRunnable(f"{self.id}: advice for this method is not available in this version")

    def estimate(self, profile: Profile, hardware: Hardware) -> Quote:
        raise MethodNotRunnable(f"{self.id}: cost estimates for this method are not available in this version")

    def run(self, plan: Plan, events: EventSink) -> RunResult:
        raise MethodNotRunnable(f"{self.id}: this method cannot run yet in this version of tunewise")
