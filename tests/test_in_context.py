"""In-context learning: example store, selection strategies, token budget, chat-template prompts, run."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tunewise.methods.in_context.evaluate import ChatGenerator, Selector, evaluate_condition, exact_match
from tunewise.methods.in_context.examples import Example, ExampleError, load_examples, split_examples
from tunewise.methods.in_context.prompting import PromptBuilder
from tunewise.methods.in_context.selection import fit_budget, rank_knn, rank_mmr, rank_random
from tunewise.plugins.events import make_event
from tunewise.plugins.types import Plan

LABELS = {"billing": ["I was charged twice", "Refund the extra fee on my invoice", "My card was billed wrongly"],
          "delivery": ["Where is my parcel", "The package never arrived", "Tracking shows no update"],
          "account": ["I cannot log in", "Reset my password please", "My account is locked"]}


def write_instruction_data(path: Path) -> Path:
    rows = [{"instruction": "Classify the message: billing, delivery or account.", "input": text, "output": label}
            for label, texts in LABELS.items() for text in texts]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype="float32")
    return vector / np.linalg.norm(vector)


def test_knn_and_mmr_rankings() -> None:
    query = unit(1, 0, 0)
    pool = np.stack([unit(1, 0.05, 0), unit(1, 0.06, 0), unit(0.8, 0, 0.6), unit(0, 1, 0)])
    assert rank_knn(query, pool)[:3] == [0, 1, 2]
    # The second near-duplicate adds nothing new: MMR prefers the different, still relevant example.
    assert rank_mmr(query, pool, 0.5, limit=2)[:2] == [0, 2]
    assert rank_mmr(query, pool, 1.0, limit=2)[:2] == [0, 1]  # lambda 1 is plain similarity
    assert sorted(rank_mmr(query, pool, 0.5, limit=2)) == [0, 1, 2, 3]  # every example stays rankable
    first = rank_random(10, random.Random(3))
    assert first == rank_random(10, random.Random(3)) and sorted(first) == list(range(10))


def test_fit_budget_is_a_hard_cap() -> None:
    costs = [50, 300, 40, 40, 10]
    assert fit_budget([0, 1, 2, 3, 4], costs, budget=100, shots=8) == [0, 2, 4]  # 300 skipped, 40 no longer fits
    assert fit_budget([0, 1, 2, 3, 4], costs, budget=1000, shots=2) == [0, 1]
    assert fit_budget([1], costs, budget=100, shots=3) == []


def test_examples_from_every_shape(tmp_path: Path) -> None:
    [instruction] = load_examples(write_instruction_data(tmp_path / "i.jsonl"))[:1]
    assert instruction.turns == (("user", "Classify the message: billing, delivery or account.\n\n"
                                          "I was charged twice"),)
    assert instruction.answer == "billing" and instruction.where.endswith("i.jsonl:1")
    pc = tmp_path / "pc.jsonl"
    pc.write_text(json.dumps({"prompt": "2+2=", "completion": "4"}) + "\n")
    assert load_examples(pc)[0].messages() == [{"role": "user", "content": "2+2="},
                                               {"role": "assistant", "content": "4"}]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "system", "content": "Be terse."},
                                             {"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello"}]}) + "\n")
    [example] = load_examples(chat)
    assert example.system == "Be terse." and example.answer == "Hello" and example.turns == (("user", "Hi"),)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                            {"role": "assistant", "content": "Hello"},
                                            {"role": "user", "content": "again"}]}) + "\n")
    with pytest.raises(ExampleError, match="bad.jsonl:1: a messages example must end with an assistant turn"):
        load_examples(bad)


def test_split_is_stable_and_disjoint(tmp_path: Path) -> None:
    examples = load_examples(write_instruction_data(tmp_path / "d.jsonl"))
    pool, held_out = split_examples(examples, 0.3, seed=1)
    assert {e.where for e in pool}.isdisjoint({e.where for e in held_out})
    assert len(pool) + len(held_out) == len(examples) and len(held_out) == 3
    again_pool, _ = split_examples(list(reversed(examples)), 0.3, seed=1)
    assert {e.where for e in again_pool} == {e.where for e in pool}  # order of the file does not matter
    with pytest.raises(ExampleError, match="give more data"):
        split_examples(examples[:1], 0.5, seed=1)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from tunewise.plugins.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def test_prompt_uses_the_chat_template_with_examples_as_turns(tokenizer: Any, tmp_path: Path) -> None:
    examples = load_examples(write_instruction_data(tmp_path / "d.jsonl"))
    builder = PromptBuilder(tokenizer, system="Answer with one word.")
    query = examples[-1]
    best, second = examples[0], examples[3]
    text = builder.text(builder.messages([best, second], query))
    assert text.startswith("<|im_start|>system\nAnswer with one word.<|im_end|>")
    assert text.endswith(f"<|im_start|>user\n{query.turns[0][1]}<|im_end|>\n<|im_start|>assistant\n")
    # The best example sits next to the query; each example is a user turn answered by an assistant turn.
    assert text.index("I was charged twice") > text.index("Where is my parcel")
    assert "<|im_start|>assistant\nbilling<|im_end|>" in text
    zero = builder.count(builder.messages([], query))
    both = builder.count(builder.messages([best, second], query))
    assert both - zero == builder.example_cost(best) + builder.example_cost(second)


def test_budget_respected_in_real_prompts(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    from tunewise.plugins.models import load_model

    examples = load_examples(write_instruction_data(tmp_path / "d.jsonl"))
    pool, held_out = examples[:7], examples[7:]
    builder = PromptBuilder(tokenizer)
    costs = [builder.example_cost(e) for e in pool]
    budget = int(sum(sorted(costs)[:2]) + 1)  # room for two examples, not three
    selector = Selector(pool, costs, shots=5, budget=budget, strategy="random", seed=0)
    generate = ChatGenerator(load_model(str(tiny_model_dir), dtype="float32"), tokenizer, max_new_tokens=3)
    outcome = evaluate_condition("few-shot random", held_out, builder, generate, selector)
    assert all(r["extra_prompt_tokens"] <= budget for r in outcome.records)
    assert all(1 <= r["shots"] <= 2 for r in outcome.records)
    zero = evaluate_condition("zero-shot", held_out, builder, generate)
    assert zero.extra_tokens_per_query == 0 and all(r["shots"] == 0 for r in zero.records)
    assert outcome.prompt_tokens_per_query == pytest.approx(zero.prompt_tokens_per_query
                                                            + outcome.extra_tokens_per_query)


def test_exact_match_normalisation() -> None:
    assert exact_match("Billing.", "billing")
    assert exact_match("  billing\nbecause the card", "billing")
    assert not exact_match("The answer is billing", "billing")
    assert not exact_match("", "billing")


def test_semantic_selection_needs_embeddings() -> None:
    pool = [Example((("user", "x"),), "y")]
    with pytest.raises(ValueError, match="needs pool embeddings"):
        Selector(pool, [1], 1, 10, "knn")


def test_run_writes_report_and_events(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunewise.methods.in_context.run import run

    data = write_instruction_data(tmp_path / "d.jsonl")
    events: list[dict[str, Any]] = []
    plan = Plan(method="in_context", model=str(tiny_model_dir), data=(str(data),),
                config={"shots": 2, "prompt_token_budget": 200, "eval_fraction": 0.35, "max_new_tokens": 3},
                output_dir=str(tmp_path / "out"))
    result = run(plan, lambda kind, **fields: events.append(make_event(kind, **fields)))
    assert result.status == "completed"
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics) >= {"zero-shot", "few-shot knn", "few-shot mmr", "few-shot random"}
    assert metrics["zero-shot"]["extra_prompt_tokens"] == 0
    assert 0 < metrics["few-shot knn"]["extra_prompt_tokens"] <= 200
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| zero-shot |" in report and "few-shot knn (plan's choice)" in report
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and "eval" in kinds
    assert {e["phase"] for e in events if e["event"] == "eval"} == {"before", "after"}
    assert result.metrics_before["accuracy"] == metrics["zero-shot"]["accuracy"]


def test_bad_config_is_reported(tmp_path: Path) -> None:
    from tunewise.methods.in_context.run import config_from_plan
    from tunewise.plugins.errors import TunewiseError

    with pytest.raises(TunewiseError, match="unknown in-context settings bogus"):
        config_from_plan(Plan(method="in_context", config={"bogus": 1}))
    with pytest.raises(TunewiseError, match="mmr_lambda: must be between 0 and 1"):
        config_from_plan(Plan(method="in_context", config={"mmr_lambda": 3}))
