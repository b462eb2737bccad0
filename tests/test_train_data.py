"""Training data: chat-template encoding with answer-only loss, packing without contamination, the split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunewise.methods._hf.batches import block_causal_mask, collate
from tunewise.methods._hf.encoding import IGNORE, encode_documents, encode_supervised
from tunewise.methods._hf.packing import pack_documents, pack_examples
from tunewise.methods._hf.split import held_out_count, row_key, split_indices
from tunewise.plugins.data import DataError, Row


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def rows(shape_rows: list[dict]) -> list[Row]:
    return [Row(data, "data.jsonl", i) for i, data in enumerate(shape_rows, start=1)]


def trained_text(tokenizer, example) -> list[str]:
    """The text of each run of trained tokens (targets are shifted: target t is token t+1)."""
    runs, current = [], []
    for t, target in enumerate(example.targets):
        if target != IGNORE:
            assert target == example.input_ids[t + 1]
            current.append(target)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def test_only_assistant_tokens_and_their_end_of_turn_carry_loss(tokenizer) -> None:
    chat = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Where is my invoice?"},
                         {"role": "assistant", "content": "Settings > Billing > Invoices."}]}
    (example,), report = encode_supervised(rows([chat]), "messages", tokenizer, seq_len=256)
    assert report.examples == 1 and report.truncated == 0
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # why masks must never come from the pad id
    assert trained_text(tokenizer, example) == ["Settings > Billing > Invoices.<|im_end|>"]
    # Everything before the answer (system, user, the assistant header) is masked.
    first_trained = next(t for t, x in enumerate(example.targets) if x != IGNORE)
    prompt = tokenizer.decode(example.input_ids[: first_trained + 1])
    assert prompt.endswith("<|im_start|>assistant\n") and "Where is my invoice?" in prompt
    # The end-of-turn token is trained, the newline the template adds after it is not.
    assert example.targets[-2] == IGNORE and example.targets[-1] == IGNORE
    eos_at = len(example.input_ids) - 2
    assert example.input_ids[eos_at] == tokenizer.eos_token_id and example.targets[eos_at - 1] == tokenizer.eos_token_id
    # The generation prompt ends exactly where the trained answer starts.
    assert example.prompt_ids == example.input_ids[: first_trained + 1]
    assert example.reference == "Settings > Billing > Invoices."


def test_every_assistant_turn_of_a_conversation_trains(tokenizer) -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Reset my password"},
                         {"role": "assistant", "content": "Open the reset page."}]}
    (example,), _ = encode_supervised(rows([chat]), "messages", tokenizer, seq_len=256)
    assert trained_text(tokenizer, example) == ["Hello!<|im_end|>", "Open the reset page.<|im_end|>"]
    assert example.reference == "Open the reset page."


def test_instruction_and_prompt_completion_rows(tokenizer) -> None:
    (inst,), _ = encode_supervised(
        rows([{"instruction": "Translate to French", "input": "cat", "output": "chat"}]),
        "instruction", tokenizer, seq_len=256)
    assert trained_text(tokenizer, inst) == ["chat<|im_end|>"]
    assert "Translate to French\n\ncat" in tokenizer.decode(inst.input_ids)

    (plain,), _ = encode_supervised(rows([{"prompt": "2 + 2 =", "completion": " 4"}]), "prompt_completion",
                                    tokenizer, seq_len=256)
    prompt_len = len(tokenizer("2 + 2 =")["input_ids"])
    assert all(t == IGNORE for t in plain.targets[: prompt_len - 1])
    assert trained_text(tokenizer, plain) == [" 4<|im_end|>"]  # completion + EOS

    (everything,), _ = encode_supervised(rows([{"prompt": "2 + 2 =", "completion": " 4"}]), "prompt_completion",
                                         tokenizer, seq_len=256, loss_on="all")
    assert all(t != IGNORE for t in everything.targets[:-1])


def test_truncation_keeps_the_start_and_drops_examples_without_answer(tokenizer) -> None:
    long_question = "word " * 300
    data = [{"messages": [{"role": "user", "content": long_question}, {"role": "assistant", "content": "ok"}]},
            {"messages": [{"role": "user", "content": "short"}, {"role": "assistant", "content": "x " * 100}]}]
    examples, report = encode_supervised(rows(data), "messages", tokenizer, seq_len=64)
    assert report.truncated == 2
    assert report.dropped == ["data.jsonl:1"]  # its answer was cut off entirely
    assert len(examples) == 1 and len(examples[0].input_ids) == 64 and examples[0].targets[-1] == IGNORE


def test_packing_keeps_every_example_once_without_cross_example_targets(tokenizer) -> None:
    data = [{"messages": [{"role": "user", "content": f"Question {i} " + "more " * (i % 7)},
                          {"role": "assistant", "content": f"Answer {i}"}]} for i in range(40)]
    examples, _ = encode_supervised(rows(data), "messages", tokenizer, seq_len=128)
    packed = pack_examples(examples, 128)
    assert packed == pack_examples(examples, 128)  # deterministic
    assert all(len(p) <= 128 for p in packed)
    assert sorted(s for p in packed for s in p.sources) == sorted(e.where for e in examples)
    assert len(packed) < len(examples) / 2  # actually packs
    assert sum(p.num_targets for p in packed) == sum(e.num_targets for e in examples)
    for p in packed:
        starts = [t for t, pos in enumerate(p.position_ids) if pos == 0]
        assert len(starts) == len(p.sources)
        # The last token of every example predicts nothing (never the next example's first token).
        for end in [s - 1 for s in starts[1:]] + [len(p) - 1]:
            assert p.targets[end] == IGNORE


def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir: Path, tokenizer) -> None:
    """A packed row gives each example exactly the hidden states it gets alone."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    data = [{"messages": [{"role": "user", "content": f"Tell me about item {i}"},
                          {"role": "assistant", "content": f"Item {i} is fine."}]} for i in range(3)]
    examples, _ = encode_supervised(rows(data), "messages", tokenizer, seq_len=256)
    (row,) = pack_examples(examples, 256)
    batch = collate([row], tokenizer.pad_token_id)
    assert batch.attention_mask is not None and batch.attention_mask.shape == (1, 1, len(row), len(row))
    with torch.no_grad():
        packed = model.model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                             attention_mask=batch.attention_mask, use_cache=False).last_hidden_state[0]
        offset = 0
        for source in row.sources:
            ex = next(e for e in examples if e.where == source)
            alone = model.model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).last_hidden_state[0]
            torch.testing.assert_close(packed[offset:offset + len(ex.input_ids)], alone, rtol=1e-4, atol=1e-5)
            offset += len(ex.input_ids)


def test_block_mask_is_none_for_single_sequences_and_blocks_otherwise() -> None:
    import torch

    assert block_causal_mask(torch.arange(6).repeat(2, 1)) is None
    mask = block_causal_mask(torch.tensor([[0, 1, 2, 0, 1, 0]]))[0, 0]
    assert mask[4, 3] and mask[4, 4] and not mask[4, 2] and not mask[3, 0] and not mask[5, 4] and not mask[1, 2]


def test_documents_pack_to_full_sequences_with_targets_inside_each_document(tokenizer) -> None:
    docs = encode_documents(rows([{"text": "alpha " * 50}, {"text": "beta " * 30}, {"text": "gamma " * 70}]),
                            tokenizer)
    assert all(d.input_ids[-1] == tokenizer.eos_token_id for d in docs)
    packed = pack_documents(docs, 64)
    stream = [t for d in docs for t in d.input_ids]
    assert [t for p in packed for t in p.input_ids] == stream
    assert all(len(p) == 64 for p in packed[:-1])
    boundaries = {sum(len(d.input_ids) for d in docs[: i + 1]) - 1 for i in range(len(docs))}
    flat_targets = [t for p in packed for t in p.targets]
    for i, target in enumerate(flat_targets):
        assert target == (IGNORE if i in boundaries else stream[i + 1])
    # Positions restart at each document (no cross-document attention) ...
    assert sum(p.position_ids.count(0) for p in packed) >= len(docs)
    # ... unless the plan asks for GPT-style concatenation: then each sequence is one window.
    joined = pack_documents(docs, 64, cross_document_attention=True)
    assert all(p.position_ids == list(range(len(p))) for p in joined)


def test_split_is_deterministic_order_free_and_keeps_duplicates_together() -> None:
    data = [{"text": f"row {i}"} for i in range(100)] + [{"text": "dup"}] * 3
    keys = [row_key(d) for d in data]
    train, held = split_indices(keys, 0.1, 200, seed=1)
    assert (train, held) == split_indices(keys, 0.1, 200, seed=1)
    assert len(held) in (10, 12) and not set(train) & set(held) and len(train) + len(held) == len(data)
    dup_sides = {i in held for i in range(100, 103)}
    assert len(dup_sides) == 1
    reversed_held = split_indices(list(reversed(keys)), 0.1, 200, seed=1)[1]
    assert sorted(keys[i] for i in held) == sorted(list(reversed(keys))[i] for i in reversed_held)
    assert split_indices(keys, 0.1, 200, seed=2)[1] != held
    assert held_out_count(100, 0.1, 5) == 5 and held_out_count(1, 0.5, 5) == 0 and held_out_count(3, 0.01, 5) == 1


def test_bad_row_stops_the_run_before_the_model_loads(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The model folder here has unloadable weights: reaching the model would fail differently."""
    import shutil

    from tunewise.methods.lora.run import run
    from tunewise.plugins.types import Plan

    broken_model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken_model)
    (broken_model / "model.safetensors").write_bytes(b"not a safetensors file")
    data = tmp_path / "chat.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n"
                    + json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n{oops\n")
    events: list[tuple[str, dict]] = []
    plan = Plan(method="lora", model=str(broken_model), data=(str(data),), output_dir=str(tmp_path / "out"))
    with pytest.raises(DataError) as info:
        run(plan, lambda kind, **fields: events.append((kind, fields)))
    message = str(info.value)
    assert f"{data}:3: no assistant turn" in message and f"{data}:4: invalid JSON" in message
    assert events == [] and not (tmp_path / "out").exists()
