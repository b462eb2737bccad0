"""Common shape of the six built-in methods (third-party methods need not inherit from it).

Each built-in method package keeps its parts in sibling modules so that the advice and the
training code stay apart and cheap to import:

- ``advice.py``: ``fit(profile) -> Fit`` and ``estimate(profile, hardware) -> Quote`` (no torch);
- ``run.py``: ``run(plan, events) -> RunResult`` (imports torch inside);
- ``config.py``: the method's config dataclass (fields with ``help`` metadata).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, ClassVar

from tunewise.plugins.errors import MethodNotRunnable
from tunewise.plugins.types import EventSink, Fit, Hardware, Plan, Profile, Quote, RunResult


class BuiltinMethod:
    """Base for built-in methods: delegates to the package's ``advice`` and ``run`` modules."""

    id: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    config_class: ClassVar[type[Any] | None] = None

    def _part(self, name: str, what: str) -> ModuleType:
        package = type(self).__module__
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise
            raise MethodNotRunnable(f"{self.id}: {what} is not available in this version of tunewise") from None

    def fit(self, profile: Profile) -> Fit:
        result: Fit = self._part("advice", "advice").fit(profile)
        return result

    def estimate(self, profile: Profile, hardware: Hardware) -> Quote:
        result: Quote = self._part("advice", "a cost estimate").estimate(profile, hardware)
        return result

    def run(self, plan: Plan, events: EventSink) -> RunResult:
        result: RunResult = self._part("run", "running this method").run(plan, events)
        return result
