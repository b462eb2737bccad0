"""Token-aware chunking: windows of the embedding model's own tokens, overlapping, cut between words.

Counting in the embedding model's tokens (not characters or words) keeps every chunk inside what the
model reads (MiniLM truncates at 256 word pieces), so no chunk text is silently ignored when embedded.
Chunk text is a slice of the original document (token offsets map back to characters), so citations
quote the source exactly, unicode included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.methods.rag.ingest import Document
from tunewise.plugins.errors import TunewiseError


class ChunkingError(TunewiseError):
    """Chunk settings that cannot work (e.g. an overlap as long as the chunk)."""


def check_window(chunk_tokens: int, overlap_tokens: int) -> None:
    """Refuse settings under which chunking would not advance or make empty chunks."""
    if chunk_tokens < 1:
        raise ChunkingError(f"chunk_tokens must be at least 1 (got {chunk_tokens})")
    if overlap_tokens < 0:
        raise ChunkingError(f"overlap_tokens must not be negative (got {overlap_tokens})")
    if overlap_tokens >= chunk_tokens:
        raise ChunkingError(f"overlap_tokens ({overlap_tokens}) must be smaller than chunk_tokens "
                            f"({chunk_tokens}): each chunk has to move past the previous one")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, as stored in the index and cited in answers."""

    source: str
    chunk_id: int
    """Position of the chunk within its source (0, 1, …)."""
    title: str
    text: str
    start: int
    """Character offset of the chunk in the document text."""
    end: int

    def embedding_text(self) -> str:
        """What gets embedded and keyword-indexed: the title gives later chunks their document's topic."""
        if self.title and not self.text.lstrip().startswith(self.title):
            return f"{self.title}\n{self.text}"
        return self.text


class Chunker:
    """Splits documents into overlapping windows of ``chunk_tokens`` tokens of ``tokenizer``."""

    def __init__(self, tokenizer: Any, chunk_tokens: int, overlap_tokens: int) -> None:
        check_window(chunk_tokens, overlap_tokens)
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens

    @classmethod
    def for_model(cls, model_dir: str | Path, chunk_tokens: int, overlap_tokens: int) -> Chunker:
        """A chunker using the ``tokenizer.json`` of a sentence-transformers model folder."""
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise ChunkingError(f"{model_dir}: no tokenizer.json; token-aware chunking needs the embedding "
                                "model's fast tokenizer file")
        tokenizer = Tokenizer.from_file(str(path))
        # The file carries the model's truncation (e.g. 128 tokens); chunking must see every token.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(tokenizer, chunk_tokens, overlap_tokens)

    def _word_start(self, words: list[int | None], position: int, floor: int) -> int:
        """``position`` moved back to the first token of its word, unless that lies before ``floor``."""

        def inside_word(i: int) -> bool:
            return words[i] is not None and words[i] == words[i - 1]

        moved = position
        while moved > floor and inside_word(moved):
            moved -= 1
        return position if inside_word(moved) else moved

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the chunks of ``text`` (none for empty or whitespace-only text)."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        offsets: list[tuple[int, int]] = encoding.offsets
        words: list[int | None] = encoding.word_ids
        total = len(offsets)
        if total == 0:
            return []
        size, overlap = self.chunk_tokens, self.overlap_tokens
        # Never shrink a window below half its size to end on a word boundary (a giant "word").
        slack = size // 2
        token_spans: list[tuple[int, int]] = []
        start = 0
        while True:
            end = min(start + size, total)
            if end < total:
                end = self._word_start(words, end, max(start + 1, start + size - slack))
            token_spans.append((start, end))
            if end >= total:
                break
            following = max(end - overlap, start + 1)
            start = self._word_start(words, following, max(start + 1, following - slack))
        return [(offsets[a][0], offsets[b - 1][1]) for a, b in token_spans]

    def chunk(self, document: Document) -> list[Chunk]:
        return [
            Chunk(document.source, position, document.title, document.text[a:b], a, b)
            for position, (a, b) in enumerate(self.spans(document.text))
        ]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)
