"""Reading YAML, JSON and lines from files someone else wrote, with every cost bounded up front.

Plans, answers files, data sets, model folders and index manifests come from the user or from
whoever shared them. PyYAML and :mod:`json` read whatever they are given, so every read of such a
file goes through this module, which refuses, with an :class:`InputError` naming ``file:line``:

* a file over its size limit: at most limit + 1 bytes are read; and anything but a regular file
  (a FIFO would block, ``/dev/zero`` never ends) is refused before a byte is read;
* a line over :data:`MAX_LINE_CHARS`: lines are read with a bounded ``readline`` and the rest of an
  over-long one is skipped in chunks, never held whole;
* YAML whose aliases would expand to more than :data:`MAX_YAML_VALUES` values ("billion laughs"),
  or that uses more than :data:`MAX_YAML_ALIASES` aliases: counted while composing, where an alias
  is still one shared node, so nothing is expanded before the refusal;
* nesting deeper than :data:`MAX_DEPTH`;
* text no encoder accepts: a lone surrogate (from a ``"\\ud800"`` escape) makes tokenizers and
  file-system calls raise, so it is named where it is read;
* integers longer than Python converts (``ValueError`` otherwise).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError

MiB = 1 << 20

MAX_DOCUMENT_BYTES = 1 * MiB
"""Plans and answers files. A person writes them: a few hundred bytes, a few KB with comments."""

MAX_MANIFEST_BYTES = 64 * MiB
"""JSON records next to data and models: model ``config.json`` files, ``save_to_disk`` manifests,
RAG index manifests, checkpoint and run state. Configs are kilobytes; an index manifest grows by
about 200 bytes a document, so 64 MiB is some 300,000 documents."""

MAX_DATA_DOCUMENT_BYTES = 256 * MiB
"""Data held in one JSON document (a ``.json`` list of records, a ``.json`` prompts file). It is parsed
whole, into several times its size in memory; larger sets belong in ``.jsonl``, read a line at a time."""

MAX_LINE_CHARS = 8 * MiB
"""One line of a data file (a JSONL record, a CSV record, a line of text), in characters. A long novel
is about 3 million characters; a line is held whole and tokenized at once, so a longer one is a
generated or damaged file, not a training example."""

MAX_YAML_ALIASES = 100
"""Alias uses (``*name``) in one YAML document. Plans and answers use a handful, if any."""

MAX_YAML_VALUES = 20_000
"""Values in one YAML document with every alias expanded. A plan or answers file holds tens; the
loaders walk the whole tree (for line numbers, duplicate keys, validation), so this bounds that work."""

MAX_DEPTH = 100
"""Nesting of lists and mappings, in YAML and JSON. Real files nest a few levels (a chat row: 4)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""A JSON ``\\uD800``-``\\uDFFF`` escape: the only way JSON text decoded from UTF-8 yields a surrogate."""
_BAD_BYTE = re.compile("[\udc80-\udcff]")
"""What ``errors="surrogateescape"`` makes of a byte that is not UTF-8."""

_UNENCODABLE = "text that cannot be encoded (a lone surrogate such as a \\ud800 escape); remove or fix it"


class InputError(TunewiseError):
    """An input refused while reading it; ``str()`` is ``file:line: problem``."""

    def __init__(self, source: str, line: int, problem: str, detail: str | None = None) -> None:
        self.source = source
        self.line = line
        """1-based line, 0 when the problem is the whole file."""
        self.problem = problem
        self.detail = detail
        """For syntax errors: the parser's own words, for callers that phrase the message themselves."""
        super().__init__(f"{source}:{line}: {problem}" if line > 0 else f"{source}: {problem}")


def _size(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes"


# -- whole files -----------------------------------------------------------------------------------


@contextlib.contextmanager
def open_regular(path: str | Path) -> Iterator[io.BufferedReader]:
    """``path`` opened for binary reading; a FIFO, device or socket is an :class:`InputError`, unopened.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket")
            raise InputError(str(path), 0, f"{kind}, not a regular file: refused unread")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def read_bytes(path: str | Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of regular file ``path``, reading at most ``max_bytes + 1``; a larger file is an :class:`InputError`."""
    with open_regular(path) as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        hint = "; keep large data sets in .jsonl, read a line at a time" if max_bytes >= MAX_DATA_DOCUMENT_BYTES else ""
        raise InputError(str(path), 0, f"{what} larger than {_size(max_bytes)}: refused unread{hint}")
    return raw


def read_text(path: str | Path, max_bytes: int, what: str = "file", encoding: str = "utf-8") -> str:
    """:func:`read_bytes` decoded; ``UnicodeDecodeError`` is left to the caller to word."""
    return read_bytes(path, max_bytes, what).decode(encoding)


def read_json(path: str | Path, max_bytes: int = MAX_MANIFEST_BYTES, what: str = "JSON file") -> Any:
    """A JSON file read with :func:`read_bytes` and :func:`load_json`; every failure is an :class:`InputError`."""
    raw = read_bytes(path, max_bytes, what)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(str(path), line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    return load_json(text, str(path))


# -- JSON ------------------------------------------------------------------------------------------


def load_json(text: str | bytes, source: str, line: int = 0, max_depth: int = MAX_DEPTH, *,
              check_text: bool = True) -> Any:
    """The value of JSON ``text`` (one line of ``source`` when ``line`` is given, else the whole file).

    Syntax errors, nesting deeper than ``max_depth``, over-long integers and (unless not
    ``check_text``, for callers that check record by record) lone surrogates are :class:`InputError`s;
    a syntax error's line is ``line`` or, for a whole file, the parser's.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} (column {exc.colno})"
        raise InputError(source, line or exc.lineno, f"invalid JSON: {detail}", detail) from None
    except RecursionError:
        raise InputError(source, line, f"JSON nested too deeply to read (more than {max_depth} levels)") from None
    except ValueError as exc:  # int() refuses more digits than sys.get_int_max_str_digits()
        raise InputError(source, line, f"unreadable value: {_value_error(exc)}") from None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    deep = text.count("[") + text.count("{") > max_depth  # cheap: only then can the nesting be too deep
    if deep or (check_text and _SURROGATE_ESCAPE.search(text)):
        problem = _value_problem(value, max_depth, check_text)
        if problem:
            raise InputError(source, line, problem)
    return value


def _value_problem(value: Any, max_depth: int, check_text: bool = True) -> str | None:
    """Why a parsed value is refused (too deep, or a string no encoder accepts), else None."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            if check_text and _SURROGATE.search(item):
                return f"{where or 'value'}: {_UNENCODABLE}"
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= max_depth:
            return f"JSON nested too deeply to read (more than {max_depth} levels)"
        if isinstance(item, dict):
            for key, child in item.items():
                path = f"{where}.{key}" if where else str(key)
                if check_text and _SURROGATE.search(key):
                    return f"{path!r}: a key holds {_UNENCODABLE}"
                stack.append((child, depth + 1, path))
        else:
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def unencodable_problem(value: Any) -> str | None:
    """``"FIELD: text that cannot be encoded …"`` for the first such string in ``value``, else None."""
    return _value_problem(value, sys.maxsize)


# -- YAML ------------------------------------------------------------------------------------------


def _bounded_loader(source: str, max_values: int, max_aliases: int, max_depth: int) -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """A safe loader that counts values (aliases expanded) and depth while composing."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._values = 0
            self._aliases = 0
            self._depth = 0
            self._sizes: dict[int, int] = {}

        def _refuse(self, event: Any, problem: str) -> None:
            raise InputError(source, event.start_mark.line + 1, problem)

        def _count(self, n: int, event: Any) -> None:
            self._values += n
            if self._values > max_values:
                self._refuse(event, f"more than {max_values:,} values with aliases (*name) expanded "
                                    "(an alias bomb?); refused before expanding them")

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > max_aliases:
                    self._refuse(event, f"more than {max_aliases} aliases (*name); refused before expanding them")
                target = self.anchors.get(event.anchor)
                if target is not None:
                    size = self._sizes.get(id(target))
                    if size is None:
                        self._refuse(event, f"alias *{event.anchor} is used inside its own anchor (a value that "
                                            "contains itself)")
                    self._count(size or 0, event)
                return super().compose_node(parent, index)
            if self._depth >= max_depth:
                self._refuse(event, f"YAML nested too deeply (more than {max_depth} levels)")
            self._depth += 1
            before = self._values
            self._count(1, event)
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            self._sizes[id(node)] = self._values - before
            if isinstance(node, yaml.ScalarNode) and _SURROGATE.search(node.value):
                self._refuse(event, _UNENCODABLE)
            return node

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except ValueError as exc:  # a 5000-digit integer, a 13th month: PyYAML lets int()/date() raise
                raise InputError(source, node.start_mark.line + 1, f"unreadable value: {_value_error(exc)}") from None

    return BoundedLoader


def _value_error(exc: ValueError) -> str:
    """``int()``'s and ``date()``'s complaint in the user's terms."""
    if "integer string conversion" in str(exc):
        return f"a number longer than {sys.get_int_max_str_digits()} digits"
    return str(exc)


def _yaml_error(exc: Exception, source: str) -> InputError:
    mark = getattr(exc, "problem_mark", None)
    detail = str(getattr(exc, "problem", None) or exc)
    line = mark.line + 1 if mark is not None else 0
    return InputError(source, line, f"not valid YAML: {detail}", detail)


def compose_yaml(text: str, source: str, *, max_values: int = MAX_YAML_VALUES, max_aliases: int = MAX_YAML_ALIASES,
                 max_depth: int = MAX_DEPTH) -> Any:
    """The composed node tree of YAML ``text`` (None for an empty document), within the limits.

    Walking the tree visits at most ``max_values`` nodes, aliases included.
    """
    import yaml

    try:
        loader = _bounded_loader(source, max_values, max_aliases, max_depth)(text)  # reads the first chunk
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None


def load_yaml(text: str, source: str, *, max_values: int = MAX_YAML_VALUES, max_aliases: int = MAX_YAML_ALIASES,
              max_depth: int = MAX_DEPTH) -> tuple[Any, Any]:
    """(value, node tree) of YAML ``text`` read with SafeLoader within the limits; failures are :class:`InputError`.

    The node tree (for line numbers) is composed separately from the value, because constructing
    merges ``<<`` keys into the nodes it reads.
    """
    import yaml

    root = compose_yaml(text, source, max_values=max_values, max_aliases=max_aliases, max_depth=max_depth)
    try:
        loader = _bounded_loader(source, max_values, max_aliases, max_depth)(text)
        try:
            return loader.get_single_data(), root
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None


# -- lines -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One line of a text file: its 1-based number and text (with its line break), or why it is refused."""

    number: int
    text: str
    problem: str | None = None


def read_lines(path: str | Path, max_chars: int = MAX_LINE_CHARS, newline: str = "\n") -> Iterator[Line]:
    """The lines of a UTF-8 file (BOM dropped), never holding more than ``max_chars`` of one line.

    A line longer than ``max_chars`` or holding bytes that are not UTF-8 comes back with ``problem``
    set and empty ``text``; reading goes on with the next line. ``newline`` is as for :func:`open`
    (``""`` for CSV, which splits on ``\\r`` too).
    """
    ends = ("\n", "\r") if newline == "" else ("\n",)
    with open_regular(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape",
                                                      newline=newline) as fh:
        number = 0
        while True:
            text = fh.readline(max_chars + 2)  # + the line break ("\r\n")
            if not text:
                return
            number += 1
            ended = text.endswith(ends)
            if len(text.rstrip("\r\n")) > max_chars or (not ended and len(text) > max_chars):
                while not ended:  # skip the rest of the line a chunk at a time
                    chunk = fh.readline(MiB)
                    ended = not chunk or chunk.endswith(ends)
                yield Line(number, "", f"line longer than {max_chars:,} characters: refused before reading it "
                                       "whole (split the record, or check that this is the right file)")
                continue
            bad = _BAD_BYTE.search(text)
            if bad:
                yield Line(number, "", f"not UTF-8 text (byte 0x{ord(bad.group()) - 0xDC00:02x}); save the file "
                                       "as UTF-8")
                continue
            yield Line(number, text)
