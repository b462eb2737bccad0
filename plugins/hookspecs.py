"""Hook specifications: every hook a tunewise plugin may implement, documented where declared.

Implement a hook by defining a function of the same name decorated with
``tunewise.plugins.hookimpl``; you may accept any subset of the declared arguments. The host calls
each plugin's implementation separately, so one plugin that raises is reported and skipped while
the others still run (see ``tunewise.plugins.manager``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tunewise.plugins.markers import hookspec
from tunewise.plugins.types import Fit, Plan, Profile, RunResult


@hookspec
def tunewise_register_methods(register: Callable[[type], None]) -> None:
    """Add adaptation methods.

    Call ``register(MethodClass)`` once per class; the class follows the
    :class:`tunewise.plugins.Method` protocol. A method id that another plugin already registered
    is refused with an error naming both packages.
    """


@hookspec
def tunewise_register_questions(register: Callable[[Any], None]) -> None:
    """Add interview questions a method needs.

    Call ``register(Question(...))`` (:class:`tunewise.plugins.Question`). The answers reach
    ``Method.fit`` and ``Method.estimate`` in ``profile.extra[question.id]``.
    """


@hookspec
def tunewise_register_hardware(register: Callable[[Any], None]) -> None:
    """Add accelerators to the hardware catalogue.

    Call ``register(Hardware(...))`` (:class:`tunewise.plugins.Hardware`) with the dense bf16 peak,
    memory and price range. Names are matched case-insensitively, aliases included.
    """


@hookspec
def tunewise_adjust_recommendations(profile: Profile, ranking: list[Fit]) -> list[Fit] | None:
    """Re-rank or annotate the ranking after every method has scored the profile.

    Return a new list to replace the ranking, or None to leave it unchanged. Each implementation
    sees the previous one's result. Mark yours ``@hookimpl(trylast=True)`` when it should see the
    ranking after other plugins adjusted it.
    """


@hookspec(firstresult=True)
def tunewise_load_dataset(source: str) -> Sequence[dict[str, Any]] | None:
    """Read a data source in a format tunewise does not know.

    Return the rows as a sequence of dicts (the same shapes the audit detects: ``messages``,
    ``instruction``/``output``, ``prompt``/``completion``, ``prompt``/``chosen``/``rejected``,
    ``text``), or None to let another plugin or the built-in readers try. The first non-None
    result wins.
    """


@hookspec
def tunewise_training_callbacks(plan: Plan) -> list[Any] | None:
    """Return extra training callbacks (loggers, early stopping) for a run of ``plan``.

    Each callback is an object with any of the methods ``on_step(step, metrics)``,
    ``on_eval(step, metrics)`` and ``on_end(result)``; missing methods are skipped. ``tunewise run``
    feeds them from the run's events; ``on_step`` or ``on_eval`` returning ``True`` asks the run to
    stop early (it checkpoints and finishes normally). A callback that raises is dropped with a warning.
    """


@hookspec
def tunewise_before_run(plan: Plan) -> None:
    """Called once before a plan starts running (after validation, before the model loads)."""


@hookspec
def tunewise_after_run(plan: Plan, result: RunResult) -> None:
    """Called once after a run ends, whatever its status, with its :class:`RunResult`."""
