"""Questions typed in the app for a RAG plan that has no question file, written as the JSONL a run reads.

One question per line::

    Which exception does a failed assert raise? => AssertionError
    What does break skip? => the else clause => break.txt
    Who wrote the documents? => -

``question => answer`` needs the short answer the documents give; the document holding it is found by
looking for the answer in the plan's documents (it must be in exactly one, else the line must name it as
a third part). ``=> -`` marks a question the documents do not answer (the run checks that it is refused).
Blank lines and lines starting with ``#`` are skipped. Every bad line is reported by number and nothing
is written until all are good; the written file is read back with the run's own loader
(:func:`tunewise.methods.rag.evaluate.load_questions`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tunewise.plugins.errors import TunewiseError

SEPARATOR = "=>"
NOT_ANSWERED = "-"
MAX_SEARCH_BYTES = 64 << 20
"""Documents larger than this in all are not searched for answers; lines then name their document."""
FORMAT_HELP = ("one per line: question => short answer (the document holding it is found), "
               "question => answer => document, or question => - for one the documents do not answer")


class TypedQuestionsError(TunewiseError):
    """Typed questions that cannot be written; the message names each bad line."""


@dataclass(frozen=True)
class TypedQuestion:
    question: str
    answer: str | None
    source: str | None
    line: int

    def to_json(self) -> dict[str, str | None]:
        return {"question": self.question, "source": self.source, "answer": self.answer}


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


class _Documents:
    """The plan's documents by file key, read only when a line needs its answer looked up."""

    def __init__(self, data: Sequence[str | Path]) -> None:
        self.data = list(data)
        self._texts: dict[str, str] | None = None
        self._keys: list[str] | None = None
        self.problem: str | None = None

    def keys(self) -> list[str]:
        if self._keys is None and not self.data:
            self.problem = "the plan names no documents: fill in its data first"
            self._keys = []
        if self._keys is None:
            from tunewise.methods.rag.ingest import IngestError, discover

            try:
                self._keys = [source.key for source in discover(self.data)]
            except IngestError as exc:
                self.problem = f"the plan's data cannot be read ({exc})"
                self._keys = []
        return self._keys

    def texts(self) -> dict[str, str]:
        if self._texts is None and not self.data:
            self.problem = "the plan names no documents: fill in its data first"
            self._texts = {}
        if self._texts is None:
            from tunewise.methods.rag.ingest import IngestError, discover, read_documents

            self._texts = {}
            try:
                sources = discover(self.data)
                size = sum(source.path.stat().st_size for source in sources)
                if size > MAX_SEARCH_BYTES:
                    self.problem = (f"the plan's documents are too large to search for the answer "
                                    f"({size / 2**20:,.0f} MiB)")
                    return self._texts
                for source in sources:
                    self._texts[source.key] = _squash(" ".join(d.text for d in read_documents(source)))
            except (IngestError, OSError) as exc:
                self.problem = f"the plan's data cannot be read ({exc})"
        return self._texts


def parse_typed(text: str, data: Sequence[str | Path]) -> list[TypedQuestion]:
    """The questions in ``text`` (see the module doc), documents checked against the plan's ``data``."""
    from tunewise.methods.rag.evaluate import source_matches

    documents = _Documents(data)
    questions: list[TypedQuestion] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split(SEPARATOR)]
        where = f"line {number}"
        if len(parts) > 3:
            problems.append(f"{where}: more than two '=>'; write question => answer => document")
            continue
        question = parts[0]
        if not question:
            problems.append(f"{where}: the question before '=>' is empty")
            continue
        if len(parts) == 1:
            problems.append(f"{where}: add the short answer the documents give (question => answer), so the run "
                            "can score it; write question => - for one the documents do not answer")
            continue
        answer = parts[1]
        if answer == NOT_ANSWERED:
            if len(parts) == 3:
                problems.append(f"{where}: a question the documents do not answer (=> -) names no document")
                continue
            questions.append(TypedQuestion(question, None, None, number))
            continue
        if not answer:
            problems.append(f"{where}: the answer after '=>' is empty (write - for one the documents do not answer)")
            continue
        if len(parts) == 3:
            document = parts[2]
            keys = documents.keys()
            if not document:
                problems.append(f"{where}: the document after the second '=>' is empty")
                continue
            if documents.problem:
                problems.append(f"{where}: cannot check the document {document!r}: {documents.problem}")
                continue
            if not any(source_matches(key, document) for key in keys):
                shown = ", ".join(keys[:5]) + (", …" if len(keys) > 5 else "")
                problems.append(f"{where}: no document {document!r} in the plan's data ({shown})")
                continue
            questions.append(TypedQuestion(question, answer, document, number))
            continue
        texts = documents.texts()
        holding = [key for key, body in texts.items() if _squash(answer) in body]
        if len(holding) == 1:
            questions.append(TypedQuestion(question, answer, holding[0], number))
        elif holding:
            shown = ", ".join(holding[:3]) + (", …" if len(holding) > 3 else "")
            problems.append(f"{where}: the answer {answer!r} is in {len(holding)} documents ({shown}); name the "
                            "one that answers: question => answer => document")
        else:
            why = documents.problem or "it is in none of the plan's documents"
            problems.append(f"{where}: cannot find the document holding {answer!r}: {why}; check the answer or "
                            "name the document: question => answer => document")
    if problems:
        raise TypedQuestionsError("\n".join(problems[:20]) + (f"\n… and {len(problems) - 20} more"
                                                              if len(problems) > 20 else ""))
    if not questions:
        raise TypedQuestionsError(f"no questions typed; {FORMAT_HELP}")
    return questions


def free_path(path: Path) -> Path:
    """``path``, or ``name-2.jsonl``, ``name-3.jsonl`` … when a file already holds that name."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def write_questions(questions: Sequence[TypedQuestion], path: Path) -> Path:
    """Write ``questions`` as a question file (atomically) and read it back as a run would."""
    from tunewise.methods.rag.evaluate import load_questions

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(q.to_json(), ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    os.replace(tmp, path)
    load_questions(path)  # the run's loader: what is written is what `tunewise run` accepts
    return path


def summary(questions: Sequence[TypedQuestion], path: Path) -> str:
    scored = sum(q.source is not None for q in questions)
    refused = len(questions) - scored
    parts = [f"{scored} with an answer and its document (scored in the bake-off)"]
    if refused:
        parts.append(f"{refused} the documents do not answer (should be refused)")
    return f"wrote {len(questions)} question{'s' if len(questions) != 1 else ''} to {path}: " + ", ".join(parts)
