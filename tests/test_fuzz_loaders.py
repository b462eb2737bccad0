"""Fuzzing the answers and plan loaders: whatever the text, the only exception is a TunewiseError.

Three generators: YAML-ish text built from YAML's own punctuation, indentation and tags; random
structured documents (nested dicts and lists of odd scalars) dumped as YAML; and real answers
and plan files with one field replaced by a random value. Example counts are bounded so the
whole file runs in well under 30 seconds.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tunewise.advisor.answers import FIELDS, load_answers, parse_answers
from tunewise.advisor.plans import TOP_LEVEL, load_plan, parse_plan
from tunewise.plugins.errors import TunewiseError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])

_YAML_PIECES = st.sampled_from([
    "method", "data", "model", "config", "training", "goals", "use_case", "budget", "hardware", "extra",
    "distributed", "output_dir", "lora", "rlhf", "rag", "full_finetune", "task", "epochs", "max_steps", "r",
    ":", ": ", "- ", "\n", "\n  ", "\n    ", "\t", "{", "}", "[", "]", ",", "'", '"', "&a ", "*a", "!!str ",
    "!!python/object:os.system ", "? ", "|", ">", "#", "---", "...", "%YAML 1.1", "~", "null", "true", "1e400",
    "-1", "0x1F", ".inf", ".nan", "2024-01-01", "\x00", "\ufeff", "é", "../", "/etc/passwd", "<<: *a",
    "[" * 200, "9" * 400,
])
yamlish = st.lists(_YAML_PIECES, max_size=40).map("".join)

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(["task", "lora", "chat.jsonl", "A100", "1.5B", "500M", "../x", "1e999",
                                           "~no-such-user-3f9/x", "x" * 300, "a\x00b"]),
)
_keys = st.one_of(st.sampled_from([*TOP_LEVEL, *{f.path.split(".")[-1] for f in FIELDS}, "goals", "data"]),
                  st.text(max_size=12), st.integers(-3, 3))
documents = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(_keys, inner, max_size=5), max_leaves=20)


def _dump(value: object) -> str:
    try:
        return yaml.safe_dump(value, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return str(value)


def _only_tunewise_errors(call) -> None:
    with contextlib.suppress(TunewiseError):
        call()


@FUZZ
@given(text=st.one_of(yamlish, st.text(max_size=200)))
def test_answers_text(text: str) -> None:
    _only_tunewise_errors(lambda: parse_answers(text, source="fuzz.yaml", extra_questions={}))


@FUZZ
@given(doc=documents)
def test_answers_documents(doc: object) -> None:
    _only_tunewise_errors(lambda: parse_answers(_dump(doc), source="fuzz.yaml", extra_questions={}))


@FUZZ
@given(field=st.sampled_from([f.path for f in FIELDS]), value=documents)
def test_answers_one_field_replaced(field: str, value: object) -> None:
    section, _, name = field.partition(".")
    doc: dict = {"use_case": "support", "goals": ["task"], "data": {"labeled_examples": 3000}}
    if name:
        doc.setdefault(section, {})
        if isinstance(doc[section], dict):
            doc[section][name] = value
    else:
        doc[section] = value
    _only_tunewise_errors(lambda: parse_answers(_dump(doc), source="fuzz.yaml", extra_questions={}))


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-plans")
    (folder / "chat.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}, '
                                       '{"role": "assistant", "content": "yo"}]}\n')
    return folder


@FUZZ
@given(text=st.one_of(yamlish, st.text(max_size=200)))
def test_plan_text(text: str, plan_dir: Path) -> None:
    _only_tunewise_errors(lambda: parse_plan(text, source="fuzz.yaml", base_dir=plan_dir, roots=(plan_dir,)))


@FUZZ
@given(doc=documents)
def test_plan_documents(doc: object, plan_dir: Path) -> None:
    _only_tunewise_errors(lambda: parse_plan(_dump(doc), source="fuzz.yaml", base_dir=plan_dir, roots=(plan_dir,)))


@FUZZ
@given(method=st.sampled_from(["lora", "full_finetune", "continual_pretraining", "rlhf", "rag", "in_context"]),
       key=st.sampled_from([*TOP_LEVEL, "config.r", "config.algorithm", "config.shots", "training.epochs",
                            "training.learning_rate", "training.seq_len", "training.device", "distributed.processes"]),
       value=documents)
def test_plan_one_field_replaced(method: str, key: str, value: object, plan_dir: Path) -> None:
    doc: dict = {"method": method, "data": "chat.jsonl", "training": {"max_steps": 2}}
    section, _, name = key.partition(".")
    if name:
        doc[section] = {name: value}
    else:
        doc[section] = value
    _only_tunewise_errors(lambda: parse_plan(_dump(doc), source="fuzz.yaml", base_dir=plan_dir, roots=(plan_dir,)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=120))
def test_files_of_random_bytes(raw: bytes, tmp_path: Path) -> None:
    """Whole files of arbitrary bytes (other encodings, NUL, BOMs) through the file loaders."""
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    _only_tunewise_errors(lambda: load_answers(path))
    _only_tunewise_errors(lambda: load_plan(path))
