"""tunewise.plugins.data: every format, every shape, and every kind of broken input with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunewise.plugins.data import (
    DataError,
    Row,
    detect_shape,
    load_dataset,
    preference_pairs,
    read_rows,
    row_text,
    scan,
)


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    """The message of the DataError that loading ``path`` raises."""
    with pytest.raises(DataError) as err:
        load_dataset(path)
    return str(err.value)


CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


@pytest.mark.parametrize(
    ("record", "shape"),
    [
        (CHAT, "messages"),
        ({"instruction": "add", "input": "1 2", "output": "3"}, "instruction"),
        ({"instruction": "say hi", "output": "hi"}, "instruction"),
        ({"prompt": "2+2=", "completion": "4"}, "prompt_completion"),
        ({"prompt": "q", "chosen": "good", "rejected": "bad"}, "preference"),
        ({"prompt": "q", "responses": ["best", "ok", "worst"]}, "preference"),
        ({"text": "raw domain text"}, "text"),
        ({"title": "Refunds", "text": "Refunds take 5 days."}, "documents"),
        ({"content": "a page", "url": "https://x"}, "documents"),
    ],
)
def test_jsonl_shapes(tmp_path: Path, record: dict, shape: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [record, record])
    loaded = load_dataset(path)
    assert loaded.shape == shape
    assert [r.line for r in loaded.rows] == [1, 2]
    assert loaded.rows[0].file == str(path)
    assert detect_shape(loaded.rows) == shape


def test_json_list_and_wrapped_object(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"text": "x"}, {"text": "y"}]))
    (tmp_path / "b.json").write_text(json.dumps({"version": 1, "data": [{"prompt": "p", "completion": "c"}]}))
    a = load_dataset(tmp_path / "a.json")
    assert a.shape == "text" and [r.line for r in a.rows] == [1, 2]
    assert load_dataset(tmp_path / "b.json").shape == "prompt_completion"


def test_csv_lines_and_json_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('instruction,input,output\nsum,"1\n2",3\nsay hi,,hi\n', encoding="utf-8")
    loaded = load_dataset(path)
    assert loaded.shape == "instruction"
    # The second record starts on line 4 because the first spans two physical lines.
    assert [r.line for r in loaded.rows] == [2, 4]
    assert "input" not in loaded.rows[1].data  # empty cell = missing
    chat = tmp_path / "chat.csv"
    chat.write_text('messages\n"' + json.dumps(CHAT["messages"]).replace('"', '""') + '"\n')
    assert load_dataset(chat).rows[0].data["messages"][1]["content"] == "hello"


def test_parquet_and_hf_dataset_dir(tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"prompt": "q", "chosen": "a", "rejected": "b"}] * 3), tmp_path / "p.parquet")
    loaded = load_dataset(tmp_path / "p.parquet")
    assert loaded.shape == "preference" and [r.line for r in loaded.rows] == [1, 2, 3]

    ds = datasets.Dataset.from_list([{"text": f"doc {i}"} for i in range(5)])
    ds.save_to_disk(str(tmp_path / "hf"))
    hf = load_dataset(tmp_path / "hf")
    assert hf.shape == "text" and len(hf.rows) == 5 and hf.rows[4].data["text"] == "doc 4"

    dd = datasets.DatasetDict({"train": ds, "test": ds.select(range(2))})
    dd.save_to_disk(str(tmp_path / "hfdict"))
    assert len(load_dataset(tmp_path / "hfdict").rows) == 5  # the train split


def test_text_folder_is_documents_and_single_txt_is_text(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Refund policy: 30 days.")
    (folder / "sub" / "b.md").write_text("# Billing\nInvoices are monthly.")
    (folder / ".hidden.txt").write_text("ignored")
    loaded = load_dataset(folder)
    assert loaded.shape == "documents"
    assert sorted(r.data["source"] for r in loaded.rows) == ["a.txt", "sub/b.md"]
    single = load_dataset(folder / "a.txt")
    assert single.shape == "text" and single.rows[0].data["text"].startswith("Refund")


def test_expect_rejects_other_shapes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [CHAT])
    with pytest.raises(DataError, match=r"shape 'messages'.*needs text \(text\)"):
        load_dataset(path, expect={"text", "documents"})
    assert load_dataset(path, expect={"messages"}).shape == "messages"


def test_bad_json_lines_are_all_reported_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n{"text": \n[1, 2]\n\n{"text": "fine"}\n')
    with pytest.raises(DataError) as err:
        load_dataset(path)
    message = str(err.value)
    assert f"{path}:2: invalid JSON" in message
    assert f"{path}:3: expected a JSON object, found list" in message
    assert f"{path}:4: empty line" in message
    assert "3 problems" in message


def test_mixed_shapes_missing_columns_and_empty_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"instruction": "a", "output": "b"},
        {"instruction": "a"},
        {"instruction": "   ", "output": "b"},
        {"prompt": "p", "completion": "c"},
        {"foo": 1},
        {"instruction": "a", "output": "b"},
    ])
    with pytest.raises(DataError) as err:
        load_dataset(path)
    message = str(err.value)
    assert f"{path}:2: missing 'output'" in message
    assert f"{path}:3: 'instruction' is empty" in message
    assert f"{path}:4: row has shape 'prompt_completion' but most rows are 'instruction' (first at {path}:1)" in message
    assert f"{path}:5: no known columns (found: foo)" in message


def test_chat_and_preference_validation(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": [{"from": "human", "value": "x"}]},
        {"messages": []},
    ])
    message = (load_error(path))
    assert f"{path}:1: no assistant turn" in message
    assert f"{path}:2: messages[0].role is None" in message and "ShareGPT" in message
    assert f"{path}:3: 'messages' must be a non-empty list" in message

    pref = write_jsonl(tmp_path / "pref.jsonl", [
        {"prompt": "q", "chosen": "same", "rejected": "same"},
        {"prompt": "q", "responses": ["only one"]},
        {"prompt": "q", "chosen": "a"},
    ])
    message = (load_error(pref))
    assert f"{pref}:1: 'chosen' and 'rejected' are identical" in message
    assert f"{pref}:2: 'responses' must list at least two" in message
    assert f"{pref}:3: 'rejected' is missing or empty" in message


def test_encoding_and_empty_files(tmp_path: Path) -> None:
    bad = tmp_path / "latin.jsonl"
    bad.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    assert f"{bad}:2: not UTF-8 text (byte 0xe9)" in (load_error(bad))
    bad_txt = tmp_path / "latin.txt"
    bad_txt.write_bytes(b"line one\nline two caf\xe9\n")
    assert f"{bad_txt}:2: not UTF-8" in (load_error(bad_txt))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert f"{empty}: empty file" in (load_error(empty))
    blank_txt = tmp_path / "blank.txt"
    blank_txt.write_text("  \n")
    assert "empty file" in (load_error(blank_txt))
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"text": "x"}\n')
    assert load_dataset(bom).shape == "text"


def test_many_problems_are_capped_in_the_message(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": ""}] * 30)
    message = (load_error(path))
    assert "30 problems" in message and "… and 10 more" in message
    assert f"{path}:20:" in message and f"{path}:21:" not in message


def test_unknown_formats_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_rows(tmp_path / "nope.jsonl")
    odd = tmp_path / "data.xyz"
    odd.write_text("?")
    with pytest.raises(DataError, match=r"unknown data format '\.xyz'"):
        read_rows(odd)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="no data files"):
        read_rows(tmp_path / "empty_dir")


def test_scan_collects_instead_of_raising(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a"}, {"text": ""}, {"text": "b"}])
    result = scan(path)
    assert result.shape == "text" and len(result.rows) == 3
    assert [str(p) for p in result.problems] == [f"{path}:2: 'text' is empty"]


def test_row_text_and_preference_pairs() -> None:
    assert row_text(CHAT, "messages") == "hi\nhello"
    assert row_text({"instruction": "i", "output": "o"}, "instruction") == "i\no"
    ranked = {"prompt": "q", "responses": ["a", "b", "c"]}
    assert [(p["chosen"], p["rejected"]) for p in preference_pairs(ranked)] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert preference_pairs({"prompt": "q", "chosen": "x", "rejected": "y"})[0]["chosen"] == "x"


def test_detect_shape_on_rows_directly() -> None:
    rows = [Row({"text": "a"}, "f", 1), Row({"messages": CHAT["messages"]}, "f", 2), Row({"text": "b"}, "f", 3)]
    with pytest.raises(DataError, match="f:2: row has shape 'messages'"):
        detect_shape(rows)


PLUGIN = '''
import json
from tunewise.plugins import hookimpl

@hookimpl
def tunewise_load_dataset(source):
    if source.endswith(".tsv"):
        with open(source) as fh:
            return [{"prompt": a, "completion": b} for a, b in (l.rstrip("\\n").split("\\t") for l in fh)]
    return None
'''


def test_plugin_reader_for_unknown_format(tmp_path: Path) -> None:
    from tunewise.plugins import manager

    data = tmp_path / "pairs.tsv"
    data.write_text("2+2\t4\n3+3\t6\n")
    module_path = tmp_path / "tsv_plugin.py"
    module_path.write_text(PLUGIN)
    import importlib.util

    spec = importlib.util.spec_from_file_location("tsv_plugin", module_path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manager._HOST = manager.PluginHost(load_entry_points=False, extra_plugins=[("tsv", module)])
    try:
        loaded = load_dataset(data)
    finally:
        manager.reset_host()
    assert loaded.shape == "prompt_completion"
    assert [r.data["completion"] for r in loaded.rows] == ["4", "6"]
