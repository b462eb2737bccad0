"""Supervised examples as token ids: what the model reads and which tokens it is scored on.

Rows come from tunewise's public reader (:func:`tunewise.plugins.data.load_dataset`), so the plugin
accepts every format and shape the audit does. Chat rows go through the tokenizer's chat template;
the loss covers only the answer (the last assistant turn, or the completion).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.plugins.data import DataError, load_dataset

SUPERVISED_SHAPES = ("messages", "instruction", "prompt_completion")
IGNORE = -100
"""Label of a token that is read but not scored (the prompt, padding, the virtual tokens)."""


@dataclass(frozen=True)
class Example:
    """One encoded example: ``labels`` equals ``ids`` on answer tokens and :data:`IGNORE` elsewhere."""

    ids: tuple[int, ...]
    labels: tuple[int, ...]
    where: str
    """``file:line`` of the row, for messages."""

    @property
    def targets(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _chat(data: Mapping[str, Any], shape: str) -> list[dict[str, str]]:
    if shape == "messages":
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in data["messages"]]
    request = str(data["instruction"])
    if data.get("input"):
        request += "\n\n" + str(data["input"])
    return [{"role": "user", "content": request}, {"role": "assistant", "content": str(data["output"])}]


def prompt_and_answer(data: Mapping[str, Any], shape: str, tokenizer: Any) -> tuple[str, str]:
    """The text the model reads and the answer it should learn to write."""
    eos = tokenizer.eos_token or ""
    if shape == "prompt_completion":
        return str(data["prompt"]), str(data["completion"]) + eos
    messages = _chat(data, shape)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise ValueError("no assistant turn to learn")
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(messages[:last], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[: last + 1], tokenize=False)
        if full.startswith(prompt):
            return prompt, full[len(prompt):]
    turns = "".join(f"{m['role']}: {m['content']}\n" for m in messages[:last])
    return turns + "assistant: ", messages[last]["content"] + eos


def encode(prompt: str, answer: str, tokenizer: Any, max_tokens: int, where: str) -> tuple[Example | None, bool]:
    """Token ids and labels, and whether the prompt was cut (from the left, so the answer stays).

    None when the answer alone does not fit in ``max_tokens``.
    """
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    answer_ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    if not answer_ids or len(answer_ids) >= max_tokens:
        return None, False
    room = max_tokens - len(answer_ids)
    cut = len(prompt_ids) > room
    if cut:
        prompt_ids = prompt_ids[len(prompt_ids) - room:]
    labels = (IGNORE,) * len(prompt_ids) + tuple(answer_ids)
    return Example(tuple(prompt_ids + answer_ids), labels, where), cut


@dataclass(frozen=True)
class Examples:
    train: tuple[Example, ...]
    held_out: tuple[Example, ...]
    shape: str
    files: tuple[str, ...]
    notes: tuple[str, ...]
    """What the user should know (cut prompts, skipped rows)."""


def _held_out(text: str, fraction: float) -> bool:
    """A stable choice by content, so the same row is held out in every run."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load_examples(sources: Sequence[str], tokenizer: Any, max_tokens: int, eval_fraction: float,
                  eval_max_examples: int) -> Examples:
    """Read, encode and split the plan's data; bad data raises :class:`DataError` naming file and line."""
    if not sources:
        raise DataError("the plan lists no data: prompt tuning needs labeled examples "
                        f"({', '.join(SUPERVISED_SHAPES)} rows)")
    train: list[Example] = []
    held: list[Example] = []
    notes: list[str] = []
    files: list[str] = []
    shapes: set[str] = set()
    cut = 0
    for source in sources:
        loaded = load_dataset(source, expect=SUPERVISED_SHAPES)
        shapes.add(loaded.shape)
        files.extend(loaded.files)
        for row in loaded.rows:
            try:
                prompt, answer = prompt_and_answer(row.data, loaded.shape, tokenizer)
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{row.where}: cannot build a training example: {exc}") from None
            example, was_cut = encode(prompt, answer, tokenizer, max_tokens, row.where)
            if example is None:
                notes.append(f"{row.where}: skipped, the answer alone is longer than {max_tokens} tokens")
                continue
            cut += was_cut
            (held if _held_out(prompt + answer, eval_fraction) else train).append(example)
    if cut:
        notes.append(f"{cut} example(s) longer than {max_tokens} tokens: their prompts were cut from the left")
    if not held and len(train) > 1:
        held.append(train.pop())  # always keep something to measure before/after on
    if not train:
        raise DataError(f"{', '.join(sources)}: too few usable examples to train on ({len(held)} held out)")
    return Examples(tuple(train), tuple(held[:eval_max_examples]), "+".join(sorted(shapes)), tuple(files),
                    tuple(notes))
