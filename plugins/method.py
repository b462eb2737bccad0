"""The ``Method`` protocol: what every adaptation method, built-in or third-party, provides."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from tunewise.plugins.types import EventSink, Fit, Hardware, Plan, Profile, Quote, RunResult


@runtime_checkable
class Method(Protocol):
    """An adaptation method. Register the class with ``tunewise_register_methods``.

    A method knows three things about itself: how well it fits a profile (``fit``), what it costs
    on given hardware (``estimate``) and how to run and evaluate itself (``run``). ``fit`` and
    ``estimate`` must be cheap and import nothing heavy; ``run`` may import torch.
    """

    id: ClassVar[str]
    """Stable identifier used in plans and on the command line (``lora``, ``rag`` …)."""
    title: ClassVar[str]
    """Human name shown in tables."""
    summary: ClassVar[str]
    """One sentence on what it does."""
    config_class: ClassVar[type[Any] | None]
    """Dataclass of the method's own plan settings (fields carry ``help`` metadata), or None."""

    def fit(self, profile: Profile) -> Fit:
        """Score how well this method suits the answers, with reasons and blockers."""
        ...

    def estimate(self, profile: Profile, hardware: Hardware) -> Quote:
        """Quote compute, memory, time, money and human effort for the profile on ``hardware``."""
        ...

    def run(self, plan: Plan, events: EventSink) -> RunResult:
        """Run the plan end to end (evaluate before, adapt, evaluate after, write artifacts).

        Make every refusal (bad data or settings, a folder holding another run, a missing model)
        before sending ``start`` and write nothing into ``plan.output_dir`` before it: ``tunewise
        run`` opens the folder's ``events.jsonl`` only at ``start``, so a refused run leaves the
        folder exactly as it was.
        """
        ...
