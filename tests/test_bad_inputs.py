"""Bad input everywhere: each bad file gets a message naming the file and its line or field, before any model.

Complements test_answers / test_plans / test_data / test_rlhf_data / test_rag_chunking with the
cases they leave out: other encodings (UTF-16, latin-1), non-finite and oversized values, NUL bytes
and over-long paths, duplicate keys, JSON nested too deeply, and — for every method — proof that
a data problem is reported before a model is looked up or loaded: the plans name a model that does
not exist (or one without weights), so the data message can only win if it comes first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO
from tunewise.advisor.answers import AnswersError, load_answers
from tunewise.advisor.plans import PlanError, load_plan
from tunewise.advisor.runner import run_plan
from tunewise.plugins.bounded_load import MAX_LINE_CHARS

CHAT = {"messages": [{"role": "user", "content": "Where is my order?"},
                     {"role": "assistant", "content": "It ships tomorrow."}]}
PAIR = {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away."}
NO_MODEL = "no/such/model"
LONG = "x" * (MAX_LINE_CHARS + 1)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def jsonl(*rows: object) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# -- answers files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "expected"), [
    ("goals: [task\ndata: {labeled_examples: 3}\n", r"a\.yaml:2: not valid YAML"),
    ("goals: [task]\n".encode("utf-16"), r"a\.yaml: not UTF-8 text"),
    ("use_case: café\n".encode("latin-1"), r"a\.yaml: not UTF-8 text"),
    ("- task\n- format\n", r"a\.yaml: must be a mapping of fields"),
    ("goals: [task]\ndata: {labeled_examples: [1, 2]}\n", r"a\.yaml:2: data\.labeled_examples: must be a number"),
    ("goals: [task]\nhardware: {gpu: 3}\nbudget: yes\n", r"a\.yaml:3: budget: must be a mapping"),
    ("goals: [task]\ncolour: red\n", r"a\.yaml:2: colour: unknown field"),
    ("data: {labeled_examples: 1e400}\n", r"a\.yaml:1: data\.labeled_examples: must be a finite number"),
    ("data: {documents: .inf}\n", r"a\.yaml:1: data\.documents: must be a finite number"),
    ("data: {labeled_examples: " + "9" * 400 + "}\n", r"data\.labeled_examples: must be a finite number"),
    ("goals: [task]\ngoals: [format]\n", r"a\.yaml:2: goals: given twice"),
    ("goals: !!python/object/apply:os.system ['touch pwned']\n", r"a\.yaml:1: not valid YAML \(could not determine"),
    ("goals:\n\t- task\n", r"a\.yaml:2: not valid YAML"),
    ("use_case: 2024-01-01\n", r"a\.yaml:1: use_case: must be text"),
    ("goals: " + "[" * 600 + "]" * 600 + "\n", r"a\.yaml:1: YAML nested too deeply"),
    ("data: {path: " + "x" * 5000 + "}\n", r"a\.yaml:1: data\.path: not a usable path \(File name too long\)"),
    ("data: {path: ~no-such-user-3f9/chat.jsonl}\n", r"a\.yaml:1: data\.path: not a usable path"),
], ids=["syntax", "utf16", "latin1", "list", "wrong-type", "wrong-section-type", "unknown", "1e400", "inf",
        "400-digit-int", "duplicate", "python-tag", "tab", "date", "deep", "long-path", "unknown-home"])
def test_bad_answers_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AnswersError, match=expected):
        load_answers(write(tmp_path / "a.yaml", content))
    assert not (tmp_path / "pwned").exists()


# -- plan files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "expected"), [
    ("", r"p\.yaml:1: a plan is a mapping"),
    ("method: lora\ndata: chat.jsonl\n".encode("utf-16"), r"p\.yaml: not UTF-8 text"),
    ("method: lora\ndata: café.jsonl\n".encode("latin-1"), r"p\.yaml: not UTF-8 text"),
    ("method: lora\ndata: chat.jsonl\ntraining: {epochs: 1\n", r"p\.yaml:4: not valid YAML"),
    ("method: lora\ndata: chat.jsonl\ntraining:\n  epochs: many\n", r"p\.yaml:4: training\.epochs: must be a whole"),
    ("method: lora\ndata: chat.jsonl\nconfig: {r: 1.5}\n", r"p\.yaml:3: config\.r: must be a whole number"),
    ("method: lora\ndata: chat.jsonl\ntraining: {learning_rate: .nan}\n", r"p\.yaml:3: training\.learning_rate"),
    ("method: lora\ndata: chat.jsonl\ntraining: {colour: red}\n", r"p\.yaml:3: training\.colour: unknown field"),
    ("method: lora\ndata: \"chat\\0.jsonl\"\n", r"p\.yaml:2: data: not a usable path \(embedded null byte\)"),
    ("method: lora\ndata: " + "x" * 5000 + "\n", r"p\.yaml:2: data: not a usable path \(File name too long\)"),
    ("method: lora\ndata: [chat.jsonl, 5]\n", r"p\.yaml:2: data\[1\]: must be a path"),
    ("method: lora\ndata: ~no-such-user-3f9/chat.jsonl\n", r"p\.yaml:2: data: not a usable path"),
    ("method: [lora]\ndata: chat.jsonl\n", r"p\.yaml:1: method: missing"),
    ("method: lora\ndata: chat.jsonl\ndata: other.jsonl\n", r"p\.yaml:3: data: given twice"),
    ("method: lora\ndata: chat.jsonl\nconfig: " + "{a: " * 600 + "}" * 600 + "\n", r"p\.yaml:3: YAML nested too"),
], ids=["empty", "utf16", "latin1", "syntax", "wrong-type", "float-for-int", "nan", "unknown-nested", "nul-path",
        "long-path", "list-item", "unknown-home", "method-list", "duplicate", "deep"])
def test_bad_plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes, expected: str) -> None:
    write(tmp_path / "chat.jsonl", jsonl(CHAT))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PlanError, match=expected):
        load_plan(write(tmp_path / "p.yaml", content))


# -- data files: the data message wins over a model that does not even exist -------------------------


DATA_CASES = {
    # method, file name, content, expected message (after the file's path)
    "chat-mixed-shapes": ("full_finetune", "d.jsonl", jsonl(CHAT, {"prompt": "a", "completion": "b"}),
                          r"d\.jsonl:2: row has shape 'prompt_completion' but most rows are 'messages'"),
    "chat-utf16": ("lora", "d.jsonl", jsonl(CHAT).encode("utf-16"), r"d\.jsonl:1: not UTF-8 text"),
    "csv-latin1": ("full_finetune", "d.csv", "prompt,completion\ncafé,au lait\n".encode("latin-1"),
                   r"d\.csv:2: not UTF-8 text \(byte 0xe9\)"),
    "csv-missing-column": ("lora", "d.csv", "prompt,answer\nhi,there\n", r"d\.csv:2: missing 'completion'"),
    "csv-ragged": ("lora", "d.csv", "prompt,completion\na,b,c\n", r"d\.csv:2: 3 fields, the header has 2"),
    "empty-file": ("continual_pretraining", "d.jsonl", "", r"d\.jsonl: empty file"),
    "deep-nesting": ("full_finetune", "d.jsonl", "[" * 50_000 + "]" * 50_000 + "\n",
                     r"d\.jsonl:1: JSON nested too deeply"),
    "not-an-object": ("continual_pretraining", "d.jsonl", jsonl({"text": "ok"}, [1, 2]),
                      r"d\.jsonl:2: expected a JSON object, found list"),
    "bad-roles": ("lora", "d.jsonl", jsonl({"messages": [{"role": "bot", "content": 1}]}),
                  r"d\.jsonl:1: messages\[0\]\.role is 'bot'"),
    "pref-missing-rejected": ("rlhf", "p.jsonl", jsonl(PAIR, {"prompt": "x", "chosen": "y"}),
                              r"p\.jsonl:2: 'rejected' is missing or empty"),
    "pref-utf16": ("rlhf", "p.jsonl", jsonl(PAIR).encode("utf-16"), r"p\.jsonl:1: not UTF-8 text"),
    "pref-mixed-shapes": ("rlhf", "p.jsonl", jsonl(PAIR, CHAT), r"p\.jsonl:2: "),
    "pref-empty": ("rlhf", "p.jsonl", "\n\n", r"p\.jsonl"),
    "in-context-mixed": ("in_context", "d.jsonl", jsonl({"instruction": "a", "output": "b"}, {"text": "c"}),
                         r"d\.jsonl:2: row has shape"),
    "rag-jsonl-no-text": ("rag", "corpus/docs.jsonl", jsonl({"text": "fine"}, {"body": "no text field"}),
                          r"docs\.jsonl:2: needs a string field 'text'"),
    "rag-utf16": ("rag", "corpus/a.md", "# Title\nBody text\n".encode("utf-16"), r"a\.md:1: "),
    "rag-binary": ("rag", "corpus/a.txt", bytes(range(256)), r"a\.txt:2: not UTF-8 text \(byte 0x80\)"),
    "rag-no-documents": ("rag", "corpus/a.pdf", b"%PDF-1.4", r"corpus: no documents found"),
    # bounded parsing (tests/test_bounded_parsing.py): over-long lines, lone surrogates, numbers int() refuses
    "long-line": ("full_finetune", "d.jsonl", jsonl(CHAT) + jsonl({"text": LONG}), r"d\.jsonl:2: line longer than"),
    "lone-surrogate": ("lora", "d.jsonl", jsonl(CHAT) + '{"messages": [{"role": "user", "content": "\\ud800"}]}\n',
                       r"d\.jsonl:2: messages\[0\]\.content: text that cannot be encoded"),
    "huge-number": ("full_finetune", "d.jsonl", '{"prompt": "a", "completion": "b", "n": ' + "9" * 5000 + "}\n",
                    r"d\.jsonl:1: unreadable value: a number longer than"),
    "csv-huge-record": ("full_finetune", "d.csv", 'prompt,completion\n"' + LONG + '",b\n',
                        r"d\.csv:2: line longer than"),
    "cpt-txt-long-line": ("continual_pretraining", "d.txt", "A title\n" + LONG + "\n", r"d\.txt:2: line longer than"),
    "pref-surrogate": ("rlhf", "p.jsonl", jsonl(PAIR) + '{"prompt": "q", "chosen": "\\udfff", "rejected": "n"}\n',
                       r"p\.jsonl:2: chosen: text that cannot be encoded"),
    "pref-long-line": ("rlhf", "p.jsonl", jsonl(PAIR, {**PAIR, "prompt": LONG}), r"p\.jsonl:2: line longer than"),
    "in-context-long-line": ("in_context", "d.jsonl", jsonl({"instruction": "a", "output": "b"},
                                                             {"instruction": LONG, "output": "c"}),
                             r"d\.jsonl:2: line longer than"),
    "rag-long-line": ("rag", "corpus/a.txt", "A title\n" + LONG, r"a\.txt:2: line longer than"),
    "rag-jsonl-surrogate": ("rag", "corpus/docs.jsonl", jsonl({"text": "fine"}) + '{"text": "\\ud800"}\n',
                            r"docs\.jsonl:2: text: text that cannot be encoded"),
}


# Data a method reads from its config (not the plan's data:) is checked before the model too.
CONFIG_DATA_CASES = {
    # method, config block, file name, content, expected message (after the file's path)
    "rlhf-sft-data": ("rlhf", "{sft: true, sft_data: s.jsonl}", "s.jsonl",
                      jsonl(CHAT) + '{"prompt": "a", "completion": "\\ud800"}\n',
                      r"s\.jsonl:2: completion: text that cannot be encoded"),
    "rlhf-prompts": ("rlhf", "{prompts: q.txt}", "q.txt", "first\n" + LONG + "\n", r"q\.txt:2: line longer than"),
    "rag-questions": ("rag", "{questions: q.jsonl}", "q.jsonl", '{"question": "\\ud800?"}\n',
                      r"q\.jsonl:1: question: text that cannot be encoded"),
    "in-context-eval-data": ("in_context", "{eval_data: e.jsonl}", "e.jsonl",
                             jsonl({"prompt": "a", "completion": "b"}) + jsonl({"prompt": LONG, "completion": "c"}),
                             r"e\.jsonl:2: line longer than"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_is_reported_before_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    method, name, content, expected = DATA_CASES[case]
    path = write(tmp_path / name, content)
    data = path.parent.name if method == "rag" else name
    plan = write(tmp_path / "plan.yaml", f"method: {method}\nmodel: {NO_MODEL}\ndata: {data}\n"
                                         f"output_dir: {tmp_path / 'out'}\n")
    monkeypatch.chdir(tmp_path)
    result, code = run_plan(load_plan(plan), events_to_stdout=True, show_progress=False)
    assert (result.status, code) == ("failed", 1)
    assert NO_MODEL not in result.message, result.message  # the model was never even looked up
    import re

    assert re.search(re.escape(str(tmp_path)) + r"/.*" + expected, result.message), result.message
    assert not (tmp_path / "out").exists()  # refused before ``start``: nothing written
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    kinds = [e["kind"] for e in events if e["event"] == "error"]
    assert kinds == (["error"] if method == "rag" else ["data"])  # RAG's corpus errors have no own kind yet


@pytest.mark.parametrize("case", sorted(CONFIG_DATA_CASES))
def test_bad_config_data_is_reported_before_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      case: str) -> None:
    method, config, name, content, expected = CONFIG_DATA_CASES[case]
    path = write(tmp_path / name, content)
    data = {"rlhf": ("p.jsonl", jsonl(PAIR, {**PAIR, "prompt": "Say hello"})),
            "rag": ("corpus/a.txt", "A title\nSome text.\n"),
            "in_context": ("d.jsonl", jsonl({"prompt": "x", "completion": "y"}, {"prompt": "z", "completion": "w"}))}
    data_name, data_content = data[method]
    write(tmp_path / data_name, data_content)
    data_path = "corpus" if method == "rag" else data_name
    plan = write(tmp_path / "plan.yaml", f"method: {method}\nmodel: {NO_MODEL}\ndata: {data_path}\n"
                                         f"output_dir: {tmp_path / 'out'}\nconfig: {config}\n")
    monkeypatch.chdir(tmp_path)
    result, code = run_plan(load_plan(plan), show_progress=False)
    assert (result.status, code) == ("failed", 1)
    assert NO_MODEL not in result.message, result.message
    import re

    assert re.search(re.escape(str(path.parent)) + r"/" + expected, result.message), result.message


def test_over_long_rows_are_named_before_the_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """Rows whose answer lies past seq_len are named by line; weights are never needed to find that out.

    The model folder has a tokenizer but no weights: loading them would fail with a weights error,
    so reaching the data notes and the data error proves they come first.
    """
    model = tmp_path / "tokenizer-only"
    shutil.copytree(tiny_model_dir, model, ignore=shutil.ignore_patterns("*.safetensors"))
    long_turn = {"messages": [{"role": "user", "content": "word " * 3000},
                              {"role": "assistant", "content": "Short answer."}]}
    monkeypatch.chdir(tmp_path)
    training = "training: {seq_len: 64, max_steps: 1, eval_fraction: 0}\n"

    write(tmp_path / "all_long.jsonl", jsonl(long_turn, long_turn))
    plan = write(tmp_path / "a.yaml", f"method: full_finetune\nmodel: {model}\ndata: all_long.jsonl\n"
                                      f"output_dir: {tmp_path / 'out-a'}\n{training}")
    result, _ = run_plan(load_plan(plan), show_progress=False)
    assert result.status == "failed" and "all_long.jsonl: no training example has an answer token left" in result.message
    assert "safetensors" not in result.message

    write(tmp_path / "some_long.jsonl", jsonl(CHAT, long_turn, CHAT, CHAT))
    plan = write(tmp_path / "b.yaml", f"method: full_finetune\nmodel: {model}\ndata: some_long.jsonl\n"
                                      f"output_dir: {tmp_path / 'out-b'}\n{training}")
    capsys.readouterr()
    result, _ = run_plan(load_plan(plan), events_to_stdout=True, show_progress=False)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    notes = " ".join(e["message"] for e in events if e["event"] == "log")
    assert "some_long.jsonl:2" in notes  # the over-long row, by line, before any weights were touched
    assert result.status == "failed" and "no .safetensors weights" in result.message


def test_cli_reports_bad_data_without_importing_a_model_library(tmp_path: Path) -> None:
    """In a fresh `tunewise run`, a data problem ends the run before transformers is even imported."""
    write(tmp_path / "d.jsonl", jsonl(CHAT, {"prompt": "a", "completion": "b"}))
    write(tmp_path / "plan.yaml", f"method: lora\nmodel: {NO_MODEL}\ndata: d.jsonl\noutput_dir: {tmp_path / 'o'}\n")
    script = ("import sys\nfrom tunewise.advisor.cli import main\n"
              "code = main(['run', 'plan.yaml', '--quiet'])\n"
              "print('exit', code, 'transformers' in sys.modules, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO / "tests")})
    assert done.stdout.strip().splitlines()[-1] == "exit 1 False False", done.stdout + done.stderr
    assert "d.jsonl:2: row has shape" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("p.jsonl", "[" * 50_000 + "]" * 50_000 + "\n", r"p\.jsonl:1: JSON nested too deeply"),
    ("p.jsonl", jsonl({"prompt": "a"}).encode("utf-16"), r"p\.jsonl:1: not UTF-8 text \(byte 0xff\)"),
    ("p.jsonl", jsonl({"prompt": "a"}) + "{oops\n", r"p\.jsonl:2: not valid JSON"),
    ("p.json", '{"prompt": "a"}', r"p\.json: expected a JSON list of prompts"),
], ids=["deep", "utf16", "bad-line", "not-a-list"])
def test_bad_label_prompts_file(tmp_path: Path, name: str, content: str | bytes, expected: str) -> None:
    from tunewise.advisor.labeling import LabelingError, load_prompts

    with pytest.raises(LabelingError, match=expected):
        load_prompts(write(tmp_path / name, content))


def test_malformed_dataset_manifest_is_named(tmp_path: Path) -> None:
    from tunewise.plugins.data import DataError, load_dataset

    folder = tmp_path / "saved"
    folder.mkdir()
    write(folder / "data-00000-of-00001.arrow", b"")
    for content, expected in (("{not json", r"state\.json: not a readable dataset manifest"),
                              ('{"_data_files": "x.arrow"}', r"state\.json: _data_files must be a list")):
        write(folder / "state.json", content)
        with pytest.raises(DataError, match=expected):
            load_dataset(folder)


@pytest.mark.parametrize(("content", "expected"), [
    ('{"question": "a"}\n'.encode("utf-16"), r"q\.jsonl:1: not UTF-8 text \(byte 0xff\)"),
    ("[" * 50_000 + "]" * 50_000 + "\n", r"q\.jsonl:1: JSON nested too deeply"),
    ('{"question": "ok"}\n{"question": 5}\n', r"q\.jsonl:2: needs a non-empty string field 'question'"),
], ids=["utf16", "deep", "wrong-type"])
def test_bad_rag_question_file(tmp_path: Path, content: str | bytes, expected: str) -> None:
    from tunewise.methods.rag.evaluate import QuestionSetError, load_questions

    with pytest.raises(QuestionSetError, match=expected):
        load_questions(write(tmp_path / "q.jsonl", content))
