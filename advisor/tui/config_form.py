"""A method's config dataclass seen as form questions, and the form's values turned back into a config.

Config classes follow trl's style: ``field(default=..., metadata={"help": ...})``. Each field
becomes a :class:`Question` (type from the annotation, choices from a ``Literal``, help from the
metadata) so the plan screen reuses the interview's field widget.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from tunewise.plugins.types import Question

_SIMPLE = {int: "int", float: "float", bool: "bool", str: "text"}


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def field_question(field: dataclasses.Field[Any], annotation: Any, prefix: str = "") -> Question:
    """The question that edits one config field."""
    annotation, optional = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    choices: tuple[str, ...] = ()
    if origin is typing.Literal:
        kind = "choice"
        choices = tuple(str(a) for a in typing.get_args(annotation))
    elif origin in (list, tuple) or annotation in (list, tuple):
        kind = "text"  # comma-separated in the form
    else:
        kind = _SIMPLE.get(annotation, "text")
    if optional and kind in ("int", "float"):
        kind = "text"  # empty means None: parsed in config_from_values
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    if default is dataclasses.MISSING:
        default = None
    if isinstance(default, (list, tuple)):
        default = ", ".join(str(v) for v in default)
    help_text = str(field.metadata.get("help", "")) if field.metadata else ""
    return Question(id=prefix + field.name, text=field.name.replace("_", " "), help=help_text, type=kind,
                    default=default, choices=choices, topic="config")


def config_questions(config_class: type[Any], prefix: str = "") -> list[Question]:
    """One question per init field of a config dataclass, in declaration order."""
    hints = typing.get_type_hints(config_class)
    return [field_question(f, hints.get(f.name, str), prefix) for f in dataclasses.fields(config_class) if f.init]


def _convert(value: Any, annotation: Any, name: str) -> Any:
    annotation, optional = _unwrap_optional(annotation)
    if isinstance(value, str):
        text = value.strip()
        if optional and text.lower() in ("", "none", "null"):
            return None
        origin = typing.get_origin(annotation)
        if origin is typing.Literal:
            for allowed in typing.get_args(annotation):
                if str(allowed) == text:
                    return allowed
            raise ValueError(f"must be one of {', '.join(str(a) for a in typing.get_args(annotation))}")
        if origin in (list, tuple) or annotation in (list, tuple):
            items = [item.strip() for item in text.split(",") if item.strip()]
            inner = typing.get_args(annotation)
            if inner and inner[0] in (int, float):
                items = [inner[0](item) for item in items]
            return tuple(items) if origin is tuple or annotation is tuple else items
        if annotation is int:
            return int(text)
        if annotation is float:
            return float(text)
        if annotation is bool:
            return text.lower() in ("1", "true", "yes", "on")
        return text
    return value


def config_from_values(config_class: type[Any], values: Mapping[str, Any]) -> Any:
    """An instance of ``config_class`` from form values; a bad value raises ``ValueError`` naming the field."""
    hints = typing.get_type_hints(config_class)
    kwargs = {}
    for f in dataclasses.fields(config_class):
        if not f.init or f.name not in values:
            continue
        try:
            kwargs[f.name] = _convert(values[f.name], hints.get(f.name, str), f.name)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{f.name}: {exc}") from None
    return config_class(**kwargs)


def config_values(config: Any) -> dict[str, Any]:
    """The field values of a config instance, as plain YAML-ready data."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
