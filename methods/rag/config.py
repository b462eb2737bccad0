"""Settings of a RAG plan (the ``config:`` block of a plan whose method is ``rag``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from tunewise.plugins.errors import TunewiseError

SearchMode = Literal["dense", "bm25", "hybrid"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
AnswerMode = Literal["auto", "generate", "extractive"]
ANSWER_MODES: tuple[str, ...] = get_args(AnswerMode)


@dataclass
class RagConfig:
    """How to index the plan's documents, retrieve from them and evaluate the answers.

    Fields marked ``"path"`` name files: plan loading confines them like ``data:`` and the run opens
    them through :meth:`~tunewise.plugins.types.Plan.config_path`.
    """

    embedding_model: str | None = field(
        default=None,
        metadata={"help": "sentence-transformers model: a local folder, or None for the bundled all-MiniLM-L6-v2",
                  "path": "read"},
    )
    index_dir: str | None = field(
        default=None,
        metadata={"help": "where the index lives; None = <output_dir>/index. An existing index is updated "
                          "incrementally (only new or changed files are embedded)", "path": "write"},
    )
    chunk_tokens: int = field(
        default=200, metadata={"help": "chunk length in embedding-model tokens (MiniLM reads at most 256)"}
    )
    overlap_tokens: int = field(
        default=40, metadata={"help": "tokens shared by consecutive chunks so no sentence is cut off from both"}
    )
    mode: SearchMode = field(
        default="hybrid",
        metadata={"help": "retrieval for answers: dense (embeddings), bm25 (keywords) or hybrid (both, fused)"},
    )
    k: int = field(default=3, metadata={"help": "chunks put in the prompt per question"})
    answer_mode: AnswerMode = field(
        default="auto",
        metadata={"help": "auto: the model answers and, when its [n] citations are missing or wrong, the best "
                          "sentences of the passages are quoted instead (marked extractive); generate: keep the "
                          "model's answer whatever it cites; extractive: quote sentences, no generation"},
    )
    questions: str | None = field(
        default=None,
        metadata={"help": "jsonl of {question, source, answer} to evaluate retrieval and answers; "
                          "None = index only", "path": "read"},
    )
    recall_at: tuple[int, ...] = field(
        default=(1, 3, 5, 10), metadata={"help": "cut-offs k for recall@k in the report"}
    )
    answer_questions: int | None = field(
        default=None,
        metadata={"help": "most questions the model answers with and without retrieval for the bake-off "
                          "(None = every question; 0 = skip; each costs two generations)"},
    )
    max_new_tokens: int = field(default=48, metadata={"help": "longest generated answer, in model tokens"})
    max_context_tokens: int = field(
        default=1536, metadata={"help": "budget of retrieved text in the model's prompt, in model tokens"}
    )
    min_relevance: float = field(
        default=0.3,
        metadata={"help": "cosine similarity the best chunk must reach, else the answer says the documents "
                          "do not contain it (no generation)"},
    )
    batch_size: int = field(default=32, metadata={"help": "chunks embedded per batch"})

    def __post_init__(self) -> None:
        self.recall_at = tuple(int(k) for k in self.recall_at)

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every setting that cannot work; the plan loader reports them by line."""
        found: list[tuple[str, str]] = []
        if self.chunk_tokens < 1:
            found.append(("chunk_tokens", f"must be at least 1 (got {self.chunk_tokens})"))
        if self.overlap_tokens < 0:
            found.append(("overlap_tokens", f"must not be negative (got {self.overlap_tokens})"))
        elif self.overlap_tokens >= self.chunk_tokens:
            found.append(("overlap_tokens", f"must be smaller than chunk_tokens ({self.overlap_tokens} >= "
                                            f"{self.chunk_tokens}): each chunk has to move past the previous one"))
        if self.mode not in SEARCH_MODES:
            found.append(("mode", f"{self.mode!r} is not one of {', '.join(SEARCH_MODES)}"))
        if self.answer_mode not in ANSWER_MODES:
            found.append(("answer_mode", f"{self.answer_mode!r} is not one of {', '.join(ANSWER_MODES)}"))
        for name in ("k", "batch_size", "max_new_tokens", "max_context_tokens"):
            if getattr(self, name) < 1:
                found.append((name, f"must be at least 1 (got {getattr(self, name)})"))
        if not self.recall_at or min(self.recall_at) < 1:
            found.append(("recall_at", f"needs cut-offs of at least 1 (got {list(self.recall_at)})"))
        if self.answer_questions is not None and self.answer_questions < 0:
            found.append(("answer_questions", f"must not be negative (got {self.answer_questions})"))
        return found

    def check(self) -> None:
        """Raise one error listing every problem."""
        found = self.problems()
        if found:
            raise TunewiseError("rag config: " + "; ".join(f"{name}: {message}" for name, message in found))
