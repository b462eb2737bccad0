"""Ask an index: a finished RAG run or an index folder answers questions with numbered citations.

:func:`find_index` says what a path is (it reads small files only, loads no model), so a wrong path is
refused at once with a message naming it. :func:`open_asker` loads the index and the generator (heavy:
call it in a worker). A RAG run folder is opened the way ``tunewise chat`` opens it
(:func:`tunewise.advisor.tryout.open_run`: its plan's model and settings, the same trust checks); a bare
index folder is answered the way ``tunewise rag ask`` answers (the embedded model unless one is given, its
defaults). Either way :meth:`Asker.ask` is the RAG method's own
:meth:`~tunewise.methods.rag.answer.Answerer.answer`, with the model's text streamed as it is written:
retrieval, the relevance check, citations checked, an extractive answer when they do not hold.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.advisor.streaming import Stream
from tunewise.plugins.errors import TunewiseError

if TYPE_CHECKING:
    from tunewise.methods.rag.answer import Answer

MANIFEST = "manifest.json"  # tunewise.methods.rag.index.MANIFEST, without importing the index module here
EVENTS_FILE = "events.jsonl"
ASK_MAX_NEW_TOKENS = 96
"""A bare index is answered as ``tunewise rag ask`` answers: its ``--max-new-tokens`` default."""
FIRST_LINE_BYTES = 1 << 20
RECENT_LOGS = 20
"""Decision logs read for recent RAG runs (newest first): enough for recent work, quick to read."""


class AskError(TunewiseError):
    """A path that is neither an index nor a RAG run folder with one; the message names it."""


@dataclass(frozen=True)
class IndexTarget:
    """What a path given to Ask leads to."""

    index_dir: Path
    run_dir: Path | None = None
    """The completed RAG run whose plan names the model and the settings; None for a bare index."""
    note: str | None = None
    """Why the run's own settings are not used (the run did not complete), or None."""


def _start_event(events: Path) -> dict[str, Any] | None:
    """The first event of a run's events file (its ``start``), read without reading the rest."""
    try:
        with events.open("rb") as fh:
            line = fh.readline(FIRST_LINE_BYTES)
        event = json.loads(line)
    except (OSError, ValueError):
        return None
    return event if isinstance(event, dict) else None


def _run_method(folder: Path) -> str | None:
    start = _start_event(folder / EVENTS_FILE)
    if start is None:
        return None
    plan = start.get("plan") if isinstance(start.get("plan"), dict) else {}
    return str(start.get("method") or (plan or {}).get("method") or "") or None


def find_index(path: str | Path) -> IndexTarget:
    """The index ``path`` leads to: an index folder (``manifest.json``), its ``manifest.json``, or a RAG
    run folder (the index it built). Anything else is an :class:`AskError` naming ``path``."""
    given = Path(str(path).strip()).expanduser()
    if not str(path).strip():
        raise AskError("give an index folder or the output folder of a RAG run")
    if given.is_file() and given.name == MANIFEST:
        given = given.parent
    if not given.exists():
        raise AskError(f"{given}: folder not found; give an index folder (it holds {MANIFEST}) or the output "
                       "folder of a RAG run")
    if not given.is_dir():
        raise AskError(f"{given} is a file, not a folder; give an index folder (it holds {MANIFEST}) or the "
                       "output folder of a RAG run")
    if (given / MANIFEST).is_file():
        return IndexTarget(given)
    if not (given / EVENTS_FILE).is_file():
        raise AskError(f"{given} is not an index (no {MANIFEST}) nor a run folder (no {EVENTS_FILE}); give an "
                       f"index folder, e.g. the index/ of a RAG run, or the RAG run's output folder")
    method = _run_method(given)
    if method != "rag":
        raise AskError(f"{given} is a {method or 'unknown'} run, not a RAG run: it has no index to ask. Give a "
                       "RAG run's output folder or an index folder")
    from tunewise.advisor.tryout import TryOutError, read_run

    try:
        read_run(given)
    except TryOutError as exc:
        if (given / "index" / MANIFEST).is_file():  # the index was built before the run stopped
            return IndexTarget(given / "index", note=f"{exc}; its index is asked with the default settings")
        raise AskError(f"{given}: {exc}") from None
    return IndexTarget(given, run_dir=given)


def recent_rag_runs(workdir: Path, decisions_dir: Path | None = None, limit: int = 8) -> list[Path]:
    """RAG run folders to offer, newest first: those under ``workdir/runs`` and those the decision log
    recorded as completed (only folders that still exist)."""
    found: dict[Path, float] = {}

    def add(folder: Path) -> None:
        try:
            resolved = folder.resolve()
            if resolved not in found and _run_method(folder) == "rag":
                found[resolved] = (folder / EVENTS_FILE).stat().st_mtime
        except OSError:
            pass

    runs = workdir / "runs"
    if runs.is_dir():
        for folder in sorted(runs.iterdir())[:500]:
            if (folder / EVENTS_FILE).is_file():
                add(folder)
    for folder in _logged_rag_runs(decisions_dir):
        if (folder / EVENTS_FILE).is_file():
            add(folder)
    return sorted(found, key=lambda f: -found[f])[:limit]


def _logged_rag_runs(decisions_dir: Path | None) -> Iterable[Path]:
    from tunewise.advisor.decision_log import list_decision_logs, read_decisions

    for number, log in enumerate(list_decision_logs(decisions_dir)):
        if number >= RECENT_LOGS:
            return
        for record in read_decisions(log):
            if record.get("kind") == "run" and record.get("method") == "rag" and record.get("status") == "completed":
                run_dir = record.get("run_dir")
                if isinstance(run_dir, str) and run_dir:
                    yield Path(run_dir)


@dataclass(frozen=True)
class Asked:
    """One question answered: the RAG answer, and how the model's generation went."""

    answer: Answer
    model: str
    tokens: int = 0
    seconds: float = 0.0
    cancelled: bool = False


class Asker:
    """An opened index and the model that answers from it, with the settings it answers with."""

    def __init__(self, target: IndexTarget, index: Any, answerer: Any, config: Any, model: str,
                 notes: Iterable[str] = ()) -> None:
        self.target = target
        self.index = index
        self.answerer = answerer
        self.config = config
        self.model = model
        self.notes = list(notes)
        self._lock = threading.Lock()  # one answer at a time: the answerer holds the current generation

    def describe(self) -> str:
        c = self.config
        where = f"the run {self.target.run_dir}" if self.target.run_dir else f"the index {self.target.index_dir}"
        return (f"{where} · {len(self.index)} chunks · answers by {self.model} · {c.mode} retrieval, k={c.k}, "
                f"min relevance {c.min_relevance}, answer mode {c.answer_mode}, up to {c.max_new_tokens} tokens")

    def ask(self, question: str, *, stream: Stream | None = None, cancel: threading.Event | None = None) -> Asked:
        """Answer ``question`` from the index with citations; the model's text goes to ``stream`` as written."""
        from tunewise.advisor.tryout_sides import Turn

        if not question.strip():
            raise AskError("the question is empty; type what to ask")
        with self._lock:
            self.answerer.turn = Turn(int(self.config.max_new_tokens), stream, None, cancel)
            self.answerer.last = self.answerer.last_prompt = None
            self.answerer.max_new_tokens = int(self.config.max_new_tokens)
            answer = self.answerer.answer(self.index, question.strip(), k=self.config.k, mode=self.config.mode,
                                          min_relevance=self.config.min_relevance,
                                          answer_mode=self.config.answer_mode)
            last = self.answerer.last
        return Asked(answer, self.model, last.tokens if last else 0, last.seconds if last else 0.0,
                     bool(last and last.cancelled))


def open_asker(target: IndexTarget, *, model: str | None = None,
               allow_outside_paths: bool | None = None) -> Asker:
    """Load ``target``'s index and its generator (slow: torch, the model, the embedder)."""
    if target.run_dir is not None:
        from tunewise.advisor.tryout import open_run

        tryout = open_run(target.run_dir, compare=False, allow_outside_paths=allow_outside_paths)
        side = tryout.sides["result"]
        name = str(tryout.record.plan.get("model") or "the embedded model")
        return Asker(target, side.index, side.answerer, side.config, name, tryout.notes)
    from tunewise.advisor.tryout_sides import streaming_answerer
    from tunewise.methods._hf.encoding import ensure_chat_template
    from tunewise.methods.rag.config import RagConfig
    from tunewise.methods.rag.index import RagIndex
    from tunewise.plugins.models import load_model, load_tokenizer, resolve_model

    index = RagIndex.open(target.index_dir)
    ref = resolve_model(model)
    tokenizer = load_tokenizer(str(ref.path))
    ensure_chat_template(tokenizer)
    config = RagConfig(max_new_tokens=ASK_MAX_NEW_TOKENS)
    answerer = streaming_answerer(load_model(str(ref.path), dtype="float32"), tokenizer, config.max_new_tokens,
                                  config.max_context_tokens)
    return Asker(target, index, answerer, config, ref.name, [target.note] if target.note else [])


def how_answered(asked: Asked, min_relevance: float) -> str:
    """One line saying where the answer's words come from: the model (citations checked or not), quoted
    sentences (and why the model's reply was not used), or nowhere (the documents do not hold it)."""
    answer = asked.answer
    if not answer.answered and not answer.passages:
        best = f"{answer.relevance:.2f}" if answer.relevance is not None else "none"
        return (f"not in the documents: the best passage's similarity to the question is {best}, under the "
                f"minimum {min_relevance:.2f}; nothing was generated")
    if answer.extractive:
        why = f"; the model's reply was not used: {answer.citation_problem}" if answer.citation_problem else ""
        return f"extractive: sentences quoted from the passages{why}"
    speed = f", {asked.tokens} tokens in {asked.seconds:.1f} s" if asked.tokens else ""
    stopped = " (stopped)" if asked.cancelled else ""
    if not answer.answered:
        return f"generated by {asked.model}{speed}{stopped}: the model says the documents do not contain the answer"
    if answer.citation_problem:
        return f"generated by {asked.model}{speed}{stopped}, citations not verified: {answer.citation_problem}"
    return f"generated by {asked.model}{speed}{stopped}, citations checked against the passages"
