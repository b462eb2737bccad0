"""The RAG index on disk: chunk store, FAISS vectors and BM25 keywords, described by a manifest.

Layout of an index folder::

    manifest.json         what is indexed (files and their content hashes), with which embedding model
                          (name, dimension, fingerprint), chunk settings, and the sha256 of every data file
    data-<n>/chunks.jsonl one chunk per line: id, source, chunk_id, title, start, end, text
    data-<n>/vectors.faiss inner-product FAISS index of unit vectors, keyed by chunk id
    data-<n>/bm25/        bm25s index over the same chunks, in chunks.jsonl order

An update writes a new ``data-<n+1>`` folder and then replaces the manifest in one rename, so a crash
leaves the previous index intact. Opening checks every data file against the manifest: a corrupted or
edited index, or one built with a different embedding model, is refused with a message and never
rebuilt behind the user's back (``--rebuild`` does that on request).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.methods.rag.chunking import Chunk, Chunker
from tunewise.methods.rag.config import SEARCH_MODES
from tunewise.methods.rag.embed import (
    BUNDLED_MODEL,
    Embedder,
    EmbeddingModelRef,
    ProgressCallback,
    resolve_embedding_model,
)
from tunewise.methods.rag.ingest import IngestError, SourceFile, discover, read_documents
from tunewise.methods.rag.keyword_index import FILES as KEYWORD_FILES
from tunewise.methods.rag.keyword_index import KeywordIndex
from tunewise.plugins.errors import TunewiseError

MANIFEST = "manifest.json"
FORMAT = "tunewise-rag-index/1"
CHUNKS_FILE = "chunks.jsonl"
VECTORS_FILE = "vectors.faiss"
BM25_DIR = "bm25"
DATA_FILES = (CHUNKS_FILE, VECTORS_FILE, *(f"{BM25_DIR}/{name}" for name in KEYWORD_FILES))
"""Every file opening reads; each must have its checksum in the manifest."""
MAX_DIMENSION = 65_536
"""Embedding sizes are hundreds to a few thousand; larger is a damaged manifest."""
RRF_K = 60
"""Reciprocal rank fusion constant (Cormack et al. 2009): damps the weight of the very top ranks."""
DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 40

Log = Callable[[str], None]
Phase = Callable[[str, int, int, str], None]
"""``phase(name, done, total, unit)``: ``reading`` and ``chunking`` files, ``indexing`` (0 then 1 of 1)."""


class RagIndexError(TunewiseError):
    """An index folder that cannot be used as asked."""


class IndexCorruptError(RagIndexError):
    """A data file or the manifest does not match what the manifest records."""


class EmbeddingMismatchError(RagIndexError):
    """The index was built with another embedding model than the one asked for (or the model changed)."""


def _sha256(path: Path) -> str:
    from tunewise.plugins.bounded_load import open_regular

    digest = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Hit:
    """A search result."""

    id: int
    chunk: Chunk
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"source": self.chunk.source, "chunk_id": self.chunk.chunk_id, "score": round(self.score, 6),
                "text": self.chunk.text}


@dataclass
class UpdateReport:
    """What an index run changed."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    total_chunks: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
                f"{len(self.unchanged)} unchanged files; embedded {self.chunks_embedded} chunks; "
                f"{self.total_chunks} chunks in the index ({self.seconds:.1f} s)")


def _rebuild_hint(folder: Path) -> str:
    return (f"rebuild it with `tunewise rag index SOURCE --index {folder} --rebuild` "
            "(re-embeds every document)")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of an index folder; a missing or malformed one is refused."""
    path = folder / MANIFEST
    if not path.is_file():
        raise RagIndexError(f"{folder} is not a tunewise RAG index (no {MANIFEST}); create it with "
                            f"`tunewise rag index SOURCE --index {folder}`")
    from tunewise.plugins.bounded_load import InputError, read_json

    try:
        manifest = read_json(path, what="an index manifest")
    except InputError as exc:
        raise IndexCorruptError(f"{path} is not valid JSON ({exc.problem}); the index is corrupted: "
                                f"{_rebuild_hint(folder)}") from None
    required = ("format", "embedding_model", "chunking", "files", "next_id", "data_dir", "data_files")
    missing = [key for key in required if not isinstance(manifest, dict) or key not in manifest]
    if missing:
        raise IndexCorruptError(f"{path} lacks {', '.join(missing)}; the index is corrupted: {_rebuild_hint(folder)}")
    if manifest["format"] != FORMAT:
        raise RagIndexError(f"{path}: index format {manifest['format']!r} is not {FORMAT!r} (made by another "
                            f"version of tunewise); {_rebuild_hint(folder)}")
    problem = _manifest_problem(manifest)
    if problem:
        raise IndexCorruptError(f"{path}: {problem}; the index is corrupted: {_rebuild_hint(folder)}")
    return dict(manifest)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """Why a manifest's fields do not have the types opening and updating rely on, else None."""
    model, chunking = manifest["embedding_model"], manifest["chunking"]
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not isinstance(model.get("path"), str):
        return "embedding_model must be an object with a name and a path"
    if not _is_int(model.get("dimension")) or not 0 < model["dimension"] <= MAX_DIMENSION:
        return f"embedding_model.dimension must be a whole number from 1 to {MAX_DIMENSION}"
    if not isinstance(chunking, dict) or not all(_is_int(chunking.get(k)) for k in ("chunk_tokens", "overlap_tokens")):
        return "chunking must hold whole numbers chunk_tokens and overlap_tokens"
    if not isinstance(manifest["files"], dict) or not all(
            isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("chunk_ids"), list) and all(_is_int(i) for i in entry["chunk_ids"])
            for entry in manifest["files"].values()):
        return "files must map each document to an object with its sha256 and a list of chunk_ids"
    if not _is_int(manifest["next_id"]) or not isinstance(manifest["data_dir"], str):
        return "next_id must be a whole number and data_dir a folder name"
    data_files = manifest["data_files"]
    if not isinstance(data_files, dict) or not all(isinstance(v, str) for v in data_files.values()):
        return "data_files must map each data file to its sha256"
    unlisted = sorted(set(DATA_FILES) - set(data_files))
    if unlisted:
        return f"data_files does not list {', '.join(unlisted)}"
    return None


def _check_model(folder: Path, manifest: dict[str, Any], requested: str | None) -> EmbeddingModelRef:
    """The embedding model to use with an index: the recorded one, and it must still be the same files."""
    recorded = manifest["embedding_model"]
    recorded_name = str(recorded.get("name"))
    if requested is None:
        requested = None if recorded_name == BUNDLED_MODEL else str(recorded.get("path"))
    ref = resolve_embedding_model(requested)
    if ref.fingerprint != recorded.get("fingerprint"):
        raise EmbeddingMismatchError(
            f"index {folder} was built with embedding model {recorded_name} (fingerprint "
            f"{str(recorded.get('fingerprint'))[:12]}, {recorded.get('dimension')} dimensions, from "
            f"{recorded.get('path')}), but the model now asked for is {ref.name} (fingerprint "
            f"{ref.fingerprint[:12]}, from {ref.path}). Vectors from different models cannot be compared: "
            f"search with the model the index was built with, or {_rebuild_hint(folder)}"
        )
    return ref


def _verify_data(folder: Path, manifest: dict[str, Any]) -> Path:
    """The data folder, once every file in it matches its checksum in the manifest.

    This catches damage and stray edits; it is no defence against a forger, who rewrites the
    checksums too, so every loader also checks its file on its own (index_files.py).
    """
    from tunewise.plugins.bounded_load import InputError
    from tunewise.plugins.trust import check_reference

    where = str(folder / MANIFEST)
    data_dir = check_reference(str(manifest["data_dir"]), folder, where=f"{where} (data_dir)")
    # Every name is checked before any file is looked at: nothing outside the index is even stat'ed.
    paths = {check_reference(str(relative), data_dir, where=f"{where} (data_files)"): expected
             for relative, expected in sorted(manifest["data_files"].items())}
    for path, expected in paths.items():
        if not path.exists() and not path.is_symlink():
            raise IndexCorruptError(f"index file {path} is missing; the index is corrupted: {_rebuild_hint(folder)}")
        try:
            digest = _sha256(path)
        except InputError as exc:
            raise IndexCorruptError(f"index file {exc}; the index is corrupted: {_rebuild_hint(folder)}") from None
        except OSError as exc:
            raise IndexCorruptError(f"index file {path} cannot be read ({exc.strerror or exc}); "
                                    f"{_rebuild_hint(folder)}") from None
        if digest != expected:
            raise IndexCorruptError(f"index file {path} does not match its checksum in {folder / MANIFEST} "
                                    f"(corrupted or edited); {_rebuild_hint(folder)}")
    return data_dir


def _chunk_from_json(record: dict[str, Any]) -> Chunk:
    return Chunk(source=record["source"], chunk_id=int(record["chunk_id"]), title=record.get("title", ""),
                 text=record["text"], start=int(record["start"]), end=int(record["end"]))


def _read_chunks(path: Path, count: int) -> dict[int, Chunk]:
    """The ``count`` chunk records of ``path`` by id (one per vector); a line more is not read."""
    from tunewise.plugins.bounded_load import InputError, load_json, read_lines

    chunks: dict[int, Chunk] = {}
    for line in read_lines(path):
        if line.number > count:
            raise InputError(str(path), line.number, f"more chunk records than the {count} vectors in {VECTORS_FILE}")
        try:
            if line.problem:
                raise InputError(str(path), line.number, line.problem)
            record = load_json(line.text, str(path), line.number)
            if not all(isinstance(record.get(key, ""), str) for key in ("source", "title", "text")):
                raise ValueError("source, title and text must be strings")
            chunk_id = int(record["id"])
            if chunk_id in chunks:
                raise ValueError(f"id {chunk_id} repeated")
            chunks[chunk_id] = _chunk_from_json(record)
        except (InputError, AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            problem = exc.problem if isinstance(exc, InputError) else exc
            raise InputError(str(path), line.number, f"unreadable chunk record ({problem})") from None
    return chunks


def _read_data(folder: Path, data_dir: Path, dimension: int) -> tuple[dict[int, Chunk], Any, KeywordIndex]:
    """Chunks, vectors and keywords of a verified data folder, each file checked as it is read."""
    import faiss
    from tunewise.methods.rag.index_files import read_vectors
    from tunewise.plugins.bounded_load import InputError

    try:
        vectors = read_vectors(data_dir / VECTORS_FILE, dimension)
        chunks = _read_chunks(data_dir / CHUNKS_FILE, vectors.ntotal)
        ids = faiss.vector_to_array(vectors.id_map)
        if len(chunks) != vectors.ntotal or set(ids.tolist()) != set(chunks):
            raise InputError(str(data_dir), 0, f"{VECTORS_FILE} holds {vectors.ntotal} vectors, {CHUNKS_FILE} "
                                               f"{len(chunks)} chunks, and their ids differ")
        keywords = KeywordIndex.load(data_dir / BM25_DIR, len(chunks))
    except InputError as exc:
        raise IndexCorruptError(f"unusable index file {exc}; the index is corrupted: {_rebuild_hint(folder)}") from None
    except OSError as exc:  # reading chunks.jsonl; each loader words its own
        raise IndexCorruptError(f"index file {exc.filename or data_dir} cannot be read ({exc.strerror or exc}); "
                                f"{_rebuild_hint(folder)}") from None
    return chunks, vectors, keywords


class RagIndex:
    """An opened index: search it in ``dense``, ``bm25`` or ``hybrid`` mode."""

    def __init__(self, folder: Path, manifest: dict[str, Any], model: EmbeddingModelRef,
                 chunks: dict[int, Chunk], vectors: Any, keywords: KeywordIndex) -> None:
        self.folder = folder
        self.manifest = manifest
        self.model = model
        self.chunks = chunks
        self.order = list(chunks)
        """Chunk ids in chunks.jsonl order (= BM25 positions)."""
        self.vectors = vectors
        self.keywords = keywords
        self._embedder: Embedder | None = None

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: str | Path, embedding_model: str | None = None) -> RagIndex:
        """Open and verify an index; ``embedding_model`` (if given) must be the one it was built with."""
        folder = Path(folder).expanduser()
        manifest = read_manifest(folder)
        model = _check_model(folder, manifest, embedding_model)
        data_dir = _verify_data(folder, manifest)
        chunks, vectors, keywords = _read_data(folder, data_dir, manifest["embedding_model"]["dimension"])
        return cls(folder, manifest, model, chunks, vectors, keywords)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.model)
        return self._embedder

    def use_embedder(self, embedder: Embedder) -> None:
        """Share an already loaded model (it must be the index's model)."""
        if embedder.ref.fingerprint != self.model.fingerprint:
            raise EmbeddingMismatchError(f"embedder {embedder.ref.name} is not the index's model {self.model.name}")
        self._embedder = embedder

    # -- searching -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.chunks)

    def dense(self, query_vector: Any, k: int) -> list[tuple[int, float]]:
        import numpy as np

        if len(self) == 0:
            return []
        import faiss

        # One query is too little work for FAISS's OpenMP team: on busy cores its threads wait on
        # each other (29 ms vs 5.7 ms median on one thread for 10.7k vectors, this 2-core CPU).
        faiss.omp_set_num_threads(1)
        scores, ids = self.vectors.search(np.asarray(query_vector, dtype="float32").reshape(1, -1),
                                          min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def bm25(self, query: str, k: int) -> list[tuple[int, float]]:
        return [(self.order[position], score) for position, score in self.keywords.search(query, k)]

    def search(self, query: str, k: int = 5, mode: str = "hybrid", query_vector: Any = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first (hybrid scores are fused reciprocal ranks)."""
        if mode not in SEARCH_MODES:
            raise RagIndexError(f"search mode {mode!r} is not one of {', '.join(SEARCH_MODES)}")
        if k < 1:
            raise RagIndexError(f"k must be at least 1 (got {k})")
        if mode == "bm25":
            ranked = self.bm25(query, k)
        else:
            vector = self.embedder.encode_query(query) if query_vector is None else query_vector
            if mode == "dense":
                ranked = self.dense(vector, k)
            else:
                depth = max(4 * k, 30)  # fuse deeper lists than shown: a chunk ranked 8th by both can win
                ranked = reciprocal_rank_fusion([self.dense(vector, depth), self.bm25(query, depth)])[:k]
        return [Hit(i, self.chunks[i], score) for i, score in ranked]

    def similarities(self, query_vector: Any, ids: Sequence[int]) -> list[float]:
        """Cosine similarity of the query to each chunk (vectors are unit length)."""
        import numpy as np

        query = np.asarray(query_vector, dtype="float32").reshape(-1)
        return [float(np.dot(self.vectors.reconstruct(int(i)), query)) for i in ids]


def reciprocal_rank_fusion(rankings: Iterable[Sequence[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked lists: each id scores ``sum(1 / (k + rank))`` over the lists it appears in (rank from 1)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


# -- building and updating ---------------------------------------------------------------------


def _prepare_folder(folder: Path, rebuild: bool) -> dict[str, Any] | None:
    """The existing manifest to update, or None to build from scratch.

    On ``rebuild`` the old index stays in place until the new one is committed (then it is removed),
    so a failed rebuild loses nothing.
    """
    if folder.exists() and not folder.is_dir():
        raise RagIndexError(f"{folder} is a file; the index needs a folder")
    if (folder / MANIFEST).exists():
        return None if rebuild else read_manifest(folder)
    ours = {MANIFEST + ".tmp"}
    if folder.exists() and any(p for p in folder.iterdir() if not p.name.startswith("data-") and p.name not in ours):
        raise RagIndexError(f"{folder} is not empty and not a tunewise RAG index; choose an empty or new folder")
    return None


def _next_data_number(folder: Path) -> int:
    numbers = [int(p.name.split("-", 1)[1]) for p in folder.glob("data-*") if p.name.split("-", 1)[1].isdigit()]
    return max(numbers, default=0) + 1


def _write_data(folder: Path, number: int, chunks: dict[int, Chunk], vectors: Any) -> tuple[str, dict[str, str]]:
    import faiss

    name = f"data-{number}"
    data_dir = folder / name
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    with (data_dir / CHUNKS_FILE).open("w", encoding="utf-8") as fh:
        for chunk_id, chunk in chunks.items():
            record = {"id": chunk_id, "source": chunk.source, "chunk_id": chunk.chunk_id, "title": chunk.title,
                      "start": chunk.start, "end": chunk.end, "text": chunk.text}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    faiss.write_index(vectors, str(data_dir / VECTORS_FILE))
    KeywordIndex.build([c.embedding_text() for c in chunks.values()]).save(data_dir / BM25_DIR)
    hashes = {p.relative_to(data_dir).as_posix(): _sha256(p) for p in sorted(data_dir.rglob("*")) if p.is_file()}
    return name, hashes


def _commit(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically, then drop data folders it no longer names."""
    tmp = folder / (MANIFEST + ".tmp")
    # Stored as it is: paths, hashes and settings that are compared on every open and update (an index
    # is a copy of its documents, so it holds whatever they hold).
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    for stale in folder.glob("data-*"):
        # Only the index's own data-<n> folders: anything else in the folder is the user's.
        if stale.name != manifest["data_dir"] and stale.name[5:].isdigit() and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def build_index(
    sources: Sequence[str | Path],
    folder: str | Path,
    *,
    embedding_model: str | None = None,
    chunk_tokens: int | None = None,
    overlap_tokens: int | None = None,
    batch_size: int = 32,
    rebuild: bool = False,
    embedder: Embedder | None = None,
    progress: ProgressCallback | None = None,
    log: Log | None = None,
    phase: Phase | None = None,
) -> tuple[RagIndex, UpdateReport]:
    """Create or incrementally update the index at ``folder`` from ``sources``.

    Only new and changed files are read and embedded; files no longer under the sources are dropped.
    Chunk settings default to the index's (or 200/40 for a new one); different explicit settings
    re-chunk every file. An index built with another embedding model is refused unless ``rebuild``.
    ``phase`` hears about reading and chunking (about every twentieth file) and writing the index;
    ``progress`` about each embedded batch.
    """
    started = time.perf_counter()
    folder = Path(folder).expanduser()
    say = log or (lambda message: None)
    files = discover(sources)
    existing = _prepare_folder(folder, rebuild)
    if existing is not None:
        index: RagIndex | None = RagIndex.open(folder, embedding_model)
        assert index is not None
        model = index.model
        recorded = existing["chunking"]
        chunk_tokens = int(recorded["chunk_tokens"]) if chunk_tokens is None else chunk_tokens
        overlap_tokens = int(recorded["overlap_tokens"]) if overlap_tokens is None else overlap_tokens
        rechunk = (chunk_tokens, overlap_tokens) != (recorded["chunk_tokens"], recorded["overlap_tokens"])
        if rechunk:
            say(f"chunk settings changed from {recorded['chunk_tokens']}/{recorded['overlap_tokens']} to "
                f"{chunk_tokens}/{overlap_tokens} tokens: re-chunking every file")
    else:
        index = None
        model = embedder.ref if embedder is not None and embedding_model is None else \
            resolve_embedding_model(embedding_model)
        chunk_tokens = DEFAULT_CHUNK_TOKENS if chunk_tokens is None else chunk_tokens
        overlap_tokens = DEFAULT_OVERLAP_TOKENS if overlap_tokens is None else overlap_tokens
        rechunk = True
    chunker = Chunker.for_model(model.path, chunk_tokens, overlap_tokens)

    report = UpdateReport()
    recorded_files: dict[str, Any] = existing["files"] if existing else {}
    hashes = {f.key: f.sha256() for f in files}
    to_embed: list[SourceFile] = []
    for source in files:
        previous = recorded_files.get(source.key)
        if previous is None:
            report.added.append(source.key)
            to_embed.append(source)
        elif previous.get("sha256") != hashes[source.key] or rechunk:
            report.changed.append(source.key)
            to_embed.append(source)
        else:
            report.unchanged.append(source.key)
    report.removed = sorted(set(recorded_files) - set(hashes))
    sources_now = [str(Path(s).expanduser().resolve()) for s in sources]
    if index is not None and existing is not None and not to_embed and not report.removed:
        if existing.get("sources") != sources_now:
            _commit(folder, {**existing, "sources": sources_now})
        report.total_chunks = len(index)
        report.seconds = time.perf_counter() - started
        return index, report

    import faiss
    import numpy as np

    if embedder is not None and embedder.ref.fingerprint != model.fingerprint:
        raise EmbeddingMismatchError(f"the loaded embedding model {embedder.ref.name} is not the index's "
                                     f"model {model.name}")
    active = embedder or (index._embedder if index is not None else None) or Embedder(model)
    if chunk_tokens > active.max_tokens - 2:
        raise RagIndexError(f"chunk_tokens ({chunk_tokens}) exceeds what {model.name} reads "
                            f"({active.max_tokens} tokens with its 2 special tokens); use at most "
                            f"{active.max_tokens - 2}")
    if index is not None and index.vectors.d != active.dimension:
        raise EmbeddingMismatchError(f"index vectors have dimension {index.vectors.d}, model gives {active.dimension}")

    chunks: dict[int, Chunk] = dict(index.chunks) if index is not None else {}
    vectors = index.vectors if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(active.dimension))
    next_id = int(existing["next_id"]) if existing else 0
    dropped: list[int] = []
    for key in report.removed + report.changed:
        dropped.extend(int(i) for i in recorded_files.get(key, {}).get("chunk_ids", []))
    if dropped:
        vectors.remove_ids(np.asarray(dropped, dtype="int64"))
        for chunk_id in dropped:
            chunks.pop(chunk_id, None)

    files_entry = {key: value for key, value in recorded_files.items() if key in hashes}
    new_chunks: list[tuple[int, Chunk]] = []
    step = max(1, len(to_embed) // 20)  # about twenty phase events per stage, however many files

    def tell(name: str, done: int) -> None:
        if phase is not None and (done % step == 0 or done == len(to_embed)):
            phase(name, done, len(to_embed), "files")

    read: list[tuple[SourceFile, list[Any]]] = []
    for number, source in enumerate(to_embed, start=1):
        read.append((source, read_documents(source)))
        tell("reading", number)
    for number, (source, documents) in enumerate(read, start=1):
        pieces = [piece for document in documents for piece in chunker.chunk(document)]
        tell("chunking", number)
        ids = list(range(next_id, next_id + len(pieces)))
        next_id += len(pieces)
        new_chunks.extend(zip(ids, pieces, strict=True))
        files_entry[source.key] = {"path": str(source.path), "sha256": hashes[source.key], "chunk_ids": ids}
    if new_chunks:
        say(f"embedding {len(new_chunks)} chunks from {len(to_embed)} files with {model.name}")
        embedded = active.encode([c.embedding_text() for _, c in new_chunks], batch_size=batch_size,
                                 progress=progress)
        vectors.add_with_ids(embedded, np.asarray([i for i, _ in new_chunks], dtype="int64"))
        chunks.update(new_chunks)
    report.chunks_embedded = len(new_chunks)
    if not chunks:
        raise IngestError(f"the sources ({', '.join(str(s) for s in sources)}) hold no text to index")

    chunks = dict(sorted(chunks.items()))
    if phase is not None:
        phase("indexing", 0, 1, "index")
    folder.mkdir(parents=True, exist_ok=True)
    data_dir, data_hashes = _write_data(folder, _next_data_number(folder), chunks, vectors)
    manifest = {
        "format": FORMAT,
        "embedding_model": {"name": model.name, "path": str(model.path), "fingerprint": model.fingerprint,
                            "dimension": active.dimension},
        "chunking": {"chunk_tokens": chunk_tokens, "overlap_tokens": overlap_tokens,
                     "tokenizer": f"{model.name}/tokenizer.json"},
        "sources": sources_now,
        "files": dict(sorted(files_entry.items())),
        "next_id": next_id,
        "chunk_count": len(chunks),
        "data_dir": data_dir,
        "data_files": data_hashes,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _commit(folder, manifest)
    opened = RagIndex.open(folder, None if model.name == BUNDLED_MODEL else str(model.path))
    opened.use_embedder(active)
    report.total_chunks = len(opened)
    report.seconds = time.perf_counter() - started
    if phase is not None:
        phase("indexing", 1, 1, "index")
    say(report.summary())
    return opened, report
