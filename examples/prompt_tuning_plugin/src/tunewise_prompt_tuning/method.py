"""The ``prompt_tuning`` method: identity, plan settings, and where fit / estimate / run live."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from tunewise.plugins import EventSink, Fit, Hardware, Plan, Profile, Quote, RunResult

INIT_CHOICES = ("text", "sample_vocab", "random")


@dataclass(frozen=True)
class PromptTuningSettings:
    """The ``config:`` section of a prompt-tuning plan."""

    num_virtual_tokens: int = field(
        default=20, metadata={"help": "trainable embeddings prepended to every input (Lester et al.: 20-100)"}
    )
    init: str = field(
        default="text",
        metadata={"help": "start from the embeddings of init_text (text), random vocabulary tokens "
                          "(sample_vocab) or random vectors (random); text converges fastest"},
    )
    init_text: str = field(
        default="Read the request and answer in the expected format:",
        metadata={"help": "words whose embeddings initialise the virtual tokens when init is text"},
    )

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for each bad value."""
        out: list[tuple[str, str]] = []
        n = self.num_virtual_tokens
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 512:
            out.append(("num_virtual_tokens", f"must be a whole number from 1 to 512, got {n!r}"))
        if self.init not in INIT_CHOICES:
            out.append(("init", f"must be one of {', '.join(INIT_CHOICES)}, got {self.init!r}"))
        if self.init == "text" and not (isinstance(self.init_text, str) and self.init_text.strip()):
            out.append(("init_text", "must be non-empty text when init is text"))
        return out


class PromptTuningMethod:
    """Trainable virtual tokens in front of a frozen model (peft ``PromptTuningConfig``)."""

    id: ClassVar[str] = "prompt_tuning"
    title: ClassVar[str] = "Prompt tuning"
    summary: ClassVar[str] = ("Learn a few virtual-token embeddings in front of a frozen model: "
                              "kilobytes per task, many tasks served by one model.")
    config_class: ClassVar[type[PromptTuningSettings] | None] = PromptTuningSettings
    needs_training: ClassVar[bool] = True

    def fit(self, profile: Profile) -> Fit:
        from tunewise_prompt_tuning.advice import fit

        return fit(profile)

    def estimate(self, profile: Profile, hardware: Hardware) -> Quote:
        from tunewise_prompt_tuning.advice import estimate

        return estimate(profile, hardware)

    def run(self, plan: Plan, events: EventSink) -> RunResult:
        from tunewise_prompt_tuning.training import run

        return run(plan, events)
