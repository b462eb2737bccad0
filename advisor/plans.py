"""Plan files: YAML in, a validated :class:`~tunewise.plugins.types.Plan` out (no torch).

A plan names a method, a model, data, the method's ``config`` (its ``config_class`` fields) and
shared ``training`` settings (the ``training_settings`` class its config class names, if any)::

    method: lora                      # a registered method id
    model: null                       # null = the embedded SmolLM2-135M-Instruct; or a local folder / cached hub id
    data: ../data/support_chat.jsonl  # one path or a list
    output_dir: runs/lora
    config: {r: 8, alpha: 32}
    training: {epochs: 2, learning_rate: 2.0e-4}

Every problem is reported at once, each with the plan file, the YAML line and the field path
(``plan.yaml:9: training.learning_rate: must be between 0 and 1, got 5``).

Path policy: relative ``data`` paths resolve against the folder holding the plan file (so a plan
and its data travel together); ``~`` is expanded; every data path must exist when the plan is
loaded. ``output_dir`` is relative to the directory ``tunewise run`` is started from (outputs land
where you work); default ``runs/<plan file name>``. A local ``model`` folder is relative to that
directory too. Config and training settings that name files are marked in their dataclass
(``metadata={"path": "read" | "write"}``, :data:`tunewise.plugins.trust.PATH_MARKER`); a relative
read path is taken beside the plan when it exists there, else in the working directory.

A plan file read from disk may name paths (``data``, ``output_dir``, a local ``model`` folder and
every marked setting, lists included) only inside its own folder or the working directory:
absolute paths, ``~`` and ``..`` are fine while they stay there, links are followed to where they
lead, and a named folder (the default ``runs/<plan>`` too) must hold no link leading out. Anything
else needs the user's ``--allow-outside-paths``, since a plan from someone else must not pick the
user's files. ``tunewise run --out`` is the user's own choice and replaces ``output_dir`` unchecked.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.redaction import redacted_repr
from tunewise.plugins.types import Plan

TOP_LEVEL = ("method", "model", "data", "output_dir", "config", "training", "distributed")


class PlanError(TunewiseError):
    """A plan file that cannot be run as written; the message lists ``file:line: field: problem``."""


Path_ = tuple[str | int, ...]


class _Lines:
    """YAML line numbers of every key and value, by field path (from the composed node tree)."""

    def __init__(self) -> None:
        self.value: dict[Path_, int] = {}
        self.key: dict[Path_, int] = {}
        self.duplicates: list[tuple[Path_, int]] = []

    def walk(self, node: yaml.Node, path: Path_ = ()) -> None:
        self.value[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark.line + 1))
                seen.add(key)
                self.key[child] = key_node.start_mark.line + 1
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))

    def line(self, path: Path_) -> int:
        while path:
            if path in self.value:
                return self.value[path]
            path = path[:-1]
        return self.value.get((), 1)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Problems:
    def __init__(self, source: str, lines: _Lines) -> None:
        self.source = source
        self.lines = lines
        self.items: list[tuple[int, str]] = []

    def add(self, path: Path_, message: str, *, at_key: bool = False) -> None:
        line = self.lines.key.get(path) if at_key else None
        line = line or self.lines.line(path)
        self.items.append((line, f"{_dotted(path)}: {message}" if path else message))

    def raise_if_any(self) -> None:
        if self.items:
            listed = "\n".join(f"  {self.source}:{line}: {msg}" for line, msg in sorted(self.items))
            count = len(self.items)
            raise PlanError(f"{self.source}: {count} problem{'s' if count > 1 else ''} in the plan:\n{listed}")


# -- typed fields ------------------------------------------------------------------------------


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _type_name(annotation: Any) -> str:
    annotation, optional = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        name = "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    elif origin in (tuple, list):
        name = "a list"
    else:
        name = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(
            annotation, getattr(annotation, "__name__", str(annotation)))
    return name + (" or null" if optional else "")


def coerce(value: Any, annotation: Any) -> Any:
    """``value`` as the annotated type; raises ``ValueError`` saying what was expected.

    YAML 1.1 reads ``2e-4`` (no dot) as text, so number fields also accept numeric text.
    """
    annotation, optional = _unwrap_optional(annotation)
    if value is None:
        if optional:
            return None
        raise ValueError(f"must be {_type_name(annotation)}, got null")
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value in allowed:
            return value
        raise ValueError(f"must be one of {', '.join(str(a) for a in allowed)}, got {redacted_repr(value, 80)}")
    if origin in (tuple, list) or annotation in (tuple, list):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError(f"must be a list, got {type(value).__name__}")
        inner = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if inner:
            items = [coerce(item, inner[0]) for item in items]
        return tuple(items) if (origin is tuple or annotation is tuple) else list(items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"must be true or false, got {redacted_repr(value, 80)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"must be a whole number, got {redacted_repr(value, 80)}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"must be a number, got {redacted_repr(value, 80)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"must be text, got {redacted_repr(value, 80)}")
    return value


def _build_section(cls: type, values: Any, section: str, problems: _Problems) -> dict[str, Any]:
    """Typed values of a config-like dataclass section, reporting unknown fields and bad types."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        problems.add((section,), f"must be a mapping of settings, got {type(values).__name__}")
        return {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(fields)
            problems.add((section, key), f"unknown field; {cls.__name__} has: {known}", at_key=True)
            continue
        try:
            out[key] = coerce(value, hints.get(key, Any))
        except ValueError as exc:
            problems.add((section, key), str(exc))
    try:
        instance = cls(**out)
    except (TypeError, ValueError, TunewiseError) as exc:
        problems.add((section,), str(exc))
        return out
    check = getattr(instance, "problems", None)
    for name, message in check() if callable(check) else []:
        if name in out:  # defaults are the class's business, not the plan's
            problems.add((section, name), message)
    return out


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# -- loading ---------------------------------------------------------------------------------------


def _method_classes(method_id: str) -> tuple[type | None, type | None]:
    """(config class, training settings class) of a registered method; raises for unknown ids."""
    from tunewise.plugins.manager import get_host

    cls = get_host().methods.get(method_id)
    if cls is None:
        raise KeyError(method_id)
    config_class = getattr(cls, "config_class", None)
    training_class = getattr(config_class, "training_settings", None) if config_class else None
    return config_class, training_class


def parse_plan(text: str, source: str = "plan.yaml", base_dir: Path | None = None,
               roots: Sequence[Path] | None = None, out: str | None = None) -> Plan:
    """Validate plan YAML ``text``; ``base_dir`` is where relative data paths start (the plan's folder).

    With ``roots``, every path the plan names must lie inside one of them (see :mod:`tunewise.plugins.trust`).
    ``out`` is the user's own output folder (``tunewise run --out``): it replaces ``output_dir``, unchecked.
    """
    base_dir = base_dir or Path.cwd()
    from tunewise.plugins.bounded_load import InputError, load_yaml

    try:  # bounded: an alias bomb or deep nesting is refused before anything walks the tree
        data, root = load_yaml(text, source)
    except InputError as exc:
        raise PlanError(str(exc)) from None
    lines = _Lines()
    if root is not None:
        lines.walk(root)
    problems = _Problems(source, lines)
    if not isinstance(data, dict):
        problems.add((), "a plan is a mapping with at least `method:` and `data:`")
        problems.raise_if_any()
    for path, _line in lines.duplicates:
        problems.add(path, "given twice (the second value would silently win)", at_key=True)
    for key in data:
        if key not in TOP_LEVEL:
            problems.add((key,), f"unknown field; a plan has: {', '.join(TOP_LEVEL)}", at_key=True)

    method = data.get("method")
    config_class = training_class = None
    method_known = False
    if not isinstance(method, str) or not method:
        problems.add(("method",), "missing: name a method (e.g. lora, full_finetune, continual_pretraining)")
    else:
        try:
            config_class, training_class = _method_classes(method)
            method_known = True
        except KeyError:
            from tunewise.plugins.manager import get_host

            problems.add(("method",), f"unknown method {redacted_repr(method, 80)}; registered: {', '.join(sorted(get_host().methods))}")

    model = data.get("model")
    if model is not None and not isinstance(model, str):
        problems.add(("model",), f"must be a local model folder, a cached hub id or null, got {redacted_repr(model, 80)}")
    elif model is not None and roots is not None:
        # A hub id ("org/name") is a plain relative name, inside the working directory unless a folder of
        # that name is there, which resolve_model would then load: judged like any other local folder.
        _check_outside(problems, ("model",), model, None, "read", roots)

    raw_data = data.get("data")
    paths: list[str] = []
    if raw_data is None:
        problems.add(("data",), "missing: give a data file or folder (or a list of them)")
    else:
        items = [raw_data] if isinstance(raw_data, str) else raw_data
        if not isinstance(items, list) or not items:
            problems.add(("data",), "must be a path or a non-empty list of paths")
            items = []
        for i, item in enumerate(items):
            where: Path_ = ("data",) if isinstance(raw_data, str) else ("data", i)
            if not isinstance(item, str) or not item.strip():
                problems.add(where, f"must be a path, got {redacted_repr(item, 80)}")
                continue
            try:
                resolved = resolve_data_path(item, base_dir)
                exists = resolved.exists()
            except (ValueError, OSError, RuntimeError) as exc:  # NUL byte, name too long, ~unknown-user
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                problems.add(where, f"not a usable path ({reason}): {redacted_repr(item, 80)}")
                continue
            if not exists:
                problems.add(where, f"{item} does not exist (resolved to {resolved}; relative paths start at "
                                    f"the plan's folder {base_dir})")
            paths.append(str(resolved))
            if roots is not None:
                from tunewise.plugins.trust import check_plan_paths

                for _, problem in check_plan_paths([item], base_dir, roots):
                    problems.add(where, problem)

    output_dir = data.get("output_dir")
    if output_dir is not None and (not isinstance(output_dir, str) or not output_dir.strip()):
        problems.add(("output_dir",), f"must be a folder path, got {redacted_repr(output_dir, 80)}")
        output_dir = None
    if out is not None:
        output_dir = out
    if output_dir is None:
        output_dir = str(Path("runs") / Path(source).stem)
    if out is None and roots is not None:  # the default too: a cloned project can hold runs/<plan>/ with links
        _check_outside(problems, ("output_dir",), output_dir, None, "write", roots)

    config: dict[str, Any] = {}
    training: dict[str, Any] = {}
    if config_class is not None:
        config = _build_section(config_class, data.get("config"), "config", problems)
    elif data.get("config") and method_known:
        problems.add(("config",), f"method {method!r} takes no config settings", at_key=True)
    if training_class is not None:
        training = _build_section(training_class, data.get("training"), "training", problems)
    elif data.get("training") and method_known:
        problems.add(("training",), f"method {method!r} does not train; remove the training block", at_key=True)
    from tunewise.plugins.parallelism import DistributedSettings

    distributed = _build_section(DistributedSettings, data.get("distributed"), "distributed", problems)
    if distributed and training_class is None and method_known:
        problems.add(("distributed",), f"method {method!r} does not train; remove the distributed block", at_key=True)
    if roots is not None:
        for cls, section, values in ((config_class, "config", config), (training_class, "training", training),
                                     (DistributedSettings, "distributed", distributed)):
            for where, value, kind in marked_paths(cls, values, section):
                _check_outside(problems, where, value, base_dir, kind, roots)
    problems.raise_if_any()
    return Plan(
        method=str(method), model=model, data=tuple(paths),
        config={k: _plain(v) for k, v in config.items()}, training={k: _plain(v) for k, v in training.items()},
        output_dir=str(output_dir), source=source, distributed=distributed,
    )


def marked_paths(cls: type | None, values: Mapping[str, Any], section: str) -> Iterator[tuple[Path_, str, str]]:
    """(field path, path text, "read" | "write") for every value of a path-marked field of ``cls``.

    Lists and mappings are walked to any depth (``config.extra_files[2]``); non-text leaves name no path.
    """
    from tunewise.plugins.trust import path_fields

    def walk(where: Path_, value: Any, kind: str) -> Iterator[tuple[Path_, str, str]]:
        if isinstance(value, str):
            yield where, value, kind
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                yield from walk((*where, i), item, kind)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                yield from walk((*where, str(key)), item, kind)

    for name, kind in path_fields(cls).items():
        if values.get(name) is not None:
            yield from walk((section, name), values[name], kind)


def _check_outside(problems: _Problems, where: Path_, value: str, plan_dir: Path | None, kind: str,
                   roots: Sequence[Path]) -> None:
    """Report ``value`` at ``where`` when it leads outside ``roots`` (see :func:`tunewise.plugins.trust.outside_problem`)."""
    from tunewise.plugins.trust import outside_problem, plan_path_target

    try:
        problem = outside_problem(value, plan_path_target(value, plan_dir, kind), roots)
    except (ValueError, OSError, RuntimeError) as exc:  # NUL byte, name too long, ~unknown-user
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = f"not a usable path ({reason}): {value[:80]!r}{'…' if len(value) > 80 else ''}"
    if problem:
        problems.add(where, problem)


def resolve_data_path(item: str, base_dir: Path) -> Path:
    """A plan's data path made absolute: ``~`` expanded, relative ones joined to the plan's folder."""
    path = Path(item).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()


def load_plan(path: str | Path, *, allow_outside_paths: bool | None = None, out: str | None = None) -> Plan:
    """Read and validate a plan file (see the module docstring for the schema and path policy).

    Every path the plan names must lie in the plan's folder or the working directory unless
    ``allow_outside_paths`` (default: the user's ``--allow-outside-paths`` opt-in,
    :func:`~tunewise.plugins.trust.outside_paths_allowed`). ``out``: the user's ``--out``, used as is.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise PlanError(f"{file}: no such plan file")
    from tunewise.plugins.bounded_load import MAX_DOCUMENT_BYTES, InputError, read_text

    try:
        text = read_text(file, MAX_DOCUMENT_BYTES, "a plan file")
    except InputError as exc:
        raise PlanError(str(exc)) from None
    except UnicodeDecodeError:
        raise PlanError(f"{file}: not UTF-8 text") from None
    if allow_outside_paths is None:
        from tunewise.plugins.trust import outside_paths_allowed

        allow_outside_paths = outside_paths_allowed()
    roots = None if allow_outside_paths else (file.resolve().parent, Path.cwd())
    return parse_plan(text, source=str(file), base_dir=file.resolve().parent, roots=roots, out=out)


def plan_to_yaml(plan: Plan) -> str:
    """A plan as YAML (data paths as stored: absolute after :func:`load_plan`)."""
    data: dict[str, Any] = {"method": plan.method, "model": plan.model,
                            "data": list(plan.data) if len(plan.data) != 1 else plan.data[0],
                            "output_dir": plan.output_dir}
    if plan.config:
        data["config"] = dict(plan.config)
    if plan.training:
        data["training"] = dict(plan.training)
    if plan.distributed:
        data["distributed"] = dict(plan.distributed)
    return yaml.safe_dump(data, sort_keys=False)
