"""The answers file: YAML in, a validated :class:`~tunewise.plugins.types.Profile` out.

Every field, its default and its meaning is in :data:`FIELDS` (README "The answers file" is written
from it). Omitted fields take their defaults; an unknown field or a bad value is an error naming the
field's path and, when read from a file, its line: ``answers.yaml:7: budget.usd: must be ≥ 0``.
All problems of a file are reported together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunewise.advisor import limits
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.redaction import redacted_repr
from tunewise.plugins.types import (
    EXPERTISE_LEVELS,
    GOALS,
    KNOWLEDGE_CHANGES,
    Budget,
    DataProfile,
    HardwareChoice,
    ModelProfile,
    Profile,
)

Kind = Literal["text", "int", "float", "bool", "choice", "multi", "path", "count", "optional_text"]


class AnswersError(TunewiseError):
    """Invalid answers; the message lists every problem as ``[file:line: ]field.path: problem``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid answers:\n  " + "\n  ".join(problems) if len(problems) > 1 else
                         f"invalid answers: {problems[0]}")


@dataclass(frozen=True)
class FieldSpec:
    """One field of the answers file."""

    path: str
    """Dotted path in the file (``budget.usd``)."""
    kind: Kind
    default: Any
    meaning: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above_minimum: bool = False
    """True when the value must be strictly greater than ``minimum``."""
    maximum: float | None = None
    """Largest value accepted (:mod:`tunewise.advisor.limits`: far beyond any real run, keeps quotes finite)."""
    aliases: tuple[tuple[str, str], ...] = ()
    """Other spellings of a choice people write, and the choice each means (``real-time`` → ``realtime``)."""


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("use_case", "text", "", "What the adapted model is for, in your words."),
    FieldSpec("goals", "multi", ("task",), "What the model should gain: knowledge = facts it lacks; "
              "task = a specific skill (classify, extract …); style = voice/tone; format = output structure; "
              "language = a language or dialect; domain = fluency in a field's language; safety = avoid "
              "harmful output; preference = match human judgements of quality.", choices=GOALS),
    FieldSpec("knowledge_changes", "choice", "never", "How often the facts it needs change (realtime: as they "
              "happen; real-time is accepted too).", choices=KNOWLEDGE_CHANGES,
              aliases=(("real-time", "realtime"), ("real time", "realtime"), ("real_time", "realtime"))),
    FieldSpec("needs_citations", "bool", False, "Answers must cite their sources."),
    FieldSpec("data.documents", "count", 0, "Reference documents the model should draw on.", minimum=0,
              maximum=limits.EXAMPLES.high),
    FieldSpec("data.unlabeled_tokens", "count", 0, "Raw domain text, in tokens (2e9, 500M and 2B are accepted).",
              minimum=0, maximum=limits.TOKENS.high),
    FieldSpec("data.labeled_examples", "count", 0, "Input → output example pairs.", minimum=0,
              maximum=limits.EXAMPLES.high),
    FieldSpec("data.preference_pairs", "count", 0, "Chosen/rejected pairs or rankings of outputs.", minimum=0,
              maximum=limits.EXAMPLES.high),
    FieldSpec("data.human_raters", "bool", False, "People available to rate outputs over time."),
    FieldSpec("data.path", "path", None, "A data file or folder; it is audited and its counts replace the "
              "numbers above (relative to the answers file)."),
    FieldSpec("model.name", "optional_text", None, "A local model folder or a Hugging Face id in the local "
              "cache; null = a model of model.params_b billion parameters (runs use the embedded model)."),
    FieldSpec("model.params_b", "float", 7.0, "Model size in billions of parameters (used when the model is "
              "not on disk).", minimum=0, above_minimum=True, maximum=limits.PARAMS_B.high),
    FieldSpec("hardware.gpu", "text", "A100-80GB", "Accelerator from the catalogue (H100, H200, A100-40GB, "
              "A100-80GB, L4, A10G, RTX4090, A6000, T4, cpu …), case-insensitive."),
    FieldSpec("hardware.gpus", "int", 1, "How many of them.", minimum=1, maximum=limits.GPUS.high),
    FieldSpec("budget.usd", "float", 1000.0, "Compute budget in US dollars.", minimum=0, maximum=limits.USD.high),
    FieldSpec("budget.days", "float", 14.0, "Calendar days available.", minimum=0, above_minimum=True,
              maximum=limits.DAYS.high),
    FieldSpec("team_expertise", "choice", "moderate", "The team's ML experience.", choices=EXPERTISE_LEVELS),
    FieldSpec("queries_per_day", "count", 1000, "Expected queries per day once deployed.", minimum=0,
              maximum=limits.QUERIES_PER_DAY.high),
    FieldSpec("latency_sensitive", "bool", False, "Answers must come back fast (long prompts hurt)."),
)
"""The answers file schema, in file order."""

SPECS: dict[str, FieldSpec] = {f.path: f for f in FIELDS}
SECTIONS = ("data", "model", "hardware", "budget")
EXTRA_KEY = "extra"
"""Answers to plugin-contributed questions go under ``extra:`` keyed by question id."""

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(value: Any) -> float:
    """A count given as a number or as text like ``2e9``, ``500M``, ``1.5B``, ``20_000`` (ValueError otherwise)."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    number: float | None = None
    try:
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            text = value.strip().replace("_", "").replace(",", "").lower()
            # The sign is read too, so "-5" is a number the minimum check rejects ("must be >= 0"),
            # not "not a number".
            match = re.fullmatch(r"([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)", text)
            if match:
                number = float(match.group(1)) * _SUFFIX.get(match.group(2), 1.0)
    except OverflowError:  # an int with hundreds of digits
        number = math.inf
    if number is not None and not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {redacted_repr(value, 80)}")
    if number is not None:
        return number
    raise ValueError(f"must be a number (e.g. 20000, 2e9, 500M), got {redacted_repr(value, 80)}")


def validate_value(spec: FieldSpec, value: Any) -> Any:
    """``value`` checked and converted for ``spec``; ValueError with a message without the path."""
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {redacted_repr(value, 80)}")
        return value
    if kind in ("text",):
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {redacted_repr(value, 80)}")
        return value.strip()
    if kind in ("optional_text", "path"):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError(f"must be text or null, got {redacted_repr(value, 80)}")
        return value.strip()
    if kind == "choice":
        choice = dict(spec.aliases).get(value.strip().lower(), value) if isinstance(value, str) else value
        if not isinstance(choice, str) or choice.strip().lower() not in spec.choices:
            raise ValueError(f"must be one of {', '.join(spec.choices)}, got {redacted_repr(value, 80)}")
        return choice.strip().lower()
    if kind == "multi":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise ValueError(f"must be a list of one or more of {', '.join(spec.choices)}")
        out: list[str] = []
        for item in items:
            if not isinstance(item, str) or item.strip().lower() not in spec.choices:
                raise ValueError(f"{redacted_repr(item, 80)} is not one of {', '.join(spec.choices)}")
            if item.strip().lower() not in out:
                out.append(item.strip().lower())
        return tuple(out)
    number: float
    if kind == "count":
        number = parse_count(value)
        if number != int(number):
            raise ValueError(f"must be a whole number, got {redacted_repr(value, 80)}")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {redacted_repr(value, 80)}")
        number = value
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, got {redacted_repr(value, 80)}")
        try:
            number = float(value)
        except OverflowError:  # an int with hundreds of digits
            number = math.inf
    if isinstance(number, float) and not math.isfinite(number):  # nan passes every comparison below
        raise ValueError(f"must be a finite number, got {redacted_repr(value, 80)}")
    if spec.minimum is not None:
        if spec.above_minimum and number <= spec.minimum:
            raise ValueError(f"must be > {spec.minimum:g}, got {redacted_repr(value, 80)}")
        if not spec.above_minimum and number < spec.minimum:
            raise ValueError(f"must be ≥ {spec.minimum:g}, got {redacted_repr(value, 80)}")
    if spec.maximum is not None and number > spec.maximum:
        raise ValueError(f"must be ≤ {limits.shown(spec.maximum)}, got {redacted_repr(value, 80)}")
    return int(number) if kind in ("count", "int") else number


def _where(path: str, lines: Mapping[str, int], source: str | None) -> str:
    line = lines.get(path)
    if source and line:
        return f"{source}:{line}: {path}"
    if source:
        return f"{source}: {path}"
    return path


def _line_of(problem: str) -> int:
    """The line number in a ``file:line: …`` problem (0 without one), to report problems in file order."""
    match = re.match(r"^.*?:(\d+): ", problem)
    return int(match.group(1)) if match else 0


def profile_from_mapping(data: Any, *, source: str | None = None, lines: Mapping[str, int] | None = None,
                         base_dir: Path | None = None, extra_questions: Mapping[str, Any] | None = None,
                         check_hardware: bool = True) -> Profile:
    """Validate a parsed answers document and build the :class:`Profile`.

    ``lines`` maps dotted paths to YAML line numbers (see :func:`load_answers`); ``base_dir`` is where a
    relative ``data.path`` is resolved from; ``extra_questions`` maps plugin question ids to their
    :class:`~tunewise.plugins.types.Question` (only those ids are allowed under ``extra:``).
    """
    lines = lines or {}
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise AnswersError([f"{source or 'answers'}: must be a mapping of fields (use_case, goals, data …)"])
    values: dict[str, Any] = {}
    top_known = {p for p in SPECS if "." not in p} | set(SECTIONS) | {EXTRA_KEY}
    for key, value in data.items():
        key = str(key)
        if key not in top_known:
            problems.append(f"{_where(key, lines, source)}: unknown field (known: {', '.join(sorted(top_known))})")
            continue
        if key in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                problems.append(f"{_where(key, lines, source)}: must be a mapping")
                continue
            known = sorted(p.split(".", 1)[1] for p in SPECS if p.startswith(key + "."))
            for sub, sub_value in value.items():
                path = f"{key}.{sub}"
                if path not in SPECS:
                    problems.append(f"{_where(path, lines, source)}: unknown field (known: {', '.join(known)})")
                    continue
                values[path] = sub_value
        elif key == EXTRA_KEY:
            continue
        else:
            values[key] = value
    checked: dict[str, Any] = {}
    for spec in FIELDS:
        if spec.path not in values:
            checked[spec.path] = spec.default
            continue
        try:
            checked[spec.path] = validate_value(spec, values[spec.path])
        except ValueError as exc:
            problems.append(f"{_where(spec.path, lines, source)}: {exc}")
            checked[spec.path] = spec.default
    extra = _check_extra(data.get(EXTRA_KEY), extra_questions or {}, lines, source, problems)
    path_value = checked["data.path"]
    if path_value:
        resolved = Path(path_value)
        try:
            resolved = resolved.expanduser()  # before joining: `~/data` means the home folder
            resolved = base_dir / resolved if base_dir and not resolved.is_absolute() else resolved
            exists = resolved.exists()
        except (RuntimeError, OSError, ValueError) as exc:  # ~unknown-user, a name too long for the file system
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"{_where('data.path', lines, source)}: not a usable path ({reason})")
            exists = True  # reported; not also "no such file"
        if not exists:
            problems.append(f"{_where('data.path', lines, source)}: no such file or folder: {resolved}")
        checked["data.path"] = str(resolved)
    if check_hardware and "hardware.gpu" in values and not any(p for p in problems if "hardware.gpu" in p):
        from tunewise.advisor.hardware import HardwareError, find_hardware

        try:
            checked["hardware.gpu"] = find_hardware(checked["hardware.gpu"]).name
        except HardwareError as exc:
            problems.append(f"{_where('hardware.gpu', lines, source)}: {exc}")
    if problems:
        raise AnswersError(sorted(problems, key=_line_of))
    return Profile(
        use_case=checked["use_case"],
        goals=checked["goals"],
        knowledge_changes=checked["knowledge_changes"],
        needs_citations=checked["needs_citations"],
        data=DataProfile(
            documents=checked["data.documents"], unlabeled_tokens=checked["data.unlabeled_tokens"],
            labeled_examples=checked["data.labeled_examples"], preference_pairs=checked["data.preference_pairs"],
            human_raters=checked["data.human_raters"], path=checked["data.path"],
        ),
        model=ModelProfile(name=checked["model.name"], params_b=checked["model.params_b"]),
        hardware=HardwareChoice(gpu=checked["hardware.gpu"], gpus=checked["hardware.gpus"]),
        budget=Budget(usd=checked["budget.usd"], days=checked["budget.days"]),
        team_expertise=checked["team_expertise"],
        queries_per_day=checked["queries_per_day"],
        latency_sensitive=checked["latency_sensitive"],
        extra=extra,
    )


def _check_extra(raw: Any, questions: Mapping[str, Any], lines: Mapping[str, int], source: str | None,
                 problems: list[str]) -> dict[str, Any]:
    """Plugin answers under ``extra:``: ids must be registered questions; values checked by question type."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(f"{_where(EXTRA_KEY, lines, source)}: must be a mapping of plugin question ids")
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{EXTRA_KEY}.{key}"
        question = questions.get(str(key))
        if question is None:
            known = ", ".join(sorted(questions)) or "none registered"
            problems.append(f"{_where(path, lines, source)}: unknown plugin question (known: {known})")
            continue
        try:
            out[str(key)] = check_question_value(question, value)
        except ValueError as exc:
            problems.append(f"{_where(path, lines, source)}: {exc}")
    for qid, question in questions.items():
        if qid not in out and question.default is not None:
            out[qid] = question.default
    return out


def check_question_value(question: Any, value: Any) -> Any:
    """A value checked against a plugin :class:`~tunewise.plugins.types.Question` (type, choices, minimum)."""
    kinds: dict[str, Kind] = {"int": "int", "float": "float", "bool": "bool", "choice": "choice", "multi": "multi",
                              "path": "path", "text": "text"}
    kind = kinds.get(question.type, "text")
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    spec = FieldSpec(question.id, kind, question.default, question.help, tuple(question.choices),
                     question.minimum)
    return validate_value(spec, value)


def yaml_lines(text: str) -> dict[str, int]:
    """Dotted key path -> 1-based line of the key, for every mapping key in a YAML document."""
    import yaml
    from tunewise.plugins.bounded_load import InputError, compose_yaml

    try:
        root = compose_yaml(text, "answers")
    except InputError:
        return {}
    out: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = f"{prefix}{key.value}"
                out.setdefault(path, key.start_mark.line + 1)
                walk(value, path + ".")

    walk(root, "")
    return out


def duplicate_keys(text: str) -> list[tuple[str, int]]:
    """(dotted key path, line) of every mapping key given a second time in YAML ``text``."""
    import yaml
    from tunewise.plugins.bounded_load import InputError, compose_yaml

    try:
        root = compose_yaml(text, "answers")
    except InputError:
        return []
    found: list[tuple[str, int]] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key, value in node.value:
                path = f"{prefix}{key.value}"
                if isinstance(key, yaml.ScalarNode) and key.value in seen:
                    found.append((path, key.start_mark.line + 1))
                seen.add(key.value if isinstance(key, yaml.ScalarNode) else id(key))
                walk(value, path + ".")
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item, prefix)

    walk(root, "")
    return found


def parse_answers(text: str, source: str = "answers", base_dir: Path | None = None,
                  extra_questions: Mapping[str, Any] | None = None) -> Profile:
    """A profile from answers YAML text; YAML syntax errors name the line."""
    from tunewise.plugins.bounded_load import InputError, load_yaml

    try:  # bounded: an alias bomb or deep nesting is refused before anything walks the tree
        data, _ = load_yaml(text, source)
    except InputError as exc:
        if exc.detail is None:
            raise AnswersError([str(exc)]) from None
        where = f"{source}:{exc.line}" if exc.line else source
        raise AnswersError([f"{where}: not valid YAML ({exc.detail})"]) from None
    twice = duplicate_keys(text)
    if twice:
        raise AnswersError([f"{source}:{line}: {path}: given twice (the second value would silently win)"
                            for path, line in twice])
    if extra_questions is None:
        from tunewise.advisor.interview import plugin_questions

        extra_questions = {q.id: q for q in plugin_questions()}
    return profile_from_mapping(data, source=source, lines=yaml_lines(text), base_dir=base_dir,
                                extra_questions=extra_questions)


def load_answers(path: str | Path) -> Profile:
    """Read and validate an answers file (see README "The answers file")."""
    from tunewise.plugins.bounded_load import MAX_DOCUMENT_BYTES, InputError, read_text

    file = Path(path).expanduser()
    try:
        text = read_text(file, MAX_DOCUMENT_BYTES, "an answers file")
    except InputError as exc:
        raise AnswersError([str(exc)]) from None
    except FileNotFoundError:
        raise AnswersError([f"{file}: no such answers file"]) from None
    except OSError as exc:  # a folder, a file without read permission
        raise AnswersError([f"{file}: cannot read it ({exc.strerror or exc})"]) from None
    except UnicodeDecodeError as exc:
        raise AnswersError([f"{file}: not UTF-8 text ({exc.reason})"]) from None
    return parse_answers(text, source=str(file), base_dir=file.parent)


def profile_to_answers(profile: Profile) -> dict[str, Any]:
    """The answers-file mapping of a profile (what the TUI saves; round-trips through :func:`parse_answers`)."""
    out: dict[str, Any] = {}
    for spec in FIELDS:
        section, _, name = spec.path.partition(".")
        value = getattr(getattr(profile, section), name) if name else getattr(profile, section)
        if isinstance(value, tuple):
            value = list(value)
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out[section] = value
    if profile.extra:
        out[EXTRA_KEY] = dict(profile.extra)
    return out


def dump_answers(profile: Profile) -> str:
    """YAML text of a profile's answers."""
    import yaml

    return yaml.safe_dump(profile_to_answers(profile), sort_keys=False, allow_unicode=True)
