"""Few-shot prompts in the model's own chat template: examples as earlier user/assistant turns.

Each chosen example becomes a user turn and an assistant turn before the query, so the model sees the
task's answer format exactly as it will be asked to produce it. The most relevant example goes last,
next to the query. Token costs are measured with the real template, so the budget caps what the
examples add to every prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunewise.methods.in_context.examples import Example, Turn

_PROBE = "?"
"""A stand-in query for measuring what an example adds to a prompt."""


class PromptBuilder:
    """Builds and measures prompts for one tokenizer (with a chat template) and system prompt."""

    def __init__(self, tokenizer: Any, system: str | None = None) -> None:
        if not getattr(tokenizer, "chat_template", None):
            from tunewise.plugins.errors import TunewiseError

            raise TunewiseError("the model's tokenizer has no chat template; in-context prompts are built with "
                                "it (use an instruction-tuned model)")
        self.tokenizer = tokenizer
        self.system = system

    def _head(self, query: Example) -> list[Turn]:
        system = self.system if self.system is not None else query.system
        return [{"role": "system", "content": system}] if system else []

    def messages(self, examples: Sequence[Example], query: Example) -> list[Turn]:
        """System turn, then the examples (given best first, placed best last), then the query's turns."""
        turns = self._head(query)
        for example in reversed(examples):
            turns.extend(example.messages())
        turns.extend(query.prompt_messages())
        return turns

    def text(self, messages: list[Turn]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def count(self, messages: list[Turn]) -> int:
        """Tokens of the full prompt (template included, generation prompt added)."""
        return len(self.tokenizer(self.text(messages), add_special_tokens=False)["input_ids"])

    def example_cost(self, example: Example, query: Example | None = None) -> int:
        """Tokens one example adds to a prompt."""
        probe = query or Example((("user", _PROBE),), "", example.system)
        return self.count(self.messages([example], probe)) - self.count(self.messages([], probe))
