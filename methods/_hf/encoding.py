"""Rows to token ids with loss targets: the chat template, completion-only loss, raw text.

Only answer tokens carry loss in supervised data: assistant turns (their end-of-turn token
included, so the model learns to stop) or the completion of a prompt/completion pair. Masks come
from character spans of the rendered text, never from the pad id: many models (the embedded
SmolLM2 among them) use their end-of-turn token as pad.

Targets are stored already shifted (``targets[t]`` is the token the model should predict after
position ``t``, or :data:`IGNORE`), so packed sequences never ask one example to predict the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.plugins.data import DataError, Row

IGNORE = -100
"""Target value that carries no loss (PyTorch's cross-entropy ``ignore_index``)."""

SUPERVISED_SHAPES = ("messages", "instruction", "prompt_completion")
TEXT_SHAPES = ("text", "documents")

FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ':\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'assistant:\\n' }}{% endif %}"
)
"""Used for tokenizers without a chat template (base models): role lines closed by the EOS token."""


@dataclass
class Example:
    """One encoded training example."""

    input_ids: list[int]
    targets: list[int]
    where: str
    """``file:line`` of the row it came from."""
    prompt_ids: list[int] | None = None
    """The prompt to generate from in evaluation (supervised data only)."""
    reference: str | None = None
    """The answer the data gives for ``prompt_ids``."""

    @property
    def num_targets(self) -> int:
        return sum(1 for t in self.targets if t != IGNORE)


@dataclass
class Document:
    """One raw-text document as tokens (EOS appended)."""

    input_ids: list[int]
    where: str


@dataclass
class EncodeReport:
    """What encoding did to the data, for log events and the report."""

    examples: int = 0
    truncated: int = 0
    dropped: list[str] = field(default_factory=list)
    """``file:line`` of examples with no answer tokens left after truncation."""


def shift(labels: Sequence[int]) -> list[int]:
    """Per-position labels to next-token targets (the last position predicts nothing)."""
    return [*labels[1:], IGNORE]


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give a tokenizer without a chat template the fallback one; True when it had its own."""
    if getattr(tokenizer, "chat_template", None):
        return True
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return False


def row_messages(data: Mapping[str, Any], shape: str) -> tuple[list[dict[str, str]], int]:
    """A supervised row as chat turns, and how many leading turns are prompt (never trained).

    ``instruction`` rows become one user turn (instruction, blank line, input) and one assistant
    turn; conversational ``prompt_completion`` rows are prompt turns followed by completion turns.
    For ``messages`` every assistant turn is trained, so the prompt count is 0.
    """
    if shape == "messages":
        return [{"role": t["role"], "content": t["content"]} for t in data["messages"]], 0
    if shape == "instruction":
        user = str(data["instruction"]).strip()
        if data.get("input"):
            user += "\n\n" + str(data["input"]).strip()
        turns = [{"role": "system", "content": str(data["system"])}] if data.get("system") else []
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": str(data["output"])}]
        return turns, len(turns) - 1
    if shape == "prompt_completion":
        prompt = data["prompt"]
        completion = data["completion"]
        prompt_turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
        completion_turns = (completion if isinstance(completion, list)
                            else [{"role": "assistant", "content": str(completion)}])
        return [*prompt_turns, *completion_turns], len(prompt_turns)
    raise ValueError(f"not a supervised shape: {shape!r}")


class ChatEncoder:
    """Encodes chat turns with the tokenizer's chat template and marks the trained spans."""

    def __init__(self, tokenizer: Any, loss_on: str = "assistant") -> None:
        self.tokenizer = tokenizer
        self.loss_on = loss_on
        self.eos_text = tokenizer.eos_token or ""

    def render(self, turns: Sequence[Mapping[str, str]], generation_prompt: bool = False) -> str:
        text = self.tokenizer.apply_chat_template(
            list(turns), tokenize=False, add_generation_prompt=generation_prompt
        )
        return str(text)

    def _trained_spans(self, turns: Sequence[Mapping[str, str]], first_trained: int, text: str,
                       where: str) -> list[tuple[int, int]]:
        """Character spans of the trained assistant turns: content plus its end-of-turn token."""
        spans = []
        for i, turn in enumerate(turns):
            if turn["role"] != "assistant" or i < first_trained:
                continue
            if i == 0:
                raise DataError(f"{where}: the conversation starts with an assistant turn; "
                                "put the user's turn (or a system turn) before it")
            start_text = self.render(turns[:i], generation_prompt=True)
            end_text = self.render(turns[: i + 1])
            if not (text.startswith(start_text) and text.startswith(end_text)):
                raise DataError(
                    f"{where}: this model's chat template renders a conversation differently from its "
                    "prefixes, so the assistant turns cannot be located; use instruction/output or "
                    "prompt/completion rows, or a model with a prefix-stable template"
                )
            start, end = len(start_text), len(end_text)
            # Train the end-of-turn token but not the whitespace the template adds after it.
            eos_at = text.rfind(self.eos_text, start, end) if self.eos_text else -1
            if eos_at >= 0:
                end = eos_at + len(self.eos_text)
            spans.append((start, end))
        return spans

    def encode(self, turns: list[dict[str, str]], first_trained: int, where: str) -> Example:
        text = self.render(turns)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(encoded["input_ids"])
        if self.loss_on == "all":
            labels = list(ids)
        else:
            spans = self._trained_spans(turns, first_trained, text, where)
            labels = [IGNORE] * len(ids)
            for t, (s, _e) in enumerate(encoded["offset_mapping"]):
                if any(a <= s < b for a, b in spans):
                    labels[t] = ids[t]
        last = max(i for i, turn in enumerate(turns) if turn["role"] == "assistant")
        prompt_text = self.render(turns[:last], generation_prompt=True)
        prompt_ids = list(self.tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
        return Example(ids, shift(labels), where, prompt_ids, turns[last]["content"])


class PlainEncoder:
    """Encodes plain-text prompt/completion pairs: prompt tokens, then completion tokens and EOS."""

    def __init__(self, tokenizer: Any, loss_on: str = "assistant") -> None:
        self.tokenizer = tokenizer
        self.loss_on = loss_on

    def encode(self, prompt: str, completion: str, where: str) -> Example:
        prompt_ids = list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        completion_ids = list(self.tokenizer(completion, add_special_tokens=False)["input_ids"])
        eos = self.tokenizer.eos_token_id
        if eos is not None:
            completion_ids.append(eos)
        ids = prompt_ids + completion_ids
        labels = list(ids) if self.loss_on == "all" else [IGNORE] * len(prompt_ids) + completion_ids
        return Example(ids, shift(labels), where, prompt_ids, completion)


def truncate(example: Example, seq_len: int) -> bool:
    """Cut an example to ``seq_len`` tokens (keeping the start); True when it was cut."""
    if len(example.input_ids) <= seq_len:
        return False
    example.input_ids = example.input_ids[:seq_len]
    example.targets = [*example.targets[: seq_len - 1], IGNORE]
    return True


def encode_supervised(rows: Sequence[Row], shape: str, tokenizer: Any, seq_len: int,
                      loss_on: str = "assistant") -> tuple[list[Example], EncodeReport]:
    """Every supervised row as an :class:`Example`; rows with no answer token left are dropped."""
    if shape not in SUPERVISED_SHAPES:
        raise ValueError(f"not a supervised shape: {shape!r}")
    ensure_chat_template(tokenizer)
    chat = ChatEncoder(tokenizer, loss_on)
    plain = PlainEncoder(tokenizer, loss_on)
    report = EncodeReport()
    examples: list[Example] = []
    for row in rows:
        data = row.data
        if shape == "prompt_completion" and isinstance(data["prompt"], str) and isinstance(data["completion"], str):
            example = plain.encode(data["prompt"], data["completion"], row.where)
        else:
            turns, first_trained = row_messages(data, shape)
            example = chat.encode(turns, first_trained, row.where)
        if truncate(example, seq_len):
            report.truncated += 1
        if example.num_targets == 0:
            report.dropped.append(row.where)
            continue
        examples.append(example)
    report.examples = len(examples)
    return examples, report


def document_text(data: Mapping[str, Any]) -> str:
    return str(data.get("text", data.get("content", "")))


def encode_documents(rows: Sequence[Row], tokenizer: Any) -> list[Document]:
    """Raw-text rows as token ids with EOS appended (the model learns where a document ends)."""
    docs = []
    eos = tokenizer.eos_token_id
    for row in rows:
        ids = list(tokenizer(document_text(row.data), add_special_tokens=True)["input_ids"])
        if eos is not None:
            ids.append(eos)
        docs.append(Document(ids, row.where))
    return docs
