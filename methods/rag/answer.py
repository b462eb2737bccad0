"""Answers from retrieved chunks, with numbered citations that map back to source and chunk.

The retrieved chunks go into the prompt as numbered passages ``[1] … [n]``; the model is asked to cite
them by number. Each number in the answer is resolved to the passage's source file and chunk id, and
numbers that name no passage are reported rather than trusted. When the best chunk is not similar
enough to the question (``min_relevance``), no answer is generated: the reply says the documents do not
contain it, which a small model would not reliably say by itself.

Answers always cite. ``answer_mode`` ``auto`` (the default) checks the model's citations and, when
they are missing, name no passage, or point at passages that do not hold the answer's words, replaces
the reply with an extractive answer (sentences quoted from the passages, each with its ``[n]``; see
:mod:`~tunewise.methods.rag.extractive`), marked ``extractive`` and keeping the model's reply and what
was wrong with it. ``generate`` keeps the model's reply whatever it cites and reports the problem;
``extractive`` quotes without generating.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.methods.rag.config import ANSWER_MODES
from tunewise.methods.rag.extractive import Quote, compose, pick_sentences
from tunewise.methods.rag.index import Hit, RagIndex
from tunewise.methods.rag.keyword_index import keyword_tokens
from tunewise.plugins.errors import TunewiseError

NO_ANSWER = "The documents do not contain the answer."
SYSTEM_PROMPT = (
    "Answer the question using only the numbered passages. Cite the passages you use by their number "
    f"in brackets, like [1]. If the passages do not contain the answer, reply exactly: {NO_ANSWER}"
)
CLOSED_BOOK_PROMPT = "Answer the question briefly and accurately."
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
SUPPORTED_SHARE = 0.5
"""Share of a reply's words that its cited passages must contain for the citations to count."""


@dataclass(frozen=True)
class Citation:
    """A numbered passage given to the model."""

    number: int
    source: str
    chunk_id: int
    title: str
    text: str = field(default="", repr=False, compare=False)
    """The passage as the model saw it (clipped to the context budget); not part of the JSON."""

    def label(self) -> str:
        return f"{self.source} (chunk {self.chunk_id})"


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    passages: tuple[Citation, ...]
    """The passages in the prompt, numbered from 1."""
    cited: tuple[int, ...] = ()
    """Passage numbers the answer cites that exist."""
    unknown_citations: tuple[int, ...] = ()
    """Numbers in brackets that name no passage (the model made them up)."""
    answered: bool = True
    """False when the answer says the documents do not contain it."""
    relevance: float | None = None
    """Cosine similarity of the best retrieved chunk to the question."""
    prompt_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    extractive: bool = False
    """True when the text is sentences quoted from the passages (see ``quotes``), not the model's words."""
    quotes: tuple[Quote, ...] = ()
    generated: str | None = None
    """The model's own reply when an extractive answer replaced it."""
    citation_problem: str | None = None
    """Why the model's reply did not count as cited; None when it did or no model wrote the text."""

    @property
    def has_valid_citation(self) -> bool:
        """At least one citation, every one naming a passage given, and no problem found with them."""
        return bool(self.cited) and not self.unknown_citations and \
            (self.extractive or self.citation_problem is None)

    @property
    def citations(self) -> tuple[Citation, ...]:
        """The cited passages (source + chunk), in citation order."""
        by_number = {c.number: c for c in self.passages}
        return tuple(by_number[n] for n in self.cited)

    def render(self) -> str:
        lines = [self.text, ""]
        if self.extractive:
            why = f" ({self.citation_problem})" if self.citation_problem else ""
            lines.insert(1, f"(extractive: sentences quoted from the passages; the model's reply was not "
                            f"used{why})")
        elif self.citation_problem and self.answered:
            lines.insert(1, f"(not verified: {self.citation_problem})")
        if self.passages:
            lines.append("Sources:")
            for passage in self.passages:
                mark = "" if passage.number in self.cited else "  (retrieved, not cited)"
                lines.append(f"[{passage.number}] {passage.label()}{mark}")
        if self.unknown_citations:
            lines.append("Citations naming no passage: " + ", ".join(f"[{n}]" for n in self.unknown_citations))
        return "\n".join(lines).rstrip()

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "answered": self.answered,
            "relevance": self.relevance,
            "citations": [{"number": c.number, "source": c.source, "chunk_id": c.chunk_id} for c in self.citations],
            "passages": [{"number": c.number, "source": c.source, "chunk_id": c.chunk_id, "title": c.title}
                         for c in self.passages],
            "unknown_citations": list(self.unknown_citations),
            "extractive": self.extractive,
            "quotes": [{"number": q.number, "text": q.text} for q in self.quotes],
            "citation_problem": self.citation_problem,
            "generated": self.generated,
        }


def parse_citations(text: str, passages: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(valid passage numbers, numbers naming no passage) cited in ``text``, each once, in order."""
    valid: list[int] = []
    unknown: list[int] = []
    for group in _CITATION.findall(text):
        for number in (int(n) for n in group.split(",")):
            target = valid if 1 <= number <= passages else unknown
            if number not in target:
                target.append(number)
    return tuple(valid), tuple(unknown)


def citation_problem(text: str, passages: tuple[Citation, ...]) -> str | None:
    """Why ``text`` does not cite ``passages`` validly, or None when it does.

    Valid: at least one ``[n]`` naming a passage given, none naming a passage that was not given,
    some words besides the markers, and most of those words found in the cited passages (a model can
    put ``[1]`` after anything).
    """
    cited, unknown = parse_citations(text, len(passages))
    if unknown:
        given = f"[1]-[{len(passages)}]" if passages else "none"
        return (f"it cites {', '.join(f'[{n}]' for n in unknown)}, but the passages given were {given}")
    if not cited:
        return "it has no [n] citation markers"
    words = set(keyword_tokens(_CITATION.sub(" ", text)))
    if not words:
        return "it has citation markers but no answer"
    by_number = {p.number: p for p in passages}
    found = set(keyword_tokens(" ".join(by_number[n].text for n in cited)))
    share = len(words & found) / len(words)
    if share < SUPPORTED_SHARE:
        return f"the passages it cites hold only {share:.0%} of its words"
    return None


def says_no_answer(text: str) -> bool:
    lowered = text.lower()
    return "do not contain the answer" in lowered or "does not contain the answer" in lowered


class Answerer:
    """A causal LM (default: the embedded model) answering with or without retrieved passages."""

    def __init__(self, model_name: str | None = None, *, max_new_tokens: int = 48,
                 max_context_tokens: int = 1536, dtype: str = "float32", model: Any = None,
                 tokenizer: Any = None) -> None:
        from transformers.utils import logging as hf_logging
        from tunewise.plugins.models import load_model, load_tokenizer

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise in answers and run logs
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_name)
        self.model = model if model is not None else load_model(model_name, dtype=dtype)
        self.model.eval()
        self.max_new_tokens = max_new_tokens
        self.max_context_tokens = max_context_tokens

    def _count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _clip(self, text: str, tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]
        return str(self.tokenizer.decode(ids))

    def context_messages(self, question: str, hits: list[Hit]) -> tuple[list[dict[str, str]], tuple[Citation, ...]]:
        """The chat messages for an answer from ``hits`` (as many as fit the context budget)."""
        blocks: list[str] = []
        passages: list[Citation] = []
        budget = self.max_context_tokens
        for hit in hits:
            number = len(passages) + 1
            block = f"[{number}] ({hit.chunk.source}) {hit.chunk.text.strip()}"
            cost = self._count(block)
            if cost > budget:
                if passages:
                    break
                block = self._clip(block, budget)  # at least one passage, clipped to the budget
                cost = budget
            blocks.append(block)
            text = hit.chunk.text.strip()
            shown = block.removeprefix(f"[{number}] ({hit.chunk.source}) ")  # clipped blocks keep their head
            passages.append(Citation(number, hit.chunk.source, hit.chunk.chunk_id, hit.chunk.title,
                                     text if len(shown) >= len(text) else shown))
            budget -= cost
        user = "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
        return messages, tuple(passages)

    @staticmethod
    def closed_book_messages(question: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": CLOSED_BOOK_PROMPT}, {"role": "user", "content": question}]

    def generate(self, messages: list[dict[str, str]]) -> tuple[str, int]:
        """Greedy reply to chat ``messages`` and the prompt length in tokens."""
        import torch

        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        with torch.inference_mode():
            output = self.model.generate(
                **ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id, repetition_penalty=1.1,
            )
        prompt_length = int(ids["input_ids"].shape[1])
        text = self.tokenizer.decode(output[0, prompt_length:], skip_special_tokens=True)
        return str(text).strip(), prompt_length

    def generate_many(self, conversations: list[list[dict[str, str]]], batch_size: int = 8,
                      progress: Callable[[int, int], None] | None = None) -> list[tuple[str, int]]:
        """Greedy replies to many chats (and their prompt lengths), in left-padded batches of similar length.

        Batches share each decoding step, which on a CPU costs little more for 8 rows than for one.
        ``progress(done, total)`` after each batch.
        """
        import torch

        prompts = [self.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                   for m in conversations]
        lengths = [self._count(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
        replies: dict[int, tuple[str, int]] = {}
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # every row continues from its right end
        try:
            for begin in range(0, len(order), batch_size):
                chosen = order[begin:begin + batch_size]
                batch = self.tokenizer([prompts[i] for i in chosen], return_tensors="pt", padding=True,
                                       add_special_tokens=False)
                batch = {key: value.to(self.model.device) for key, value in batch.items()}
                with torch.inference_mode():
                    output = self.model.generate(
                        **batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                        pad_token_id=self.tokenizer.pad_token_id, repetition_penalty=1.1,
                    )
                width = batch["input_ids"].shape[1]
                for i, row in zip(chosen, output, strict=True):
                    text = self.tokenizer.decode(row[width:], skip_special_tokens=True)
                    replies[i] = (str(text).strip(), lengths[i])
                if progress is not None:
                    progress(len(replies), len(prompts))
        finally:
            self.tokenizer.padding_side = side
        return [replies[i] for i in range(len(prompts))]

    def _retrieve(self, index: RagIndex, question: str, *, k: int, mode: str, min_relevance: float,
                  answer_mode: str) -> Answer | _Pending:
        """Retrieval and relevance check: the final answer when no generation is needed, else what to generate."""
        if answer_mode not in ANSWER_MODES:
            raise TunewiseError(f"answer mode {answer_mode!r} is not one of {', '.join(ANSWER_MODES)}")
        vector = None if mode == "bm25" else index.embedder.encode_query(question)
        hits = index.search(question, k=k, mode=mode, query_vector=vector)
        if vector is None:
            vector = index.embedder.encode_query(question)
        similarities = index.similarities(vector, [h.id for h in hits])
        relevance = max(similarities, default=0.0)
        if not hits or relevance < min_relevance:
            return Answer(question, NO_ANSWER, (), answered=False, relevance=relevance)
        # Most similar first: a small model leans on the first passage.
        ordered = [hit for _, hit in sorted(zip(similarities, hits, strict=True), key=lambda p: -p[0])]
        messages, passages = self.context_messages(question, ordered)
        if answer_mode == "extractive":
            return extractive_answer(index, question, vector, passages, relevance=relevance)
        return _Pending(question, vector, passages, messages, relevance)

    def answer(self, index: RagIndex, question: str, *, k: int = 3, mode: str = "hybrid",
               min_relevance: float = 0.3, answer_mode: str = "auto") -> Answer:
        """Retrieve, check relevance, then answer with citations (or say the documents lack the answer).

        ``answer_mode``: ``auto`` generates and falls back to an extractive answer when the reply's
        citations are not valid; ``generate`` keeps the reply and reports any citation problem;
        ``extractive`` quotes the passages without generating.
        """
        return self.answer_many(index, [question], k=k, mode=mode, min_relevance=min_relevance,
                                answer_mode=answer_mode)[0]

    def answer_many(self, index: RagIndex, questions: Sequence[str], *, k: int = 3, mode: str = "hybrid",
                    min_relevance: float = 0.3, answer_mode: str = "auto",
                    progress: Callable[[int, int], None] | None = None) -> list[Answer]:
        """:meth:`answer` for many questions, the generations batched (see :meth:`generate_many`)."""
        found = [self._retrieve(index, q, k=k, mode=mode, min_relevance=min_relevance, answer_mode=answer_mode)
                 for q in questions]
        pending = [(i, f) for i, f in enumerate(found) if isinstance(f, _Pending)]
        replies = self.generate_many([f.messages for _, f in pending], progress=progress) if pending else []
        answers = list(found)
        for (i, todo), (text, prompt_tokens) in zip(pending, replies, strict=True):
            answers[i] = answer_from_reply(index, todo.question, todo.vector, todo.passages, text,
                                           answer_mode=answer_mode, relevance=todo.relevance,
                                           prompt_tokens=prompt_tokens)
        return [a for a in answers if isinstance(a, Answer)]  # every pending one is answered now

    def answer_closed_book(self, question: str) -> Answer:
        """The model's answer without retrieval (the baseline RAG must beat)."""
        return self.answer_closed_book_many([question])[0]

    def answer_closed_book_many(self, questions: Sequence[str],
                                progress: Callable[[int, int], None] | None = None) -> list[Answer]:
        """Answers without retrieval to many questions, the generations batched."""
        replies = self.generate_many([self.closed_book_messages(q) for q in questions], progress=progress)
        return [Answer(q, text, (), prompt_tokens=tokens) for q, (text, tokens) in zip(questions, replies, strict=True)]


@dataclass(frozen=True)
class _Pending:
    """A question whose passages are chosen and whose reply is still to be generated."""

    question: str
    vector: Any
    passages: tuple[Citation, ...]
    messages: list[dict[str, str]]
    relevance: float


def answer_from_reply(index: RagIndex, question: str, question_vector: Any, passages: tuple[Citation, ...],
                      reply: str, *, answer_mode: str = "auto", relevance: float | None = None,
                      prompt_tokens: int = 0) -> Answer:
    """The answer given the model's ``reply`` to ``passages``: kept if its citations are valid (or it is a
    refusal, which needs none); otherwise replaced by an extractive answer (``auto``) or kept with the
    problem stated (``generate``)."""
    cited, unknown = parse_citations(reply, len(passages))
    refused = says_no_answer(reply)
    problem = None if refused and not cited else citation_problem(reply, passages)
    if answer_mode == "auto" and problem is not None:
        return extractive_answer(index, question, question_vector, passages, relevance=relevance,
                                 generated=reply, problem=problem, prompt_tokens=prompt_tokens)
    return Answer(question, reply, passages, cited, unknown, answered=not refused, relevance=relevance,
                  prompt_tokens=prompt_tokens, citation_problem=problem)


def extractive_answer(index: RagIndex, question: str, question_vector: Any, passages: tuple[Citation, ...], *,
                      relevance: float | None = None, generated: str | None = None, problem: str | None = None,
                      prompt_tokens: int = 0) -> Answer:
    """The passages' best sentences for ``question``, each cited; ``generated`` is the reply it replaces."""
    quotes = pick_sentences(question, question_vector, [(p.number, p.text, p.title) for p in passages],
                            lambda sentences: index.embedder.encode(sentences, batch_size=64))
    if not quotes:  # passages with no sentence (a table of symbols): quote the best passage's start
        first = passages[0]
        quotes = [Quote(first.number, " ".join(first.text.split())[:200])]
    cited = tuple(dict.fromkeys(q.number for q in quotes))
    return Answer(question, compose(quotes), passages, cited, (), relevance=relevance,
                  prompt_tokens=prompt_tokens, extractive=True, quotes=tuple(quotes), generated=generated,
                  citation_problem=problem)
