"""Labeled examples for prompts: read from the same formats fine-tuning uses, split into pool and held-out.

Shapes (see :mod:`tunewise.plugins.data`): ``instruction`` (user turn = instruction + input, answer =
output), ``prompt_completion`` (user turn = prompt, answer = completion) and ``messages`` (the turns
before the last assistant turn are the prompt, the last assistant turn is the answer; a leading system
turn becomes the system prompt).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tunewise.plugins.errors import TunewiseError

SHAPES = ("instruction", "prompt_completion", "messages")

Turn = dict[str, str]


class ExampleError(TunewiseError):
    """Labeled data that cannot serve as examples; the message names file and line."""


@dataclass(frozen=True)
class Example:
    """One input -> output pair."""

    turns: tuple[tuple[str, str], ...]
    """(role, content) of the prompt turns, ending with a user turn."""
    answer: str
    system: str | None = None
    where: str = ""

    def prompt_messages(self) -> list[Turn]:
        return [{"role": role, "content": content} for role, content in self.turns]

    def messages(self) -> list[Turn]:
        """The prompt turns followed by the answer: how the example appears in a few-shot prompt."""
        return [*self.prompt_messages(), {"role": "assistant", "content": self.answer}]

    @property
    def query_text(self) -> str:
        """The text compared for similarity: the user turns (the instruction shared by all rows cancels out)."""
        return "\n".join(content for role, content in self.turns if role == "user")


def _from_row(data: dict[str, object], shape: str, where: str) -> Example:
    if shape == "instruction":
        instruction = str(data.get("instruction", "")).strip()
        extra = str(data.get("input") or "").strip()
        user = f"{instruction}\n\n{extra}" if extra else instruction
        return Example((("user", user),), str(data.get("output", "")).strip(), None, where)
    if shape == "prompt_completion":
        return Example((("user", str(data.get("prompt", "")).strip()),), str(data.get("completion", "")).strip(),
                       None, where)
    messages = list(data.get("messages") or [])  # type: ignore[call-overload]
    system = None
    if messages and messages[0].get("role") == "system":
        system = str(messages[0].get("content", ""))
        messages = messages[1:]
    if not messages or messages[-1].get("role") != "assistant":
        raise ExampleError(f"{where}: a messages example must end with an assistant turn (the answer)")
    prompt = tuple((str(m.get("role")), str(m.get("content", ""))) for m in messages[:-1])
    if not prompt or prompt[-1][0] != "user":
        raise ExampleError(f"{where}: the turn before the answer must be a user turn")
    return Example(prompt, str(messages[-1].get("content", "")).strip(), system, where)


def load_examples(path: str | Path) -> list[Example]:
    """Examples from a labeled file or folder (instruction, prompt/completion or messages rows)."""
    from tunewise.plugins.data import load_dataset

    loaded = load_dataset(path, expect=SHAPES)
    examples = [_from_row(row.data, loaded.shape, row.where) for row in loaded.rows]
    empty = [e.where for e in examples if not e.answer]
    if empty:
        raise ExampleError(f"{len(empty)} examples have an empty answer: {', '.join(empty[:10])}")
    return examples


def _bucket(example: Example, seed: int) -> float:
    """A stable number in [0, 1) from the example's content: the split does not depend on file order."""
    digest = hashlib.sha256(f"{seed}\x00{example.query_text}\x00{example.answer}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_examples(examples: Sequence[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(pool, held-out): the ``eval_fraction`` of examples with the lowest content hashes are held out.

    Ranking by content hash makes the split independent of file order and exact in size.
    """
    if len(examples) < 2:
        raise ExampleError(f"{len(examples)} example(s) cannot be split into examples to pick from and examples "
                           "to evaluate; give more data or a separate eval_data file")
    count = min(max(1, round(eval_fraction * len(examples))), len(examples) - 1)
    ranked = sorted(range(len(examples)), key=lambda i: (_bucket(examples[i], seed), i))
    chosen = set(ranked[:count])
    held_out = [e for i, e in enumerate(examples) if i in chosen]
    pool = [e for i, e in enumerate(examples) if i not in chosen]
    return pool, held_out
