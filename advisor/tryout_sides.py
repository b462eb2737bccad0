"""What answers a prompt when a run is tried: the base or the run's result, asked as the run's evaluation asked.

A :class:`Side` composes the whole prompt (chat template with a generation prompt, or raw text; the
instruction or system prompt the run's data shares; in-context examples; retrieved passages) and
streams a greedy answer through :func:`~tunewise.advisor.streaming.generate_streamed`. Which sides a
run has, and what they load, is :mod:`tunewise.advisor.tryout`'s business.
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.advisor.streaming import Generated, Progress, Stream, generate_streamed

CHAT, TEXT = "chat", "text"
"""Prompt styles: chat turns through the model's template, or the prompt as raw text."""


@dataclass(frozen=True)
class Reply:
    """One side's answer to a prompt."""

    which: str
    answer: str
    """The answer as shown (a RAG answer with its sources listed under it)."""
    prompt: str
    """The whole prompt the model was given: template, instruction and examples or passages included."""
    tokens: int
    seconds: float
    cancelled: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    """In-context: ``examples``; RAG: ``citations``, ``passages``, ``extractive`` …"""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.answer, "prompt": self.prompt, "tokens": self.tokens,
                "seconds": round(self.seconds, 3), "tokens_per_s": round(self.tokens_per_s, 2),
                "cancelled": self.cancelled, **self.details}


@dataclass
class Turn:
    """One call's streaming settings, handed down to the side answering."""

    max_new_tokens: int
    stream: Stream | None = None
    progress: Progress | None = None
    cancel: threading.Event | None = None

    def generate(self, model: Any, tokenizer: Any, ids: Sequence[int], *,
                 context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
                 repetition_penalty: float | None = None) -> Generated:
        return generate_streamed(model, tokenizer, ids, max_new_tokens=self.max_new_tokens, stream=self.stream,
                                 progress=self.progress, cancel=self.cancel, context=context,
                                 repetition_penalty=repetition_penalty)


class Side(abc.ABC):
    """Something that answers prompts: the base, or the run's result."""

    what: str = ""

    @abc.abstractmethod
    def reply(self, which: str, prompt: str, turn: Turn) -> Reply:
        """The answer to ``prompt`` as ``which`` (``base`` or ``result``) gives it."""


@dataclass
class PromptShape:
    """How a prompt is put to the model: chat turns or raw text, with the data's shared instruction/system."""

    style: str = CHAT
    instruction: str | None = None
    system: str | None = None

    def user_text(self, prompt: str) -> str:
        return f"{self.instruction}\n\n{prompt}" if self.instruction else prompt

    def messages(self, prompt: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": self.user_text(prompt)}]


class ModelSide(Side):
    """A causal LM answering the prompt alone (``context`` wraps generation: a LoRA's adapter switched off)."""

    def __init__(self, what: str, model: Any, tokenizer: Any, shape: PromptShape,
                 context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext) -> None:
        self.what = what
        self.model = model
        self.tokenizer = tokenizer
        self.shape = shape
        self.context = context

    def compose(self, prompt: str) -> tuple[str, list[int]]:
        if self.shape.style == TEXT:  # as the run's evaluation encodes plain prompts (PlainEncoder)
            return prompt, list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        from tunewise.methods._hf.encoding import ChatEncoder

        text = ChatEncoder(self.tokenizer).render(self.shape.messages(prompt), generation_prompt=True)
        return text, list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def reply(self, which: str, prompt: str, turn: Turn) -> Reply:
        text, ids = self.compose(prompt)
        out = turn.generate(self.model, self.tokenizer, ids, context=self.context)
        return Reply(which, out.text, text, out.tokens, out.seconds, out.cancelled)


class FewShotSide(Side):
    """The base with examples from the run's pool in the prompt, picked per prompt as the run picked them."""

    def __init__(self, what: str, model: Any, tokenizer: Any, builder: Any, shape: PromptShape,
                 selector: Any = None, embed: Callable[[str], Any] | None = None) -> None:
        self.what = what
        self.model = model
        self.tokenizer = tokenizer
        self.builder = builder
        self.shape = shape
        self.selector = selector
        self.embed = embed

    def reply(self, which: str, prompt: str, turn: Turn) -> Reply:
        from tunewise.methods.in_context.examples import Example

        query = Example((("user", self.shape.user_text(prompt)),), "", self.shape.system)
        examples = []
        if self.selector is not None:
            vector = self.embed(query.query_text) if self.embed is not None else None
            examples = [self.selector.pool[i] for i in self.selector.select(vector)]
        text = self.builder.text(self.builder.messages(examples, query))
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        out = turn.generate(self.model, self.tokenizer, ids)
        details = {"examples": [{"where": e.where, "input": e.query_text, "answer": e.answer} for e in examples]}
        return Reply(which, out.text, text, out.tokens, out.seconds, out.cancelled, details)


class RagSide(Side):
    """The base answering from the run's index with citations, or closed-book (the baseline)."""

    def __init__(self, what: str, answerer: Any, index: Any, config: Any, closed_book: bool) -> None:
        self.what = what
        self.answerer = answerer
        self.index = index
        self.config = config
        self.closed_book = closed_book

    def reply(self, which: str, prompt: str, turn: Turn) -> Reply:
        self.answerer.turn = turn
        self.answerer.last = self.answerer.last_prompt = None
        self.answerer.max_new_tokens = turn.max_new_tokens
        if self.closed_book:
            answer = self.answerer.answer_closed_book(prompt)
            shown, details = answer.text, {}
        else:
            answer = self.answerer.answer(self.index, prompt, k=self.config.k, mode=self.config.mode,
                                          min_relevance=self.config.min_relevance,
                                          answer_mode=self.config.answer_mode)
            shown = answer.render()
            details = {k: v for k, v in answer.to_json().items() if k not in ("question",)}
        last: Generated | None = self.answerer.last
        return Reply(which, shown, self.answerer.last_prompt or "", last.tokens if last else 0,
                     last.seconds if last else 0.0, bool(last and last.cancelled), details)


def streaming_answerer(model: Any, tokenizer: Any, max_new_tokens: int, max_context_tokens: int) -> Any:
    """The RAG method's :class:`~tunewise.methods.rag.answer.Answerer` with its generation streamed."""
    from tunewise.methods.rag.answer import Answerer

    class StreamingAnswerer(Answerer):
        turn: Turn | None = None
        last: Generated | None = None
        last_prompt: str | None = None

        def generate(self, messages: list[dict[str, str]]) -> tuple[str, int]:
            # Same prompt and decoding as Answerer.generate (template, greedy, repetition penalty 1.1).
            text = str(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            turn = self.turn or Turn(self.max_new_tokens)
            self.last_prompt = text
            self.last = turn.generate(self.model, self.tokenizer, ids, repetition_penalty=1.1)
            return self.last.text, len(ids)

    return StreamingAnswerer(model=model, tokenizer=tokenizer, max_new_tokens=max_new_tokens,
                             max_context_tokens=max_context_tokens)


def shared_shape(rows: Sequence[Any], shape: str | None, style: str) -> PromptShape:
    """The instruction (``instruction`` rows) and system prompt that every row shares; raw text for
    plain-string prompt/completion rows, which the run encoded without a chat template."""
    rows = [r for r in rows if isinstance(r, dict)]
    if not rows:
        return PromptShape(style)
    if shape == "prompt_completion":
        return PromptShape(CHAT if isinstance(rows[0].get("prompt"), list) else TEXT)
    instruction: str | None = None
    if shape == "instruction":
        found = {str(r.get("instruction", "")).strip() for r in rows}
        instruction = found.pop() if len(found) == 1 else None
        systems = {str(r["system"]) if r.get("system") else None for r in rows}
    elif shape == "messages":
        systems = set()
        for r in rows:
            turns = r.get("messages") or []
            first = turns[0] if turns and isinstance(turns[0], dict) else {}
            systems.add(str(first.get("content")) if first.get("role") == "system" else None)
    else:
        systems = {None}
    system = systems.pop() if len(systems) == 1 else None
    return PromptShape(style, instruction or None, system or None)

