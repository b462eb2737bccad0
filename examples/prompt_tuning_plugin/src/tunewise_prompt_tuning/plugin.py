"""The module the ``tunewise`` entry point names: the hooks this package implements.

Kept tiny and free of heavy imports: ``tunewise plugins`` and the interview import it to list what
it adds, long before anything trains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunewise.plugins import hookimpl

from tunewise_prompt_tuning.advice import QUESTIONS
from tunewise_prompt_tuning.method import PromptTuningMethod


@hookimpl
def tunewise_register_methods(register: Callable[[type], None]) -> None:
    register(PromptTuningMethod)


@hookimpl
def tunewise_register_questions(register: Callable[[Any], None]) -> None:
    for question in QUESTIONS:
        register(question)
