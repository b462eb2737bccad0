"""What each hook may hand back, checked before tunewise uses it (the types are declared in ``hookspecs.py``).

A check names what is wrong in words a plugin author can act on. Objects passed to ``register(...)``
are checked one by one: a bad one is dropped, the rest are kept. A hook's return value is checked
whole: a bad one is dropped entirely, except where the hook's docstring says single items are
dropped (training callbacks). Checks run in the plugin's isolated call (``plugins/isolation.py``),
because reading a plugin object's attributes runs plugin code too.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.plugins.isolation import describe_error
from tunewise.plugins.types import Fit, Hardware, Question

REQUIRED_METHOD_ATTRS = ("id", "title", "summary", "fit", "estimate", "run")
CALLBACK_METHODS = ("on_step", "on_eval", "on_end")
QUESTION_TYPES = ("text", "int", "float", "bool", "choice", "multi", "path")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass
class Checked:
    """A hook call's result as the host accepts it, and what was wrong with it."""

    value: Any = None
    problems: list[str] = field(default_factory=list)
    refused: bool = False
    """The whole result was dropped (the call counts as failed)."""


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _a(value: Any) -> str:
    return "None" if value is None else f"a value of type {type(value).__name__}"


def _name(obj: Any) -> str:
    named = getattr(obj, "__name__", None) if isinstance(obj, type) else None
    return repr(named) if isinstance(named, str) else _a(obj)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _strings(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)


def _guarded(check: Callable[[Any], str | None], obj: Any, what: str) -> str | None:
    """``check(obj)``; reading a hostile object's attributes may raise anything, which is a problem too."""
    try:
        return check(obj)
    except BaseException as exc:  # runs in the plugin's isolated thread, never on a signal
        return f"{what} could not be checked: {describe_error(exc)}"


# -- objects passed to register(...) --------------------------------------------------------------


def method_problem(cls: Any) -> str | None:
    """Why ``cls`` is not a usable method class (see ``tunewise.plugins.Method``), or None."""
    if not isinstance(cls, type):
        return f"registered {_name(cls)}, not a method class (see tunewise.plugins.Method)"
    missing = [a for a in REQUIRED_METHOD_ATTRS if not hasattr(cls, a)]
    if missing:
        return f"{_name(cls)} lacks {', '.join(missing)} (see tunewise.plugins.Method)"
    method_id = cls.id  # type: ignore[attr-defined]  # checked by hasattr above
    if not isinstance(method_id, str) or not _ID.fullmatch(method_id):
        return (f"{_name(cls)}.id is {method_id!r}; it must be a non-empty string of letters, digits, "
                "'_', '.' or '-' (it is typed on the command line)")
    for attr in ("title", "summary"):
        if not isinstance(getattr(cls, attr), str):
            return f"{_name(cls)}.{attr} must be a string, not {_kind(getattr(cls, attr))}"
    for attr in ("fit", "estimate", "run"):
        if not callable(getattr(cls, attr)):
            return f"{_name(cls)}.{attr} must be a method, not {_kind(getattr(cls, attr))}"
    config_class = getattr(cls, "config_class", None)
    if config_class is not None and not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        return f"{_name(cls)}.config_class must be a dataclass or None, not {_kind(config_class)}"
    return None


def question_problem(question: Any) -> str | None:
    """Why ``question`` is not a usable :class:`Question`, or None."""
    if not isinstance(question, Question):
        return f"registered {_a(question)}, not a tunewise.plugins.Question"
    if not isinstance(question.id, str) or not _ID.fullmatch(question.id):
        return f"question id {question.id!r} must be a non-empty string of letters, digits, '_', '.' or '-'"
    where = f"question {question.id!r}"
    if not isinstance(question.text, str) or not question.text.strip():
        return f"{where}: text must be a non-empty string"
    if not isinstance(question.help, str) or not isinstance(question.topic, str) or not question.topic:
        return f"{where}: help and topic must be strings (topic non-empty)"
    if question.type not in QUESTION_TYPES:
        return f"{where}: type {question.type!r} is not one of {', '.join(QUESTION_TYPES)}"
    if not _strings(question.choices) or (question.type in ("choice", "multi") and not question.choices):
        return f"{where}: choices must be a tuple of strings (not empty for type {question.type})"
    if question.minimum is not None and not _number(question.minimum):
        return f"{where}: minimum must be a finite number or None, not {question.minimum!r}"
    if question.ask_if is not None and not callable(question.ask_if):
        return f"{where}: ask_if must be callable or None"
    return None


def hardware_problem(hw: Any) -> str | None:
    """Why ``hw`` is not a usable catalogue entry (finite, non-negative figures), or None."""
    if not isinstance(hw, Hardware):
        return f"registered {_a(hw)}, not a tunewise.plugins.Hardware"
    if not isinstance(hw.name, str) or not hw.name.strip():
        return f"hardware name {hw.name!r} must be a non-empty string"
    where = f"hardware {hw.name!r}"
    if hw.kind not in ("gpu", "cpu"):
        return f"{where}: kind must be gpu or cpu, not {hw.kind!r}"
    if not _strings(hw.aliases) or not isinstance(hw.source, str) or not isinstance(hw.calibration, Mapping):
        return f"{where}: aliases must be a tuple of strings, source a string, calibration a mapping"
    figures = {"peak_tflops": hw.peak_tflops, "memory_gb": hw.memory_gb, "usd_per_hour_low": hw.usd_per_hour_low,
               "usd_per_hour_high": hw.usd_per_hour_high, "memory_bandwidth_gbps": hw.memory_bandwidth_gbps}
    for name, value in figures.items():
        if not _number(value) or value < 0:
            return f"{where}: {name} must be a finite number ≥ 0, got {value!r}"
    if hw.peak_tflops <= 0:
        return f"{where}: peak_tflops must be > 0"
    if hw.kind == "gpu" and hw.memory_gb <= 0:
        return f"{where}: memory_gb must be > 0 (0 means this machine's RAM, for kind cpu only)"
    if hw.usd_per_hour_low > hw.usd_per_hour_high:
        return f"{where}: usd_per_hour_low ({hw.usd_per_hour_low}) is above usd_per_hour_high ({hw.usd_per_hour_high})"
    return None


REGISTERED: dict[str, Callable[[Any], str | None]] = {
    "tunewise_register_methods": method_problem,
    "tunewise_register_questions": question_problem,
    "tunewise_register_hardware": hardware_problem,
}
"""``register_*`` hooks and the check each registered object must pass."""


def check_registrations(hook: str, registered: Iterable[Any], returned: Any) -> Checked:
    """The objects a ``register_*`` implementation passed to ``register`` that pass the hook's check."""
    problem_of = REGISTERED.get(hook, lambda obj: None)
    checked = Checked(value=[])
    for number, obj in enumerate(registered, start=1):
        problem = _guarded(problem_of, obj, f"registered object #{number}")
        if problem is None:
            checked.value.append(obj)
        else:
            checked.problems.append(f"{problem}; dropped")
    if returned is not None:
        checked.problems.append(f"returned {_a(returned)}; {hook} returns None and hands each object to "
                                "register(...) (the returned value is ignored)")
    return checked


# -- return values --------------------------------------------------------------------------------


def _none(hook: str, value: Any) -> Checked:
    if value is None:
        return Checked()
    return Checked(problems=[f"returned {_a(value)}; {hook} returns None (the value is ignored)"])


def _ranking(hook: str, value: Any) -> Checked:
    if value is None:
        return Checked()
    if not isinstance(value, list):
        return Checked(problems=[f"returned {_a(value)}, not a list of Fit or None; ignored"], refused=True)
    for number, fit in enumerate(value, start=1):
        if not isinstance(fit, Fit):
            return Checked(problems=[f"item {number} is a {_kind(fit)}, not a Fit; the adjustment is ignored"],
                           refused=True)
        if not isinstance(fit.method, str) or not _number(fit.score):
            return Checked(problems=[f"item {number} ({fit.method!r}) has score {fit.score!r}, not a finite number; "
                                     "the adjustment is ignored"], refused=True)
    return Checked(value=list(value))


def _rows(hook: str, value: Any) -> Checked:
    if value is None:
        return Checked()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return Checked(problems=[f"returned {_a(value)}, not a sequence of dicts or None; ignored"],
                       refused=True)
    return Checked(value=list(value))  # iterated here, inside the isolated call, so a hanging generator times out


def _callbacks(hook: str, value: Any) -> Checked:
    if value is None:
        return Checked(value=[])
    if not isinstance(value, (list, tuple)):
        return Checked(problems=[f"returned {_a(value)}, not a list of callbacks or None; ignored"],
                       refused=True)
    checked = Checked(value=[])
    for number, callback in enumerate(value, start=1):
        problem = _guarded(_callback_problem, callback, f"callback {number}")
        if problem is None:
            checked.value.append(callback)
        else:
            checked.problems.append(f"callback {number}: {problem}; dropped")
    return checked


def _callback_problem(callback: Any) -> str | None:
    found = {name: getattr(callback, name, None) for name in CALLBACK_METHODS}
    if not any(callable(m) for m in found.values()):
        return f"{_a(callback)} with none of the methods {', '.join(CALLBACK_METHODS)}"
    bad = [n for n, m in found.items() if m is not None and not callable(m)]
    return f"{_kind(callback)}.{bad[0]} is not callable" if bad else None


RETURNED: dict[str, Callable[[str, Any], Checked]] = {
    "tunewise_adjust_recommendations": _ranking,
    "tunewise_load_dataset": _rows,
    "tunewise_training_callbacks": _callbacks,
    "tunewise_before_run": _none,
    "tunewise_after_run": _none,
}
"""Hooks called for their return value and the check it must pass."""


def check_returned(hook: str, value: Any) -> Checked:
    """``value`` as the host accepts it from an implementation of ``hook``."""
    check = RETURNED.get(hook)
    return Checked(value=value) if check is None else check(hook, value)


def known_hooks() -> Sequence[str]:
    """Every hook with a result check (a test keeps this equal to the hook specifications)."""
    return sorted({*REGISTERED, *RETURNED})
