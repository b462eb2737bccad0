"""The prompt_tuning plugin: Method contract (author kit), advice rules, cost quote, settings, a real run."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest
from tunewise.plugins import DataProfile, Hardware, ModelProfile, Plan, Profile
from tunewise.plugins.costs import resolve_shape
from tunewise.plugins.events import make_event
from tunewise.plugins.testing import check_method
from tunewise_prompt_tuning.advice import MANY_TASKS_QUESTION, QUESTIONS, TASK_COUNT_QUESTION, estimate, fit
from tunewise_prompt_tuning.method import PromptTuningMethod
from tunewise_prompt_tuning.settings import PlanSettingsError, read_settings

REVIEWS = Path(__file__).resolve().parents[1] / "data" / "reviews.jsonl"
A100 = Hardware("A100-80GB", peak_tflops=312, memory_gb=80, usd_per_hour_low=1.2, usd_per_hour_high=2.5)

MULTI_TASK = Profile(use_case="triage tickets, tag intents, pick a reply template", goals=("task", "format"),
                     data=DataProfile(labeled_examples=5000), model=ModelProfile(params_b=13),
                     extra={MANY_TASKS_QUESTION: True, TASK_COUNT_QUESTION: 12})


def test_conforms_to_the_method_contract(tunewise_tiny_model: Path, tmp_path: Path) -> None:
    result = check_method(PromptTuningMethod, model=str(tunewise_tiny_model), data=[str(REVIEWS)],
                          output_dir=tmp_path, training={"max_steps": 2, "batch_size": 2, "generation_examples": 2})
    assert result is not None and result.status == "completed" and result.steps == 2
    assert set(result.metrics_before) >= {"loss", "perplexity", "exact_match"}


def test_learns_and_saves_the_prompt(tunewise_tiny_model: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    plan = Plan("prompt_tuning", model=str(tunewise_tiny_model), data=(str(REVIEWS),),
                config={"num_virtual_tokens": 8, "init": "random"},
                training={"max_steps": 8, "batch_size": 4, "learning_rate": 0.1, "seed": 1,
                          "generation_examples": 0},
                output_dir=str(tmp_path))
    result = PromptTuningMethod().run(plan, lambda kind, **f: events.append(make_event(kind, **f)))
    assert result.status == "completed"
    assert result.metrics_after["loss"] < result.metrics_before["loss"]
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 1 and kinds.count("progress") == 8 and "checkpoint" in kinds
    assert [e["phase"] for e in events if e["event"] == "eval"] == ["before", "after"]
    adapter = Path(result.artifacts["adapter"])
    assert (adapter / "adapter_model.safetensors").is_file()
    saved = json.loads((adapter / "adapter_config.json").read_text())
    assert saved["peft_type"] == "PROMPT_TUNING" and saved["num_virtual_tokens"] == 8
    assert "| loss |" in Path(result.artifacts["report"]).read_text()


def test_many_tasks_answer_is_quoted_and_raises_the_score() -> None:
    many = fit(MULTI_TASK)
    single = fit(replace(MULTI_TASK, extra={MANY_TASKS_QUESTION: False}))
    assert many.score > single.score
    assert any(QUESTIONS[0].text in r for r in many.reasons)
    assert any("12 tasks" in r for r in many.reasons)
    assert any("13B parameters" in r for r in many.reasons)


def test_no_examples_blocks_and_small_models_are_warned_about() -> None:
    blocked = fit(replace(MULTI_TASK, data=DataProfile()))
    assert blocked.blockers and blocked.score <= 0.1
    small = fit(replace(MULTI_TASK, model=ModelProfile(params_b=0.135)))
    assert small.score < fit(MULTI_TASK).score
    assert any("trails fine-tuning" in r for r in small.reasons)


def test_quote_uses_tunewise_formulas_without_adapter_weights() -> None:
    quote = estimate(MULTI_TASK, A100)
    shape = resolve_shape(None, 13)
    assert quote.assumptions["trainable_params"] == 20 * shape.hidden
    assert "lora_rank" not in quote.assumptions
    tokens = 5000 * (350 + 20) * 5
    assert quote.assumptions["tokens"] == tokens
    assert quote.flops == pytest.approx(quote.assumptions["flops_per_token"] * tokens)
    # Frozen bf16 base (2 bytes/param) + activations: far below full fine-tuning's 16 bytes/param.
    assert 2 * shape.params / 1e9 < quote.peak_memory_gb < 16 * shape.params / 1e9
    assert quote.human_time and quote.fits


def test_bad_settings_name_their_fields() -> None:
    plan = Plan("prompt_tuning", config={"num_virtual_tokens": 0, "colour": "red"},
                training={"batch_size": 0, "packing": True}, source="plan.yaml")
    with pytest.raises(PlanSettingsError) as err:
        read_settings(plan)
    text = str(err.value)
    for expected in ("plan.yaml: config.colour: unknown setting", "config.num_virtual_tokens",
                     "training.batch_size: must be a whole number"):
        assert expected in text
    _, _, ignored = read_settings(Plan("prompt_tuning", training={"packing": True}))
    assert ignored == ["packing"]


def _installed() -> bool:
    return any(ep.value == "tunewise_prompt_tuning.plugin" for ep in metadata.entry_points(group="tunewise"))


@pytest.mark.skipif(not _installed(), reason="the package is not installed (pip install -e .)")
def test_host_loads_it_through_the_entry_point(tunewise_host) -> None:  # type: ignore[no-untyped-def]
    assert tunewise_host.methods["prompt_tuning"] is PromptTuningMethod
    questions = [q for _, q in tunewise_host.collect("tunewise_register_questions")]
    assert {MANY_TASKS_QUESTION, TASK_COUNT_QUESTION} <= {q.id for q in questions}
