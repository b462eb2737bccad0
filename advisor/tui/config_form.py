"""The plan form: a method's config dataclass as form questions, and form values back into plan YAML.

Config classes follow trl's style: ``field(default=..., metadata={"help": ...})``. Each field
becomes a :class:`Question` (type from the annotation, choices from a ``Literal``, help from the
metadata) so the plan screen reuses the interview's field widget.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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
    return Question(id=prefix + field.name, text=field.name, help=help_text, type=kind,
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


# -- plans -----------------------------------------------------------------------------------------

PLAN_PREFIX = "plan."
CONFIG_PREFIX = "config."
TRAINING_PREFIX = "training."


@dataclass(frozen=True)
class PlanSection:
    title: str
    prefix: str
    questions: tuple[Question, ...]
    settings_class: type[Any] | None = None


def plan_sections(method_id: str, config_class: type[Any] | None, *, model: str | None = None,
                  data: str | None = None, output_dir: str | None = None) -> list[PlanSection]:
    """The plan form: where (model, data, output), the method's own settings, the training settings."""
    where = (
        Question(PLAN_PREFIX + "model", "model", "a local model folder or a Hugging Face id in your cache; "
                 "empty = the embedded SmolLM2-135M-Instruct", "text", model or ""),
        Question(PLAN_PREFIX + "data", "data", "a data file or folder (several: separate them with commas)",
                 "text", data or ""),
        Question(PLAN_PREFIX + "output_dir", "output folder", "where checkpoints, the trained model, the "
                 "events and the report go", "text", output_dir or f"runs/{method_id}"),
    )
    sections = [PlanSection("Plan", PLAN_PREFIX, where)]
    if config_class is not None:
        sections.append(PlanSection("Method settings", CONFIG_PREFIX,
                                    tuple(config_questions(config_class, CONFIG_PREFIX)), config_class))
        training_class = getattr(config_class, "training_settings", None)
        if training_class is not None:
            sections.append(PlanSection("Training settings", TRAINING_PREFIX,
                                        tuple(config_questions(training_class, TRAINING_PREFIX)), training_class))
    return sections


def plan_document(method_id: str, sections: list[PlanSection], values: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """The plan mapping from form values (question id -> value) and the per-field conversion errors."""
    errors: dict[str, str] = {}
    model = str(values.get(PLAN_PREFIX + "model") or "").strip() or None
    data_items = [d.strip() for d in str(values.get(PLAN_PREFIX + "data") or "").split(",") if d.strip()]
    document: dict[str, Any] = {
        "method": method_id,
        "model": model,
        "data": [str(Path(d).expanduser().resolve()) for d in data_items],
        "output_dir": str(values.get(PLAN_PREFIX + "output_dir") or "").strip() or f"runs/{method_id}",
    }
    if len(document["data"]) == 1:
        document["data"] = document["data"][0]
    for section in sections:
        if section.settings_class is None:
            continue
        hints = typing.get_type_hints(section.settings_class)
        block: dict[str, Any] = {}
        for question in section.questions:
            name = question.id.removeprefix(section.prefix)
            try:
                block[name] = _plain(_convert(values.get(question.id, question.default), hints.get(name, str), name))
            except (TypeError, ValueError) as exc:
                errors[question.id] = str(exc)
        document[section.prefix.rstrip(".")] = block
    return document, errors


def _yaml_value(value: Any) -> str:
    import yaml

    text = yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=1000).strip()
    return text[1:-1]


def with_defaults(sections: list[PlanSection], defaults: Mapping[str, Any]) -> list[PlanSection]:
    """``sections`` with the questions named in ``defaults`` (question id -> value) defaulting to those values."""
    out = []
    for section in sections:
        questions = tuple(dataclasses.replace(q, default=defaults[q.id]) if q.id in defaults else q
                          for q in section.questions)
        out.append(dataclasses.replace(section, questions=questions))
    return out


def plan_yaml(document: Mapping[str, Any], sections: list[PlanSection], command: str, *,
              reasons: Mapping[str, str] | None = None, writer: str = "the app") -> str:
    """The plan as YAML with each setting's help as a comment (torchtune-style), ready for ``tunewise run``.

    ``reasons`` (question id -> why this value) replace the help of the settings they name.
    """
    helps = {q.id: q.help for s in sections for q in s.questions}
    helps.update(reasons or {})
    lines = [f"# tunewise plan for {document['method']}, written by {writer}.", f"# Run it: {command}"]
    for key in ("method", "model", "data", "output_dir"):
        line = f"{key}: {_yaml_value(document[key])}"
        help_text = helps.get(PLAN_PREFIX + key, "")
        lines.append(f"{line}  # {help_text}" if help_text else line)
    for block_name in ("config", "training"):
        block = document.get(block_name)
        if not block:
            continue
        lines.append(f"{block_name}:")
        for name, value in block.items():
            help_text = helps.get(f"{block_name}.{name}", "").replace("\n", " ")
            line = f"  {name}: {_yaml_value(value)}"
            lines.append(f"{line}  # {help_text}" if help_text else line)
    return "\n".join(lines) + "\n"


PLAN_PROBLEM = re.compile(r"^\s*\S.*?:(\d+): (?P<field>[A-Za-z_][\w.]*(?:\[\d+\])?): (?P<message>.*)$")


def plan_problems(message: str) -> dict[str, str]:
    """``PlanError`` text -> question id -> problem (``data[0]`` and ``model`` map to the plan section)."""
    out: dict[str, str] = {}
    for line in message.splitlines():
        match = PLAN_PROBLEM.match(line)
        if not match:
            continue
        field_path = re.sub(r"\[\d+\]$", "", match.group("field"))
        if not field_path.startswith((CONFIG_PREFIX, TRAINING_PREFIX)):
            field_path = PLAN_PREFIX + field_path
        out.setdefault(field_path, match.group("message"))
    return out
