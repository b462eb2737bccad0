"""Reading training and reference data: files and folders to rows of one known shape (no torch).

The audit and the training methods share this reader so they agree on what a data set holds.
Sources: ``.jsonl``, ``.json`` (a list of records, or an object with one list of records),
``.csv``, ``.parquet``, a folder saved by ``datasets.save_to_disk`` (its arrow files are read with
pyarrow), a single ``.txt``/``.md`` file, or a folder of such files (one document per file, data
files inside a folder are read too). Formats tunewise does not know are offered to plugins through
the ``tunewise_load_dataset`` hook.

Every row keeps where it came from: ``file`` and ``line`` (1-based line for jsonl/csv/txt, 1-based
record number for json/parquet/arrow). Shapes, decided for the whole source:

==================  ===========================================================================
``messages``        chat: ``messages`` = list of ``{role, content}``
``instruction``     ``instruction``, optional ``input``, ``output``
``prompt_completion`` ``prompt``, ``completion``
``preference``      ``prompt``, ``chosen``, ``rejected``; or ``prompt`` + ``responses`` (best first)
``text``            raw text rows (``text``) or a single text file
``documents``       reference documents: ``text``/``content`` with ``title``/``source``/``url``,
                    or a folder of text files
==================  ===========================================================================
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.plugins.bounded_load import (
    MAX_DATA_DOCUMENT_BYTES,
    MAX_LINE_CHARS,
    InputError,
    load_json,
    read_bytes,
    read_json,
    read_lines,
    unencodable_problem,
)
from tunewise.plugins.errors import TunewiseError

SHAPES = ("messages", "instruction", "prompt_completion", "preference", "text", "documents")
"""Every shape :func:`detect_shape` can return."""

SHAPE_COLUMNS: dict[str, str] = {
    "messages": "messages (list of {role, content})",
    "instruction": "instruction, input (optional), output",
    "prompt_completion": "prompt, completion",
    "preference": "prompt, chosen, rejected (or prompt + responses, best first)",
    "text": "text",
    "documents": "text or content, with title / source / url",
}
"""The columns each shape needs, for messages."""

ROLES = ("system", "user", "assistant", "tool")
TEXT_SUFFIXES = (".txt", ".md")
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".arrow")
MAX_REPORTED = 20
"""How many problems an error message lists before summarising the rest."""

_DOC_META_KEYS = ("title", "source", "url")


class DataError(TunewiseError):
    """A data source that cannot be used as it is; the message lists ``file:line: problem``."""


@dataclass(frozen=True)
class Row:
    """One record and where it came from."""

    data: dict[str, Any]
    file: str
    line: int
    """1-based line (jsonl, csv, txt) or 1-based record number (json, parquet, arrow); 0 = whole file."""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line > 0 else self.file


@dataclass(frozen=True)
class Problem:
    """Something wrong at one place in a source."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Scan:
    """A source read without raising on bad rows: what :func:`load_dataset` checks and the audit reports."""

    source: str
    shape: str | None
    rows: tuple[Row, ...]
    files: tuple[str, ...]
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class LoadedData:
    """A validated source: every row has ``shape``."""

    shape: str
    rows: tuple[Row, ...]
    files: tuple[str, ...]
    source: str = ""
    shape_counts: Mapping[str, int] = field(default_factory=dict)


# -- reading files ------------------------------------------------------------------------------


def _decode(raw: bytes, file: str, problems: list[Problem]) -> str | None:
    """UTF-8 text of a file (BOM dropped); None plus a problem with the line of the bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problems.append(Problem(file, line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                                            "save the file as UTF-8"))
        return None


def _read_jsonl(path: Path, problems: list[Problem]) -> list[Row]:
    file = str(path)
    rows: list[Row] = []
    blank: list[int] = []  # blank lines so far: a problem only when a record follows them
    for line in read_lines(path):
        if line.problem:
            problems.append(Problem(file, line.number, line.problem))
            continue
        if not line.text.strip():
            blank.append(line.number)
            continue
        problems += [Problem(file, number, "empty line") for number in blank]
        blank.clear()
        try:
            value = load_json(line.text, file, line.number)
        except InputError as exc:
            problems.append(Problem(file, line.number, exc.problem))
            continue
        if not isinstance(value, dict):
            problems.append(Problem(file, line.number, f"expected a JSON object, found {type(value).__name__}"))
            continue
        rows.append(Row(value, file, line.number))
    return rows


def _records_in(value: Any) -> list[Any] | None:
    """The list of records in a JSON document: a top-level list or an object's only list value."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def _read_json(path: Path, problems: list[Problem]) -> list[Row]:
    file = str(path)
    try:
        raw = read_bytes(path, MAX_DATA_DOCUMENT_BYTES, "a .json data file")
    except InputError as exc:
        problems.append(Problem(file, exc.line, exc.problem))
        return []
    text = _decode(raw, file, problems)
    if text is None:
        return []
    if not text.strip():
        return []
    try:
        value = load_json(text, file, check_text=False)  # checked per record below, to name the record
    except InputError as exc:
        hint = " (one object per line? name the file .jsonl)" if "Extra data" in (exc.detail or "") else ""
        problems.append(Problem(file, exc.line, exc.problem + hint))
        return []
    records = _records_in(value)
    if records is None:
        problems.append(Problem(file, 0, "expected a list of records or an object holding one list of records"))
        return []
    rows = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            problems.append(Problem(file, number, f"record {number} is a {type(record).__name__}, not an object"))
            continue
        rows.append(Row(record, file, number))
    return _encodable(rows, problems)


_JSON_COLUMNS = ("messages", "responses", "chosen", "rejected", "prompt")
"""CSV columns that may hold JSON lists (chat turns), parsed when they look like a list."""


class _RecordTooLong(Exception):
    """Raised through ``csv.reader`` when one record grows past :data:`MAX_LINE_CHARS`."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


class _CsvLines:
    """The lines of a CSV file for ``csv.reader``, bounding each record (which may span lines)."""

    def __init__(self, path: Path) -> None:
        self.lines = read_lines(path, newline="")
        self.record_chars = 0

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        if line.problem:
            raise _RecordTooLong(line.number, line.problem)
        self.record_chars += len(line.text)
        if self.record_chars > MAX_LINE_CHARS:
            raise _RecordTooLong(line.number, f"record longer than {MAX_LINE_CHARS:,} characters (it runs on to "
                                              f"line {line.number} at least): refused before reading it whole")
        return line.text


def _read_csv(path: Path, problems: list[Problem]) -> list[Row]:
    old_limit = csv.field_size_limit(MAX_LINE_CHARS + 1)  # records are bounded by _CsvLines instead
    try:
        return _read_csv_records(path, problems)
    finally:
        csv.field_size_limit(old_limit)


def _read_csv_records(path: Path, problems: list[Problem]) -> list[Row]:
    file = str(path)
    lines = _CsvLines(path)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is not None and not "".join(header).strip():  # a whitespace-only file holds no records
            if all(not "".join(values).strip() for values in reader):
                return []
            problems.append(Problem(file, 1, "empty header: the first line must name the columns"))
            return []
    except _RecordTooLong as exc:
        problems.append(Problem(file, exc.line, exc.problem))
        return []
    except csv.Error as exc:
        problems.append(Problem(file, 1, f"unreadable CSV header: {exc}"))
        return []
    if header is None:
        return []
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dupes = sorted(h for h, n in Counter(header).items() if n > 1)
        problems.append(Problem(file, 1, f"repeated column name(s): {', '.join(dupes)}"))
        return []
    rows: list[Row] = []
    while True:
        start = reader.line_num + 1
        lines.record_chars = 0
        try:
            values = next(reader)
        except StopIteration:
            break
        except _RecordTooLong as exc:
            problems.append(Problem(file, start if exc.problem.startswith("record") else exc.line, exc.problem))
            break  # where the next record starts is unknown now
        except csv.Error as exc:
            problems.append(Problem(file, start, f"unreadable CSV record: {exc}"))
            break
        if not any(v.strip() for v in values):
            problems.append(Problem(file, start, "empty record"))
            continue
        if len(values) != len(header):
            problems.append(Problem(file, start, f"{len(values)} fields, the header has {len(header)}"))
            continue
        record: dict[str, Any] = {}
        for key, value in zip(header, values, strict=True):
            if value == "":
                continue  # an empty cell is a missing value
            if key in _JSON_COLUMNS and value.lstrip().startswith("["):
                try:
                    record[key] = load_json(value, file, start)
                    continue
                except InputError as exc:
                    problem = f"looks like JSON but is not: {exc.detail}" if exc.detail else exc.problem
                    problems.append(Problem(file, start, f"column {key!r}: {problem}"))
            record[key] = value
        rows.append(Row(record, file, start))
    return rows


def _table_rows(table: Any, file: str, problems: list[Problem]) -> list[Row]:
    try:
        records = table.to_pylist()
    except UnicodeDecodeError as exc:  # arrow string columns are not checked for UTF-8 when written
        problems.append(Problem(file, 0, f"a text column is not UTF-8 ({exc.reason})"))
        return []
    rows = []
    for number, record in enumerate(records, start=1):
        # Columnar files store absent values as nulls: drop them so "missing" means one thing.
        rows.append(Row({k: v for k, v in record.items() if v is not None}, file, number))
    return _encodable(rows, problems)


def _encodable(rows: list[Row], problems: list[Problem]) -> list[Row]:
    """``rows`` without those holding a lone surrogate (reported): tokenizers cannot encode them."""
    kept = []
    for row in rows:
        problem = unencodable_problem(row.data)
        if problem:
            problems.append(Problem(row.file, row.line, problem))
        else:
            kept.append(row)
    return kept


def _read_parquet(path: Path, problems: list[Problem]) -> list[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        problems.append(Problem(str(path), 0, f"unreadable parquet file: {exc}"))
        return []
    return _table_rows(table, str(path), problems)


def _read_arrow(path: Path, problems: list[Problem]) -> list[Row]:
    """An arrow file as ``datasets.save_to_disk`` writes it (IPC stream), or an IPC file."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            try:
                table = pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                table = pa.ipc.open_file(source).read_all()
    except Exception as exc:
        problems.append(Problem(str(path), 0, f"unreadable arrow file: {exc}"))
        return []
    return _table_rows(table, str(path), problems)


def _read_text_file(path: Path, problems: list[Problem], *, document: bool, root: Path | None) -> list[Row]:
    file = str(path)
    parts: list[str] = []
    bad = False
    for line in read_lines(path):
        if line.problem:
            problems.append(Problem(file, line.number, line.problem))
            bad = True
        parts.append(line.text)
    if bad:
        return []
    text = "".join(parts)
    if not text.strip():
        problems.append(Problem(file, 0, "empty file"))
        return []
    data: dict[str, Any] = {"text": text}
    if document:
        data["source"] = str(path.relative_to(root)) if root else path.name
    return [Row(data, file, 1)]


_READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet,
            ".arrow": _read_arrow}


def _manifest(path: Path, key: str) -> list[Any]:
    """The list under ``key`` in a ``save_to_disk`` manifest; a malformed manifest is a DataError."""
    try:
        value = read_json(path, what="a dataset manifest")
    except InputError as exc:
        raise DataError(f"{path}: not a readable dataset manifest ({exc})") from None
    items = value.get(key) if isinstance(value, dict) else None
    if items is not None and not isinstance(items, list):
        raise DataError(f"{path}: {key} must be a list, got {type(items).__name__}")
    return items or []


def _hf_dataset_files(folder: Path) -> list[Path] | None:
    """Arrow files of a ``save_to_disk`` folder (the ``train`` split of a DatasetDict), else None.

    Split and file names come from the folder's own manifests, so each must stay inside the folder
    (:func:`tunewise.plugins.trust.check_reference`).
    """
    from tunewise.plugins.trust import check_reference

    if (folder / "dataset_dict.json").is_file():
        splits = _manifest(folder / "dataset_dict.json", "splits")
        split = "train" if "train" in splits else (splits[0] if splits else None)
        if split is None:
            return []
        folder = check_reference(str(split), folder, where=f"{folder / 'dataset_dict.json'} (splits)")
    if (folder / "state.json").is_file():
        entries = _manifest(folder / "state.json", "_data_files")
        names = [str(f.get("filename")) if isinstance(f, dict) else str(f) for f in entries]
        where = f"{folder / 'state.json'} (_data_files)"
        return [check_reference(n, folder, where=where) for n in names] if names else sorted(folder.glob("*.arrow"))
    return None


def _plugin_rows(source: str, problems: list[Problem]) -> list[Row] | None:
    """Rows from the first plugin whose ``tunewise_load_dataset`` knows ``source``; None if none does."""
    from tunewise.plugins.manager import get_host

    for plugin, result in get_host().call("tunewise_load_dataset", source=source):
        if result is None:
            continue
        rows = []
        for number, record in enumerate(result, start=1):
            if not isinstance(record, Mapping):
                problems.append(Problem(source, number, f"plugin {plugin!r} returned a "
                                                        f"{type(record).__name__}, not a dict"))
                continue
            rows.append(Row(dict(record), source, number))
        return _encodable(rows, problems)
    return None


def _folder_files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in DATA_SUFFIXES + TEXT_SUFFIXES:
            found.append(path)
    return found


def _read_path(path: Path, problems: list[Problem]) -> tuple[list[Row], list[str]]:
    if path.is_dir():
        arrow_files = _hf_dataset_files(path)
        if arrow_files is not None:
            rows: list[Row] = []
            for file in arrow_files:
                rows += _read_arrow(file, problems)
            return rows, [str(f) for f in arrow_files]
        files = _folder_files(path)
        if not files:
            plugin = _plugin_rows(str(path), problems)
            if plugin is not None:
                return plugin, [str(path)]
            raise DataError(f"{path}: no data files in this folder (looked for "
                            f"{', '.join(DATA_SUFFIXES + TEXT_SUFFIXES)})")
        rows = []
        for file in files:
            if file.suffix.lower() in TEXT_SUFFIXES:
                rows += _read_text_file(file, problems, document=True, root=path)
            else:
                rows += _read_file(file, problems)
        return rows, [str(f) for f in files]
    return _read_file(path, problems), [str(path)]


def _read_file(path: Path, problems: list[Problem]) -> list[Row]:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _read_text_file(path, problems, document=False, root=None)
    reader = _READERS.get(suffix)
    if reader is None:
        plugin = _plugin_rows(str(path), problems)
        if plugin is not None:
            return plugin
        raise DataError(f"{path}: unknown data format {suffix or '(no suffix)'!r}; tunewise reads "
                        f"{', '.join(DATA_SUFFIXES + TEXT_SUFFIXES)}, datasets.save_to_disk folders and "
                        "folders of text files (plugins may add formats through tunewise_load_dataset)")
    if not path.is_file():  # a FIFO would block, a device never end: not data tunewise reads
        problems.append(Problem(str(path), 0, "not a regular file (a FIFO, device or socket?)"))
        return []
    if path.stat().st_size == 0:
        problems.append(Problem(str(path), 0, "empty file"))
        return []
    rows = reader(path, problems)
    if not rows and not any(p.file == str(path) for p in problems):
        problems.append(Problem(str(path), 0, "no records in this file"))
    return rows


def read_rows(path: str | Path) -> list[Row]:
    """Every row of a file or folder; raises :class:`DataError` on unreadable rows (see :func:`scan`)."""
    problems: list[Problem] = []
    rows, _ = _read_path(_existing(path), problems)
    if problems:
        raise DataError(_problem_report(str(path), problems))
    return rows


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    return p


# -- shapes -------------------------------------------------------------------------------------


def row_shape(data: Mapping[str, Any]) -> str | None:
    """The shape one record's columns point to (None when no known column is present).

    Decided by the column that names a shape, so a record missing a companion column still gets a
    shape and is then reported as missing it (``instruction`` without ``output``).
    """
    if "messages" in data:
        return "messages"
    if any(k in data for k in ("chosen", "rejected", "responses")):
        return "preference"
    if "instruction" in data:
        return "instruction"
    if "prompt" in data or "completion" in data:
        return "prompt_completion"
    if "content" in data or ("text" in data and any(k in data for k in _DOC_META_KEYS)):
        return "documents"
    if "text" in data:
        return "text"
    return None


def detect_shape(rows: Sequence[Row]) -> str:
    """The one shape of a whole source; mixed shapes or unknown columns raise :class:`DataError`."""
    shape, problems = _shape_and_problems(rows)
    if problems:
        raise DataError(_problem_report(rows[0].file if rows else "data", problems))
    if shape is None:
        raise DataError("no rows to detect a shape from")
    return shape


def _shape_and_problems(rows: Sequence[Row]) -> tuple[str | None, list[Problem]]:
    problems: list[Problem] = []
    shapes: Counter[str] = Counter()
    per_row: list[str | None] = []
    for row in rows:
        shape = row_shape(row.data)
        per_row.append(shape)
        if shape is None:
            found = ", ".join(sorted(map(str, row.data))) or "none"
            problems.append(Problem(row.file, row.line, f"no known columns (found: {found}); expected one of: "
                                    + "; ".join(SHAPE_COLUMNS.values())))
        else:
            shapes[shape] += 1
    if not shapes:
        return None, problems
    # Documents are text with metadata: a source mixing the two is a document collection.
    if set(shapes) == {"text", "documents"}:
        return "documents", problems
    majority = shapes.most_common(1)[0][0]
    if len(shapes) > 1:
        first = next(r for r, s in zip(rows, per_row, strict=True) if s == majority)
        for row, shape in zip(rows, per_row, strict=True):
            if shape is not None and shape != majority:
                problems.append(Problem(row.file, row.line, f"row has shape {shape!r} but most rows are "
                                        f"{majority!r} (first at {first.where}); one source holds one shape"))
    return majority, problems


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_messages(value: Any, name: str) -> list[str]:
    """Problems of a chat turn list (used for ``messages`` and conversational preference fields)."""
    if not isinstance(value, list) or not value:
        return [f"{name!r} must be a non-empty list of {{role, content}} turns"]
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, Mapping):
            out.append(f"{name}[{i}] is a {type(turn).__name__}, not {{role, content}}")
            continue
        role = turn.get("role")
        if role not in ROLES:
            hint = " (ShareGPT 'from'/'value' turns: rename to role/content)" if "from" in turn else ""
            out.append(f"{name}[{i}].role is {role!r}; expected one of {', '.join(ROLES)}{hint}")
        content = turn.get("content")
        if not isinstance(content, str):
            out.append(f"{name}[{i}].content must be text, found {type(content).__name__}")
        elif not content.strip() and role != "system":
            out.append(f"{name}[{i}].content is empty")
    return out


def _check_response(value: Any, name: str) -> list[str]:
    if isinstance(value, list):
        return _check_messages(value, name)
    if not _nonempty_str(value):
        return [f"{name!r} is missing or empty" if value in (None, "") else f"{name!r} must be text"]
    return []


def row_problems(data: Mapping[str, Any], shape: str) -> list[str]:
    """What is wrong with one record for ``shape`` (empty list when it is usable)."""
    def need_text(*names: str) -> list[str]:
        out = []
        for n in names:
            if n not in data or data[n] is None:
                out.append(f"missing {n!r}")
            elif not isinstance(data[n], str):
                out.append(f"{n!r} must be text, found {type(data[n]).__name__}")
            elif not data[n].strip():
                out.append(f"{n!r} is empty")
        return out

    if shape == "messages":
        out = _check_messages(data.get("messages"), "messages")
        turns = data.get("messages")
        if not out and isinstance(turns, list) and not any(t.get("role") == "assistant" for t in turns):
            out.append("no assistant turn: nothing for the model to learn from")
        return out
    if shape == "instruction":
        out = need_text("instruction", "output")
        if "input" in data and data["input"] is not None and not isinstance(data["input"], str):
            out.append(f"'input' must be text, found {type(data['input']).__name__}")
        return out
    if shape == "prompt_completion":
        return need_text("prompt", "completion")
    if shape == "preference":
        out = []
        prompt = data.get("prompt")
        if prompt is not None:
            out += _check_response(prompt, "prompt") if isinstance(prompt, list) else need_text("prompt")
        if "responses" in data:
            responses = data["responses"]
            if not isinstance(responses, list) or len(responses) < 2:
                out.append("'responses' must list at least two responses, best first")
            else:
                for i, r in enumerate(responses):
                    out += _check_response(r, f"responses[{i}]")
            if prompt is None:
                out.append("missing 'prompt'")
            return out
        out += _check_response(data.get("chosen"), "chosen")
        out += _check_response(data.get("rejected"), "rejected")
        if not out and data.get("chosen") == data.get("rejected"):
            out.append("'chosen' and 'rejected' are identical: nothing to prefer")
        return out
    if shape == "text":
        return need_text("text")
    if shape == "documents":
        key = "content" if "content" in data else "text"
        return need_text(key)
    raise ValueError(f"unknown shape {shape!r}")


# -- whole sources -----------------------------------------------------------------------------


def scan(path: str | Path) -> Scan:
    """Read a source and check every row, collecting problems instead of raising on them.

    Raises :class:`DataError` only when the source cannot be read at all (missing path, unknown format).
    """
    source = _existing(path)
    problems: list[Problem] = []
    rows, files = _read_path(source, problems)
    shape, shape_problems = _shape_and_problems(rows)
    problems += shape_problems
    if shape is not None:
        for row in rows:
            own = row_shape(row.data)
            # Rows of another shape were reported above; plain text rows are valid documents.
            if own == shape or (shape == "documents" and own == "text"):
                problems += [Problem(row.file, row.line, m) for m in row_problems(row.data, own or shape)]
    return Scan(str(source), shape, tuple(rows), tuple(files), tuple(problems))


def _problem_report(source: str, problems: Sequence[Problem], limit: int = MAX_REPORTED) -> str:
    lines = [f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''} in the data:"]
    lines += [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  … and {len(problems) - limit} more")
    return "\n".join(lines)


def load_dataset(path: str | Path, expect: Iterable[str] | None = None) -> LoadedData:
    """Read and validate a source; every problem is reported together in one :class:`DataError`.

    ``expect`` is the set of shapes the caller can use (e.g. ``{"text", "documents"}`` for continual
    pretraining); another shape is an error naming the columns the caller needs.
    """
    result = scan(path)
    if result.problems:
        raise DataError(_problem_report(result.source, result.problems))
    if not result.rows or result.shape is None:
        raise DataError(f"{result.source}: no rows")
    wanted = set(expect) if expect is not None else None
    if wanted is not None and result.shape not in wanted:
        needs = "; or ".join(f"{s} ({SHAPE_COLUMNS[s]})" for s in SHAPES if s in wanted)
        raise DataError(f"{result.source}: the rows have shape {result.shape!r} "
                        f"({SHAPE_COLUMNS[result.shape]}); this needs {needs}")
    counts = Counter(row_shape(r.data) or result.shape for r in result.rows)
    return LoadedData(result.shape, result.rows, result.files, result.source, dict(counts))


# -- row contents -------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(t.get("content", "")) if isinstance(t, Mapping) else str(t) for t in value)
    return "" if value is None else str(value)


def row_text(data: Mapping[str, Any], shape: str) -> str:
    """All text a record contributes, joined with newlines (for token counts and duplicate checks)."""
    if shape == "messages":
        return _as_text(data.get("messages"))
    if shape == "instruction":
        return "\n".join(_as_text(data.get(k)) for k in ("instruction", "input", "output") if data.get(k))
    if shape == "prompt_completion":
        return _as_text(data.get("prompt")) + "\n" + _as_text(data.get("completion"))
    if shape == "preference":
        parts = [_as_text(data.get("prompt"))]
        if "responses" in data:
            parts += [_as_text(r) for r in data.get("responses") or []]
        else:
            parts += [_as_text(data.get("chosen")), _as_text(data.get("rejected"))]
        return "\n".join(parts)
    if shape == "documents":
        return _as_text(data.get("content", data.get("text")))
    return _as_text(data.get("text"))


def preference_pairs(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``{prompt, chosen, rejected}`` pairs of a preference record.

    A ranked ``responses`` list (best first) yields every pair it implies: n responses give n·(n-1)/2.
    """
    if "responses" not in data:
        return [{"prompt": data.get("prompt"), "chosen": data.get("chosen"), "rejected": data.get("rejected")}]
    responses = list(data["responses"])
    return [{"prompt": data.get("prompt"), "chosen": better, "rejected": worse}
            for i, better in enumerate(responses) for worse in responses[i + 1:]]
