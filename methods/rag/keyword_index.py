"""BM25 keyword search over chunk texts (bm25s), with an analyser suited to prose and code names."""

from __future__ import annotations

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
        import bm25s

        retriever = bm25s.BM25.load(str(folder), show_progress=False, allow_pickle=False)
        return cls(retriever, size)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (position, score) pairs, best first; only documents sharing a keyword with the query."""
        tokens = keyword_tokens(query)
        if not tokens or self.size == 0:
            return []
        docs, scores = self.retriever.retrieve([tokens], k=min(k, self.size), show_progress=False)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
