"""Documents for the RAG index: find the files under the sources and read each into titled text.

Supported: ``.txt``/``.rst`` (title = first line), ``.md``/``.markdown`` (title = first ``#`` heading),
``.html``/``.htm`` (text outside scripts and styles, title = ``<title>`` or first ``<h1>``) and ``.jsonl``
(one document per line with a ``text`` or ``content`` field and an optional ``title``). PDF is not read:
no PDF library ships with tunewise's dependencies; convert PDFs to text first (e.g. ``pdftotext``).

Every file gets a *key*: ``<folder name>/<path inside the folder>`` for files found in a folder given as
a source, the file name for a file given directly. Keys name sources in citations and in the manifest,
so an index stays valid when the folder is moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from tunewise.plugins.errors import TunewiseError

TEXT_SUFFIXES = (".txt", ".rst")
MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
JSONL_SUFFIXES = (".jsonl",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + MARKDOWN_SUFFIXES + HTML_SUFFIXES + JSONL_SUFFIXES
MAX_TITLE_CHARS = 120


class IngestError(TunewiseError):
    """A source that cannot be read into documents; the message names the file (and line)."""


@dataclass(frozen=True)
class SourceFile:
    """A file to index: its stable key and where it is now."""

    key: str
    path: Path

    def sha256(self) -> str:
        with self.path.open("rb") as fh:  # in blocks: a large document is never held whole for this
            return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class Document:
    """Text to chunk, with the source it is cited as."""

    source: str
    """The file key, plus ``:LINE`` for a line of a jsonl file."""
    title: str
    text: str


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def discover(sources: Iterable[str | Path]) -> list[SourceFile]:
    """The supported files under the sources (folders searched recursively, hidden entries skipped)."""
    found: dict[str, SourceFile] = {}
    given = [Path(s).expanduser() for s in sources]
    if not given:
        raise IngestError("no sources given: name a folder or file of documents to index")
    for source in given:
        if not source.exists():
            raise IngestError(f"{source}: no such file or folder")
        if source.is_dir():
            root = source.resolve()
            files = [p for p in sorted(root.rglob("*")) if p.is_file() and _visible(p, root)
                     and p.suffix.lower() in SUPPORTED_SUFFIXES]
            if not files:
                raise IngestError(f"{source}: no documents found (looked for {', '.join(SUPPORTED_SUFFIXES)})")
            pairs = [(f"{root.name}/{p.relative_to(root).as_posix()}", p) for p in files]
        else:
            if source.suffix.lower() not in SUPPORTED_SUFFIXES:
                hint = " (convert PDFs to text first, e.g. with pdftotext)" if source.suffix.lower() == ".pdf" else ""
                raise IngestError(f"{source}: cannot read {source.suffix or 'files without a suffix'}{hint}; "
                                  f"supported: {', '.join(SUPPORTED_SUFFIXES)}")
            pairs = [(source.name, source.resolve())]
        for key, path in pairs:
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:  # a name in another encoding: manifests, citations and JSON need UTF-8
                shown = str(path).encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
                raise IngestError(f"{shown}: the file name is not valid UTF-8; rename the file (documents are "
                                  "cited by name)") from None
            if key in found and found[key].path != path:
                raise IngestError(f"two sources give the document name {key!r} ({found[key].path} and {path}); "
                                  "index them into separate indexes or rename one")
            found[key] = SourceFile(key, path)
    return sorted(found.values(), key=lambda f: f.key)


def _decode(source: SourceFile) -> str:
    """The file's text, read a bounded line at a time; the first bad line (not UTF-8, too long) is an error."""
    from tunewise.plugins.bounded_load import InputError, read_lines

    parts = []
    try:
        for line in read_lines(source.path):
            if line.problem:
                raise IngestError(f"{source.path}:{line.number}: {line.problem}")
            parts.append(line.text)
    except InputError as exc:  # not a regular file
        raise IngestError(str(exc)) from None
    return "".join(parts)


def _short(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _markdown_title(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
    return _first_line(text)


class _HtmlText(HTMLParser):
    """Visible text of an HTML page, with line breaks at block elements."""

    SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    BLOCKS = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "pre",
                        "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "dt", "dd", "hr", "header",
                        "footer", "main", "nav", "aside", "figure", "figcaption"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.first_h1 = ""
        self._skipping = 0
        self._in_title = False
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIPPED:
            self._skipping += 1
        elif tag == "h1" and not self.first_h1:
            self._in_h1 = True
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag == "h1":
            self._in_h1 = False
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skipping:
            return
        if self._in_h1:
            self.first_h1 += data
        self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        out: list[str] = []
        for line in lines:
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out).strip()


def _read_html(text: str) -> tuple[str, str]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    body = parser.text()
    title = parser.title.strip() or parser.first_h1.strip() or _first_line(body)
    return title, body


def _read_jsonl(source: SourceFile) -> list[Document]:
    from tunewise.plugins.data import DataError, read_rows

    try:
        rows = read_rows(source.path)
    except DataError as exc:
        raise IngestError(str(exc)) from None
    documents = []
    for row in rows:
        text = row.data.get("text", row.data.get("content"))
        if not isinstance(text, str):
            raise IngestError(f"{row.where}: needs a string field 'text' (or 'content') holding the document")
        if not text.strip():
            continue
        title = row.data.get("title")
        title = title if isinstance(title, str) and title.strip() else _first_line(text)
        documents.append(Document(f"{source.key}:{row.line}", _short(title), text))
    return documents


def read_documents(source: SourceFile) -> list[Document]:
    """The documents in one file; an empty or whitespace-only file gives none."""
    suffix = source.path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return _read_jsonl(source)
    text = _decode(source)
    if suffix in HTML_SUFFIXES:
        title, text = _read_html(text)
    elif suffix in MARKDOWN_SUFFIXES:
        title = _markdown_title(text)
    else:
        title = _first_line(text)
    if not text.strip():
        return []
    return [Document(source.key, _short(title or source.path.stem), text)]


def read_all(sources: Sequence[SourceFile]) -> list[Document]:
    return [doc for source in sources for doc in read_documents(source)]
