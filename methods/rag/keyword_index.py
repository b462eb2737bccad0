"""BM25 keyword search over chunk texts (bm25s), with an analyser suited to prose and code names."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)
# A small stop list: BM25's idf already discounts common words; these only add noise to short queries.
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with", "what", "which", "who", "whom", "how", "does", "do", "did",
    "can", "could", "would", "should", "when", "where", "why", "i", "you", "we", "he", "she", "its",
    "our", "your", "my", "me", "us",
})


def keyword_tokens(text: str) -> list[str]:
    """Lower-cased words without stop words; ``snake_case`` and ``__dunder__`` names also give their parts."""
    tokens: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        tokens.append(word)
        if "_" in word:
            tokens.extend(part for part in word.split("_") if part and part not in STOPWORDS and part != word)
    return tokens


PARAMS_FILE = "params.index.json"
VOCAB_FILE = "vocab.index.json"
DATA_FILE = "data.csc.index.npy"
INDICES_FILE = "indices.csc.index.npy"
INDPTR_FILE = "indptr.csc.index.npy"
FILES = (PARAMS_FILE, VOCAB_FILE, DATA_FILE, INDICES_FILE, INDPTR_FILE)
"""What ``bm25s.BM25.save`` writes for the retrievers built here (and all that :meth:`KeywordIndex.load` reads)."""

MAX_VOCAB_BYTES = 128 << 20
"""The vocabulary file: some 20 bytes a distinct word, so about six million words."""

_METHODS = ("robertson", "atire", "lucene")
"""bm25s scoring methods that need no extra array (bm25l and bm25+ also read a non-occurrence array)."""
_PARAM_CHOICES: dict[str, tuple[Any, ...]] = {
    "method": _METHODS, "idf_method": (*_METHODS, None), "dtype": ("float32", "float64"),
    "int_dtype": ("int32", "int64"), "backend": ("numpy",),
}


def _checked_params(path: Path, params: Any, size: int) -> dict[str, Any]:
    """The keyword arguments for ``bm25s.BM25`` from a saved ``params.index.json``; anything else is refused."""
    from tunewise.plugins.bounded_load import InputError

    def refuse(problem: str) -> InputError:
        return InputError(str(path), 0, problem)

    if not isinstance(params, dict):
        raise refuse(f"BM25 parameters must be a JSON object, not {type(params).__name__}")
    unknown = sorted(set(params) - {"k1", "b", "delta", "num_docs", "version", *_PARAM_CHOICES})
    if unknown:
        raise refuse(f"unknown BM25 parameters {', '.join(map(repr, unknown))}")
    for key in ("k1", "b", "delta"):
        value = params.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise refuse(f"BM25 parameter {key} must be a finite number (found {value!r})")
    for key, choices in _PARAM_CHOICES.items():
        if key in params and params[key] not in choices:
            raise refuse(f"BM25 parameter {key} is {params[key]!r}, not one of {', '.join(map(repr, choices))}")
    if params.get("num_docs") != size or isinstance(params.get("num_docs"), bool):
        raise refuse(f"BM25 index of {params.get('num_docs')!r} documents, but the index has {size} chunks")
    return {key: value for key, value in params.items() if key not in ("num_docs", "version")}


def _vocab_problem(vocab: Any, terms: int) -> str | None:
    """Why a saved vocabulary (word -> column of the score matrix, of ``terms`` columns) is refused, else None."""
    if not isinstance(vocab, dict):
        return f"BM25 vocabulary must be a JSON object, not {type(vocab).__name__}"
    for word, column in vocab.items():
        # bm25s adds "" one past the last column for queries with no known word; keyword_tokens never asks for it.
        limit = terms + 1 if word == "" else terms
        if isinstance(column, bool) or not isinstance(column, int) or not 0 <= column < limit:
            return f"BM25 vocabulary maps {word[:40]!r} to {column!r}, not a column in 0..{limit - 1}"
    return None


class KeywordIndex:
    """BM25 over documents in a fixed order; search returns positions in that order."""

    def __init__(self, retriever: Any, size: int) -> None:
        self.retriever = retriever
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str]) -> KeywordIndex:
        import bm25s

        retriever = bm25s.BM25()
        # An empty token list would give the document no row; a placeholder keeps positions aligned.
        corpus = [keyword_tokens(text) or ["\x00empty"] for text in texts]
        retriever.index(corpus, show_progress=False)
        return cls(retriever, len(texts))

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> KeywordIndex:
        """The index saved in ``folder`` for ``size`` documents; any file that does not fit is an ``InputError``.

        Read here rather than by ``bm25s.BM25.load``: that reads JSON unbounded, builds the retriever
        from whatever parameters the file holds, and hands ``.npy`` files to ``np.load`` unchecked. Every
        array is checked against its file's size and against the others, so a search cannot index
        past them.
        """
        import bm25s
        import numpy as np
        from tunewise.methods.rag.index_files import read_npy
        from tunewise.plugins.bounded_load import MAX_MANIFEST_BYTES, InputError, read_json

        def json_file(name: str, max_bytes: int) -> Any:
            try:
                return read_json(folder / name, max_bytes, what=f"a BM25 {name}")
            except OSError as exc:
                raise InputError(str(folder / name), 0, f"cannot be read ({exc.strerror or exc})") from None

        params = _checked_params(folder / PARAMS_FILE, json_file(PARAMS_FILE, MAX_MANIFEST_BYTES), size)
        data = read_npy(folder / DATA_FILE, "f")
        indices = read_npy(folder / INDICES_FILE, "iu")
        indptr = read_npy(folder / INDPTR_FILE, "iu")
        problem = None
        if len(data) != len(indices):
            problem = f"{len(data)} scores but {len(indices)} document numbers in {INDICES_FILE}"
        elif len(indptr) == 0 or indptr[0] != 0 or indptr[-1] != len(data) or np.any(np.diff(indptr) < 0):
            problem = (f"{INDPTR_FILE} must rise from 0 to the number of scores ({len(data)}) "
                       f"(found {len(indptr)} offsets)")
        elif len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= size):
            problem = f"{INDICES_FILE} names documents outside 0..{size - 1}"
        if problem:
            raise InputError(str(folder), 0, f"inconsistent BM25 arrays: {problem}")
        terms = len(indptr) - 1
        vocab = json_file(VOCAB_FILE, MAX_VOCAB_BYTES)
        bad = _vocab_problem(vocab, terms)
        if bad:
            raise InputError(str(folder / VOCAB_FILE), 0, bad)

        # What bm25s.BM25.load sets up, from the checked values.
        retriever = bm25s.BM25(**params)
        retriever.vocab_dict = vocab
        retriever.unique_token_ids_set = set(vocab.values())
        retriever.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": size}
        retriever.nonoccurrence_array = None
        return cls(retriever, size)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (position, score) pairs, best first; only documents sharing a keyword with the query."""
        tokens = keyword_tokens(query)
        if not tokens or self.size == 0:
            return []
        docs, scores = self.retriever.retrieve([tokens], k=min(k, self.size), show_progress=False)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
