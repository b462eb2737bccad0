"""Hook specifications: every hook a tunewise plugin may implement, documented where declared.

Implement a hook by defining a function of the same name decorated with
``tunewise.plugins.hookimpl``; you may accept any subset of the declared arguments. The host calls
each plugin's implementation separately, in a thread of its own, so one plugin that raises (any
exception, ``SystemExit`` and ``KeyboardInterrupt`` included), hangs or hands back the wrong thing
is reported and skipped while the others still run (see ``tunewise.plugins.manager``). Each hook's
docstring says what it must return or register; anything else is reported as ``invalid`` and
dropped. A third-party implementation that has not returned after 10 s (``register_*``,
``adjust_recommendations``, ``training_callbacks``) or 300 s (``load_dataset``, ``before_run``,
``after_run``) is abandoned and reported as ``timeout``; ``TUNEWISE_PLUGIN_TIMEOUT`` sets one limit
for all. Arguments are the plugin's own copies: changing them changes nothing in tunewise. Each call
runs in a fresh worker thread, never the main one: a hook cannot install signal handlers, and
thread-local state does not carry from one call to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tunewise.plugins.markers import hookspec
from tunewise.plugins.types import Fit, Plan, Profile, RunResult


@hookspec
def tunewise_register_methods(register: Callable[[type], None]) -> None:
    """Add adaptation methods.

    Call ``register(MethodClass)`` once per class and return None. Registered: a class with ``id``
    (letters, digits, ``_.-``), ``title`` and ``summary`` strings, ``fit``, ``estimate`` and ``run``
    methods and ``config_class`` (a dataclass or None), per the :class:`tunewise.plugins.Method`
    protocol; anything else is dropped and reported. A method id that another plugin already
    registered is refused with an error naming both packages.
    """


@hookspec
def tunewise_register_questions(register: Callable[[Any], None]) -> None:
    """Add interview questions a method needs.

    Call ``register(Question(...))`` (:class:`tunewise.plugins.Question`) and return None. A
    question needs an id of letters, digits and ``_.-``, non-empty text, a known type, string
    choices (some for ``choice`` and ``multi``) and a finite ``minimum`` or None; others are dropped
    and reported. The answers reach ``Method.fit`` and ``Method.estimate`` in
    ``profile.extra[question.id]``.
    """


@hookspec
def tunewise_register_hardware(register: Callable[[Any], None]) -> None:
    """Add accelerators to the hardware catalogue.

    Call ``register(Hardware(...))`` (:class:`tunewise.plugins.Hardware`) with the dense bf16 peak,
    memory and price range, and return None. Figures must be finite and ≥ 0, the peak > 0, a GPU's
    memory > 0 and the low price ≤ the high one; an entry that breaks this is dropped and reported.
    Names are matched case-insensitively, aliases included.
    """


@hookspec
def tunewise_adjust_recommendations(profile: Profile, ranking: list[Fit]) -> list[Fit] | None:
    """Re-rank or annotate the ranking after every method has scored the profile.

    Return a new list of :class:`tunewise.plugins.Fit` (finite scores) to replace the ranking, or
    None to leave it unchanged; anything else is reported and ignored. Each implementation sees the
    previous one's result. Mark yours ``@hookimpl(trylast=True)`` when it should see the
    ranking after other plugins adjusted it.
    """


@hookspec(firstresult=True)
def tunewise_load_dataset(source: str) -> Sequence[dict[str, Any]] | None:
    """Read a data source in a format tunewise does not know.

    Return the rows as a sequence of dicts (the same shapes the audit detects: ``messages``,
    ``instruction``/``output``, ``prompt``/``completion``, ``prompt``/``chosen``/``rejected``,
    ``text``), or None to let another plugin or the built-in readers try; any other iterable is read
    into a list (a string or mapping is reported and ignored). A row that is not a dict is
    reported with its number. The first non-None result wins.
    """


@hookspec
def tunewise_training_callbacks(plan: Plan) -> list[Any] | None:
    """Return extra training callbacks (loggers, early stopping) for a run of ``plan``.

    Each callback is an object with any of the methods ``on_step(step, metrics)``,
    ``on_eval(step, metrics)`` and ``on_end(result)``; missing methods are skipped. ``tunewise run``
    feeds them from the run's events; ``on_step`` or ``on_eval`` returning ``True`` asks the run to
    stop early (it checkpoints and finishes normally). Return a list (or None): a non-list is
    reported and ignored, an item with none of those methods (or a non-callable one) is dropped.
    Callback methods run isolated like hooks (in a thread, 300 s limit): one that raises (any
    exception) or does not return is dropped for the rest of the run with a warning event.
    """


@hookspec
def tunewise_before_run(plan: Plan) -> None:
    """Called once before a plan starts running (after validation, before the model loads); returns None."""


@hookspec
def tunewise_after_run(plan: Plan, result: RunResult) -> None:
    """Called once after a run ends, whatever its status, with its :class:`RunResult`; returns None."""
