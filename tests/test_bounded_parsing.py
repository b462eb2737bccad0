"""Bounded parsing: every reader of a file someone else wrote refuses, naming ``file:line``, before the cost grows.

YAML alias bombs ("billion laughs") are refused while composing, before any loader walks or copies
the tree (checked in a fresh interpreter, with a generous hang guard and a peak-memory bound);
files over their size limit, FIFOs and devices are refused unread; an over-long line is named
without being read whole; a lone surrogate (a ``"\\ud800"`` JSON escape, which tokenizers cannot
encode) is named by every loader; and through ``tunewise run`` these data errors win over a model
that does not exist.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import run_cli
from tunewise.plugins.bounded_load import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_LINE_CHARS,
    MAX_YAML_ALIASES,
    MAX_YAML_VALUES,
    InputError,
    load_json,
    load_yaml,
    read_json,
    read_lines,
)
from tunewise.plugins.errors import TunewiseError

NO_MODEL = "no/such/model"
CHAT = {"messages": [{"role": "user", "content": "Where is my order?"},
                     {"role": "assistant", "content": "It ships tomorrow."}]}
PAIR = {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away."}
LONG = "x" * (MAX_LINE_CHARS + 1)
LONE = "\\ud800"  # a JSON escape of a lone surrogate, as it appears in the file


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def jsonl(*rows: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# -- YAML alias bombs ------------------------------------------------------------------------------


def _laughs(levels: int = 9, width: int = 9, mapping: bool = False) -> str:
    """A 'billion laughs' document: each level refers ``width`` times to the one before (width**levels values)."""
    lines = ["a0: &a0 [" + ",".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        refs = [f"k{j}: *a{i - 1}" for j in range(width)] if mapping else [f"*a{i - 1}"] * width
        lines.append(f"a{i}: &a{i} " + ("{" if mapping else "[") + ", ".join(refs) + ("}" if mapping else "]"))
    return "\n".join(lines) + "\n"


def _merges() -> str:
    lines = ["m0: &m0 {" + ", ".join(f"k{j}: v" for j in range(9)) + "}"]
    for i in range(1, 9):
        lines.append(f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 9) + "]}")
    return "\n".join(lines) + "\n"


BOMBS = {
    # name: (YAML body placed after the plan/answers keys, expected problem)
    "list-laughs": (_laughs(), "values with aliases"),
    "mapping-laughs": (_laughs(mapping=True), "values with aliases"),
    "merge-keys": (_merges(), "alias"),
    "many-aliases": ("s: &s x\nl: [" + ", ".join(["*s"] * (MAX_YAML_ALIASES + 1)) + "]\n", "aliases"),
    "self-alias": ("a: &a [x, *a]\n", "inside its own anchor"),
    "deep": ("d: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
}

# The child's own peak: VmHWM is per process image, while ru_maxrss survives exec and would report the
# forking test process's peak. Where /proc is missing, ru_maxrss is an upper bound.
_PEAK_KB = """
def peak_kb():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

_BOMB_SCRIPT = _PEAK_KB + """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # an expanding bomb fails here instead of swapping
from tunewise.advisor.answers import AnswersError, duplicate_keys, load_answers, yaml_lines
from tunewise.advisor.plans import PlanError, load_plan
out = []
for plan, answers in json.loads(sys.argv[1]):
    for loader, path, error in ((load_plan, plan, PlanError), (load_answers, answers, AnswersError)):
        try:
            loader(path)
            out.append([path, "loaded"])
        except error as exc:
            out.append([path, str(exc)])
    text = open(answers, encoding="utf-8").read()
    out.append([answers, repr((yaml_lines(text) != {}, duplicate_keys(text)))])
print(json.dumps({"results": out, "peak_kb": peak_kb()}))
"""


def test_yaml_bombs_are_refused_before_expanding(tmp_path: Path) -> None:
    """Each bomb in a plan and in an answers file is refused by file:line; nothing expands (time and memory)."""
    write(tmp_path / "chat.jsonl", jsonl(CHAT))
    files = []
    for name, (body, _) in BOMBS.items():
        plan = write(tmp_path / f"{name}-plan.yaml", "method: lora\ndata: chat.jsonl\n" + body)
        answers = write(tmp_path / f"{name}-answers.yaml", "goals: [task]\n" + body)
        files.append((str(plan), str(answers)))
    # A fresh interpreter: an expanding bomb would show in its peak memory, and a hang ends at the guard.
    done = subprocess.run([sys.executable, "-c", _BOMB_SCRIPT, json.dumps(files)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = report["results"]
    assert len(results) == 3 * len(BOMBS)
    for i, name in enumerate(BOMBS):
        (plan, plan_message), (answers, answers_message), (_, helpers) = results[3 * i: 3 * i + 3]
        for path, message in ((plan, plan_message), (answers, answers_message)):
            assert f"{path}:" in message and BOMBS[name][1] in message, (name, message)
        assert helpers == "(False, [])", (name, helpers)  # the line-number helpers give up, cheaply
    assert report["peak_kb"] < 400 * 1024, report["peak_kb"]  # 9**9 expanded values would take gigabytes


def test_yaml_within_the_limits_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Aliases and many values below the limits are ordinary YAML: same value as PyYAML's own loader."""
    import yaml
    from tunewise.advisor.plans import load_plan

    text = ("base: &b {x: 1, y: [1, 2, 3]}\n" + "".join(f"c{i}: *b\n" for i in range(MAX_YAML_ALIASES))
            + "big: [" + ", ".join(["0"] * (MAX_YAML_VALUES // 2)) + "]\n"
            + "deep: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n")
    value, root = load_yaml(text, "ok.yaml")
    assert value == yaml.safe_load(text) and root is not None
    write(tmp_path / "chat.jsonl", jsonl(CHAT))
    plan = write(tmp_path / "p.yaml", "method: lora\ndata: chat.jsonl\ntraining: {epochs: &n 1, max_steps: *n}\n")
    monkeypatch.chdir(tmp_path)
    assert load_plan(plan).training["max_steps"] == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("a: 1\nb: " + "9" * 5000 + "\n", r"y\.yaml:2: unreadable value: a number longer than"),
    ("a: 1\nwhen: 2024-13-01\n", r"y\.yaml:2: unreadable value: month must be"),
    ('a: 1\nb: "ok \\ud800"\n', r"y\.yaml:2: text that cannot be encoded"),
], ids=["5000-digits", "13th-month", "lone-surrogate"])
def test_yaml_values_python_cannot_hold_are_named(text: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        load_yaml(text, "y.yaml")


# -- sizes, FIFOs, devices -------------------------------------------------------------------------

_UNREAD_SCRIPT = """
import json, sys
from pathlib import Path
from tunewise.advisor.answers import AnswersError, load_answers
from tunewise.advisor.labeling import LabelingError, load_prompts as label_prompts
from tunewise.methods.rag.ingest import IngestError, SourceFile, read_documents
from tunewise.plugins.bounded_load import InputError, read_json
from tunewise.plugins.data import DataError, load_dataset
calls = {
    "answers": (load_answers, AnswersError), "json": (read_json, InputError), "data": (load_dataset, DataError),
    "label": (label_prompts, LabelingError), "rag": (lambda p: read_documents(SourceFile("a.txt", Path(p))), IngestError),
}
for kind, path in json.loads(sys.argv[1]):
    call, error = calls[kind]
    try:
        call(path)
        print(json.dumps([path, "loaded"]))
    except error as exc:
        print(json.dumps([path, str(exc)]))
"""


def test_files_over_the_limit_fifos_and_devices_are_refused_unread(tmp_path: Path) -> None:
    """A 1 GB sparse answers file, /dev/zero and FIFOs are refused at once (a guard ends the test if one hangs)."""
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(1 << 30)  # sparse: costs nothing on disk, a gigabyte if read whole
    fifos = []
    for name in ("f.yaml", "f.json", "f.jsonl", "p.jsonl", "a.txt"):
        os.mkfifo(tmp_path / name)
        fifos.append(str(tmp_path / name))
    cases = [("answers", str(big)), ("answers", "/dev/zero"), ("answers", fifos[0]), ("json", fifos[1]),
             ("data", fifos[2]), ("label", fifos[3]), ("rag", fifos[4]), ("json", "/dev/zero")]
    done = subprocess.run([sys.executable, "-c", _UNREAD_SCRIPT, json.dumps(cases)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [path for path, _ in results] == [path for _, path in cases]
    messages = dict(results)
    assert f"{big}: an answers file larger than 1 MiB: refused unread" in messages[str(big)]
    assert "/dev/zero: a device, not a regular file" in messages["/dev/zero"]
    for fifo in fifos:  # refused (each loader in its words), not waited on
        assert fifo in messages[fifo] and messages[fifo] != "loaded", messages[fifo]


def test_plans_over_the_limit_are_refused(tmp_path: Path) -> None:
    from tunewise.advisor.plans import PlanError, load_plan

    plan = write(tmp_path / "p.yaml", "method: lora\ndata: chat.jsonl\n" + "# padding\n" * (MAX_DOCUMENT_BYTES // 10))
    with pytest.raises(PlanError, match=r"p\.yaml: a plan file larger than 1 MiB"):
        load_plan(plan)


def test_manifests_nested_too_deeply_or_holding_surrogates_are_named(tmp_path: Path) -> None:
    deep = write(tmp_path / "deep.json", "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(InputError, match=r"deep\.json: JSON nested too deeply"):
        read_json(deep)
    bad = write(tmp_path / "config.json", '{"model_type": "llama",\n "name": "x' + LONE + '"}')
    with pytest.raises(InputError, match=r"config\.json: name: text that cannot be encoded"):
        read_json(bad)
    with pytest.raises(InputError, match=r"x\.jsonl:7: unreadable value: a number longer than"):
        load_json("9" * 5000, "x.jsonl", 7)


# -- long lines and lone surrogates, loader by loader ----------------------------------------------


def _data(path: Path) -> None:
    from tunewise.plugins.data import load_dataset

    load_dataset(path)


def _pairs(path: Path) -> None:
    from tunewise.methods.rlhf.preferences import load_pairs

    load_pairs([str(path)])


def _rlhf_prompts(path: Path) -> None:
    from tunewise.methods.rlhf.preferences import load_prompts

    load_prompts(path)


def _questions(path: Path) -> None:
    from tunewise.methods.rag.evaluate import load_questions

    load_questions(path)


def _corpus(path: Path) -> None:
    from tunewise.methods.rag.ingest import SourceFile, read_documents

    read_documents(SourceFile(path.name, path))


def _examples(path: Path) -> None:
    from tunewise.methods.in_context.examples import load_examples

    load_examples(path)


def _label_prompts(path: Path) -> None:
    from tunewise.advisor.labeling import load_prompts

    load_prompts(path)


def _answers(path: Path) -> None:
    from tunewise.advisor.answers import load_answers

    load_answers(path)


def _plan(path: Path) -> None:
    from tunewise.advisor.plans import load_plan

    load_plan(path)


LONG_LINES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # loader, file name, content whose line 2 is over the limit
    "data-jsonl": (_data, "d.jsonl", jsonl(CHAT) + json.dumps({"text": LONG}) + "\n"),
    "data-csv": (_data, "d.csv", 'prompt,completion\n"' + LONG + '",b\n'),
    "data-txt": (_data, "d.txt", "A title\n" + LONG + "\nmore\n"),
    "rlhf-pairs": (_pairs, "p.jsonl", jsonl(PAIR) + json.dumps({**PAIR, "prompt": LONG}) + "\n"),
    "rlhf-prompts-txt": (_rlhf_prompts, "p.txt", "first prompt\n" + LONG + "\n"),
    "rag-questions": (_questions, "q.jsonl", jsonl({"question": "a?"}) + json.dumps({"question": LONG}) + "\n"),
    "rag-corpus-md": (_corpus, "a.md", "# Title\n" + LONG),
    "rag-corpus-jsonl": (_corpus, "docs.jsonl", jsonl({"text": "fine"}) + json.dumps({"text": LONG}) + "\n"),
    "in-context": (_examples, "e.jsonl", jsonl(CHAT) + json.dumps({"instruction": LONG, "output": "o"}) + "\n"),
    "label-jsonl": (_label_prompts, "l.jsonl", jsonl({"prompt": "a"}) + json.dumps({"prompt": LONG}) + "\n"),
    "label-txt": (_label_prompts, "l.txt", "a\n" + LONG),
}


@pytest.mark.parametrize("case", sorted(LONG_LINES))
def test_over_long_lines_are_named_by_file_and_line(tmp_path: Path, case: str) -> None:
    loader, name, content = LONG_LINES[case]
    path = write(tmp_path / name, content)
    with pytest.raises(TunewiseError) as caught:
        loader(path)
    assert f"{path}:2: line longer than {MAX_LINE_CHARS:,} characters" in str(caught.value), str(caught.value)


def test_csv_fields_past_the_csv_module_default_are_read_and_records_are_bounded(tmp_path: Path) -> None:
    from tunewise.plugins.data import DataError, load_dataset

    default = csv.field_size_limit()
    wide = "w" * (default + 10)  # past csv's own 131,072-character field limit, far below a row's limit
    loaded = load_dataset(write(tmp_path / "ok.csv", f'prompt,completion\nhi,"{wide}"\n'))
    assert loaded.rows[0].data["completion"] == wide
    third = "y" * (MAX_LINE_CHARS // 3 + 1)
    spread = f'prompt,completion\nhi,there\nhi,"{third}\n{third}\n{third}\n{third}"\n'  # one record, five lines
    with pytest.raises(DataError, match=rf"many\.csv:3: record longer than {MAX_LINE_CHARS:,} characters"):
        load_dataset(write(tmp_path / "many.csv", spread))
    assert csv.field_size_limit() == default  # the process-wide setting is put back


_LONG_LINE_MEMORY = _PEAK_KB + """
import sys
from tunewise.plugins.data import scan
before = peak_kb()
problems = [str(p) for p in scan(sys.argv[1]).problems]
print(problems[0])
print(peak_kb() - before)
"""


def test_an_over_long_line_is_never_held_whole(tmp_path: Path) -> None:
    """A 256 MB one-line file: named by line while the process grows by far less than the line."""
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as fh:
        fh.write(b'{"text": "')
        fh.truncate(256 << 20)  # the rest is NUL characters: sparse on disk, one 256 MB line when read
    done = subprocess.run([sys.executable, "-c", _LONG_LINE_MEMORY, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    message, growth_kb = done.stdout.strip().splitlines()
    assert message.startswith(f"{path}:1: line longer than")
    assert int(growth_kb) < 96 * 1024, growth_kb  # reading the line whole: 256 MB as bytes, more as text


def test_read_lines_keeps_line_breaks_and_numbers(tmp_path: Path) -> None:
    """Only "\\n" ends a line (a U+2028 inside a JSON string stays in it); the BOM is dropped."""
    path = write(tmp_path / "t.jsonl", "\ufeff" + '{"a": "x\u2028y"}\r\n\n{"b": 1}')
    lines = list(read_lines(path))
    assert [(line.number, line.text) for line in lines] == [(1, '{"a": "x\u2028y"}\r\n'), (2, "\n"), (3, '{"b": 1}')]


SURROGATES: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    # loader, file name, content with a lone surrogate on line (or record) 2, field named in the message
    "data-jsonl": (_data, "d.jsonl", jsonl(CHAT) + '{"messages": [{"role": "user", "content": "hi ' + LONE + '"}, '
                   '{"role": "assistant", "content": "a"}]}\n', "messages[0].content"),
    "data-json": (_data, "d.json", json.dumps([{"text": "a"}, {"text": "b"}])[:-3] + LONE + '"}]', "text"),
    "data-csv-cell": (_data, "d.csv", 'prompt,completion\n"[{""role"": ""user"", ""content"": ""' + LONE
                      + '""}]",ok\n', "column 'prompt': [0].content"),
    "rlhf-pairs": (_pairs, "p.jsonl", jsonl(PAIR) + '{"prompt": "q", "chosen": "' + LONE + '", "rejected": "n"}\n',
                   "chosen"),
    "rag-questions": (_questions, "q.jsonl", jsonl({"question": "a?"}) + '{"question": "b' + LONE + '?"}\n',
                      "question"),
    "rag-corpus-jsonl": (_corpus, "docs.jsonl", jsonl({"text": "fine"}) + '{"text": "' + LONE + '"}\n', "text"),
    "in-context": (_examples, "e.jsonl", jsonl({"prompt": "a", "completion": "b"})
                   + '{"prompt": "c", "completion": "' + LONE + '"}\n', "completion"),
    "label-jsonl": (_label_prompts, "l.jsonl", jsonl({"prompt": "a"}) + '{"prompt": "' + LONE + '"}\n', "prompt"),
    "answers": (_answers, "a.yaml", 'goals: [task]\nuse_case: "' + LONE + '"\n', ""),
    "plan": (_plan, "p.yaml", 'method: lora\nmodel: "' + LONE + '"\ndata: chat.jsonl\n', ""),
}


@pytest.mark.parametrize("case", sorted(SURROGATES))
def test_lone_surrogates_are_named_by_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     case: str) -> None:
    loader, name, content, field = SURROGATES[case]
    write(tmp_path / "chat.jsonl", jsonl(CHAT))
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / name, content)
    with pytest.raises(TunewiseError) as caught:
        loader(path)
    message = str(caught.value)
    assert f"{path}:2: {field + ': ' if field else ''}text that cannot be encoded" in message, message


def test_columnar_text_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    """Arrow does not check string bytes when a column is reinterpreted: such a parquet file is named, not a crash."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tunewise.plugins.data import DataError, load_dataset

    raw = pa.array([b"fine", b"\xed\xa0\x80 a CESU-8 surrogate"], type=pa.binary())
    pq.write_table(pa.table({"text": raw.view(pa.string())}), tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"d\.parquet: a text column is not UTF-8"):
        load_dataset(tmp_path / "d.parquet")


# -- through `tunewise run`: the data error wins over a model that does not exist --------------------


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("d.jsonl", jsonl(CHAT) + json.dumps({"text": LONG}) + "\n", "d.jsonl:2: line longer than"),
    ("d.jsonl", jsonl(CHAT) + '{"messages": [{"role": "user", "content": "' + LONE + '"}]}\n',
     "d.jsonl:2: messages[0].content: text that cannot be encoded"),
    ("d.csv", 'prompt,completion\nhi,"' + "z" * (MAX_LINE_CHARS // 2) + "\n" + "z" * (MAX_LINE_CHARS // 2) + '"\n',
     "d.csv:2: record longer than"),
], ids=["long-line", "lone-surrogate", "csv-huge-record"])
def test_tunewise_run_reports_the_data_before_the_model(tmp_path: Path, name: str, content: str,
                                                        expected: str) -> None:
    write(tmp_path / name, content)
    write(tmp_path / "plan.yaml", f"method: lora\nmodel: {NO_MODEL}\ndata: {name}\noutput_dir: out\n")
    done = run_cli("run", "plan.yaml", "--quiet", cwd=tmp_path, timeout=180)
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stderr and NO_MODEL not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_tunewise_run_refuses_an_alias_bomb_plan(tmp_path: Path) -> None:
    write(tmp_path / "chat.jsonl", jsonl(CHAT))
    write(tmp_path / "plan.yaml", f"method: lora\nmodel: {NO_MODEL}\ndata: chat.jsonl\n" + _laughs())
    done = run_cli("run", "plan.yaml", "--quiet", cwd=tmp_path, timeout=180)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tunewise run: error:" in done.stderr and "plan.yaml:" in done.stderr, done.stderr
    assert f"more than {MAX_YAML_VALUES:,} values" in done.stderr and "Traceback" not in done.stderr
