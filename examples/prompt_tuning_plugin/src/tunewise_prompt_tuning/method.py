"""The ``prompt_tuning`` method: identity, plan settings, and where fit / estimate / run live."""

from __future__ import annotations

from typing import ClassVar

from tunewise.plugins import EventSink, Fit, Hardware, Plan, Profile, Quote, RunResult

from tunewise_prompt_tuning.settings import PromptTuningSettings


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
