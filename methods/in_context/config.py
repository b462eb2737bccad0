"""Settings of an in-context learning plan (the ``config:`` block of a plan whose method is ``in_context``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from tunewise.plugins.errors import TunewiseError

Selection = Literal["random", "knn", "mmr"]
SELECTIONS: tuple[str, ...] = get_args(Selection)


@dataclass
class InContextConfig:
    """Which labeled examples go into each prompt, and how zero- and few-shot answers are compared.

    Fields marked ``"path"`` name files: plan loading confines them like ``data:`` and the run opens
    them through :meth:`~tunewise.plugins.types.Plan.config_path`.
    """

    selection: Selection = field(
        default="knn",
        metadata={"help": "how examples are picked per query: random, knn (the most similar inputs, by "
                          "MiniLM embeddings) or mmr (similar but not redundant)"},
    )
    compare_selections: bool = field(
        default=True, metadata={"help": "also evaluate the other two selection strategies (more generations)"}
    )
    shots: int = field(default=8, metadata={"help": "most examples per prompt"})
    prompt_token_budget: int = field(
        default=400,
        metadata={"help": "most prompt tokens the examples may add to a query (the cost paid on every query)"},
    )
    mmr_lambda: float = field(
        default=0.5, metadata={"help": "MMR trade-off: 1 = only similarity to the query, 0 = only diversity"}
    )
    eval_data: str | None = field(
        default=None,
        metadata={"help": "held-out labeled file to evaluate on; None = hold out eval_fraction of the data",
                  "path": "read"},
    )
    eval_fraction: float = field(
        default=0.3, metadata={"help": "share of the data held out for evaluation when eval_data is None"}
    )
    max_eval: int | None = field(
        default=None,
        metadata={"help": "most held-out examples evaluated (each costs generations); None = every held-out "
                          "example"},
    )
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "system message for every prompt; None = the data's own (messages with a system "
                          "turn) or none"},
    )
    embedding_model: str | None = field(
        default=None,
        metadata={"help": "sentence-transformers model for knn/mmr: a local folder, or None for the bundled "
                          "all-MiniLM-L6-v2", "path": "read"},
    )
    max_new_tokens: int = field(
        default=256,
        metadata={"help": "most tokens of a generated answer; each run stops answers at the longest reference "
                          "answer plus a margin (so labels stay short), never above this"},
    )
    seed: int = field(default=0, metadata={"help": "seed of the held-out split and of random selection"})

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every setting that cannot work; the plan loader reports them by line."""
        found: list[tuple[str, str]] = []
        if self.selection not in SELECTIONS:
            found.append(("selection", f"{self.selection!r} is not one of {', '.join(SELECTIONS)}"))
        if self.shots < 1:
            found.append(("shots", f"must be at least 1 (got {self.shots})"))
        if self.prompt_token_budget < 1:
            found.append(("prompt_token_budget", f"must be at least 1 (got {self.prompt_token_budget})"))
        if not 0.0 <= self.mmr_lambda <= 1.0:
            found.append(("mmr_lambda", f"must be between 0 and 1 (got {self.mmr_lambda})"))
        if not 0.0 < self.eval_fraction < 1.0:
            found.append(("eval_fraction", f"must be between 0 and 1, exclusive (got {self.eval_fraction})"))
        if self.max_eval is not None and self.max_eval < 1:
            found.append(("max_eval", f"must be at least 1 (got {self.max_eval})"))
        if self.max_new_tokens < 1:
            found.append(("max_new_tokens", f"must be at least 1 (got {self.max_new_tokens})"))
        return found

    def check(self) -> None:
        """Raise one error listing every problem."""
        found = self.problems()
        if found:
            raise TunewiseError("in_context config: " + "; ".join(f"{name}: {message}" for name, message in found))
