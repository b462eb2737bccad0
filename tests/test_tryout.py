"""``tunewise chat`` and :func:`tunewise.advisor.tryout.open_run` on real runs of a tiny random model.

Full fine-tuning, LoRA, in-context and RAG runs are made with ``tunewise run`` (2 steps where there is
training); then the base and the result answer the same prompt. Also: the prompt is built the way the
run's evaluation builds it (chat template, the instruction every row shares, the picked examples),
answers stream and cancel, and every folder that cannot be tried is refused with a message naming
what is wrong (not a run, unfinished, failed, cancelled, nothing to chat with, base gone or changed,
data outside the run folder and the working directory).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from support import run_cli
from tunewise.advisor.tryout import TryOutError, open_run, read_run
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.events import JsonlEventWriter

INSTRUCTION = "Answer the customer's question about their order."
PROMPT = "What is the status of order 1003?"
LABELS = {"billing": ["I was charged twice", "Refund my last invoice", "Why is my bill so high"],
          "delivery": ["Where is my parcel", "The package never arrived", "Tracking shows no update"],
          "account": ["I cannot log in", "Reset my password please", "My account is locked"]}


def _rows() -> str:
    rows = [{"instruction": INSTRUCTION, "input": f"What is the status of order {1000 + i}?",
             "output": f"Order {1000 + i} ships in {i % 5 + 1} days."} for i in range(24)]
    return "".join(json.dumps(r) + "\n" for r in rows)


TRAINING = "training: {max_steps: 2, batch_size: 2, seq_len: 64, learning_rate: 5.0e-2, precision: fp32, " \
           "generation_examples: 0, save_steps: 100, max_new_tokens: 8}\n"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A folder holding a copy of the tiny model, the data and one finished run per method."""
    root = tmp_path_factory.mktemp("tryout")
    shutil.copytree(tiny_model_dir, root / "base")
    (root / "orders.jsonl").write_text(_rows())
    (root / "intents.jsonl").write_text("".join(
        json.dumps({"instruction": "Classify the message: billing, delivery or account.", "input": text,
                    "output": label}) + "\n" for label, texts in LABELS.items() for text in texts))
    docs = root / "docs"
    docs.mkdir()
    (docs / "shipping.txt").write_text("Shipping\nOrders ship from the Oslo warehouse within two days. "
                                       "Express orders ship the same day.")
    (docs / "returns.txt").write_text("Returns\nItems can be returned within 30 days for a full refund.")
    plans = {
        "full_finetune": "method: full_finetune\nmodel: base\ndata: orders.jsonl\n" + TRAINING,
        "lora": "method: lora\nmodel: base\ndata: orders.jsonl\n" + TRAINING,
        "in_context": "method: in_context\nmodel: base\ndata: intents.jsonl\nconfig: {shots: 2, "
                      "prompt_token_budget: 200, eval_fraction: 0.35, max_new_tokens: 3, compare_selections: false}\n",
        "rag": "method: rag\nmodel: base\ndata: docs\nconfig: {k: 2, answer_questions: 0, max_new_tokens: 8}\n",
    }
    from tunewise.advisor.cli import main

    here = Path.cwd()
    os.chdir(root)  # where a user runs them: plans name the model and data relative to this folder
    try:
        for name, text in plans.items():  # in this process: the command's own code, without a new interpreter
            (root / f"{name}.yaml").write_text(text + f"output_dir: runs/{name}\n")
            assert main(["run", f"{name}.yaml", "--quiet"]) == 0, name
    finally:
        os.chdir(here)
    return root


def chat(work: Path, run: str, *args: str) -> dict[str, Any]:
    proc = run_cli("chat", f"runs/{run}", "--prompt", PROMPT, "--format", "json", "--max-new-tokens", "8", *args,
                   cwd=work)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    out: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


def test_full_finetune_chat_compares_base_and_result(work: Path) -> None:
    import torch

    out = chat(work, "full_finetune", "--compare")
    base, result = out["answers"]["base"], out["answers"]["result"]
    assert out["method"] == "full_finetune" and out["max_new_tokens"] == 8
    assert "fine-tuned model" in result["model"] and result["model"].endswith("model")
    # Asked the way the run's evaluation asked: chat template, generation prompt, the rows' shared instruction.
    assert base["prompt"] == result["prompt"]
    assert f"{INSTRUCTION}\n\n{PROMPT}" in result["prompt"] and result["prompt"].rstrip().endswith("assistant")
    assert any(INSTRUCTION in note for note in out["notes"])  # and says so
    for reply in (base, result):
        assert 0 < reply["tokens"] <= 8 and reply["tokens_per_s"] > 0 and not reply["cancelled"]
    trained, original = weights(work / "runs/full_finetune/model"), weights(work / "base")
    assert any(not torch.equal(trained[k].float(), original[k].float()) for k in original)
    # The weights differ, and so do the answers: the tiny random base repeats a line break, which the
    # tuned model (lr 5e-2, 2 steps) no longer does.
    assert result["answer"] != base["answer"], out


def test_lora_result_is_the_adapter_and_the_base_is_it_switched_off(work: Path) -> None:
    import torch

    out = chat(work, "lora", "--compare")
    assert "LoRA adapter" in out["answers"]["result"]["model"] and set(out["answers"]) == {"base", "result"}
    adapter = weights(work / "runs/lora/adapter")
    moved = [k for k, v in adapter.items() if "lora_B" in k and v.abs().max() > 0]
    assert moved, "LoRA B starts at zero; 2 steps must move it"
    # B is tiny after 2 steps, so the greedy answers may well be equal; the adapter's effect shows in the
    # logits: the result side has it on, the base side (same network) has it off.
    tryout = open_run(work / "runs/lora", allow_outside_paths=True)
    result, base = tryout.sides["result"], tryout.sides["base"]
    assert result.model is base.model  # one network in memory
    _, ids = result.compose(PROMPT)
    with torch.no_grad():
        on = result.model(torch.tensor([ids])).logits
        with base.context():
            off = base.model(torch.tensor([ids])).logits
    assert not torch.equal(on, off)


def test_in_context_prompt_holds_the_examples_it_picked(work: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # neither the data nor the run folder is here
    run = work / "runs/in_context"
    # A run folder, like a plan, may come from someone else: it must not pick the files put into prompts.
    with pytest.raises(TryOutError, match=r"the examples file .*intents.jsonl lies outside the run folder .* "
                                          "--allow-outside-paths"):
        open_run(run)
    tryout = open_run(run, allow_outside_paths=True)
    base, result = (tryout.answer(PROMPT, which, max_new_tokens=3).to_json() for which in ("base", "result"))
    assert base["examples"] == [] and "zero-shot" in tryout.sides["base"].what
    assert 1 <= len(result["examples"]) <= 2
    for example in result["examples"]:
        assert example["where"].startswith(str(work / "intents.jsonl") + ":")
        assert example["input"] in result["prompt"] and f"{example['answer']}<|im_end|>" in result["prompt"]
        assert example["input"] not in base["prompt"]
    # The instruction every row shares goes with the query, zero-shot too (as in the run's evaluation).
    assert f"Classify the message: billing, delivery or account.\n\n{PROMPT}" in base["prompt"]
    assert result["prompt"].endswith(base["prompt"].split("<|im_start|>user\n", 1)[1])


def test_rag_answers_cite_the_index_and_the_base_is_closed_book(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from tunewise.advisor.cli import main

    question = "How fast do orders ship from the Oslo warehouse?"
    monkeypatch.chdir(work)
    assert main(["chat", "runs/rag", "--prompt", question, "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "Sources:\n[1] docs/shipping.txt" in out and "tokens/s]" in out  # the answer as given, then its sources
    tryout = open_run(work / "runs/rag")
    result = tryout.answer(question, "result", max_new_tokens=8)
    base = tryout.answer(question, "base", max_new_tokens=8)
    assert result.details["citations"], result.details
    assert {p["source"] for p in result.details["passages"]} >= {"docs/shipping.txt"}
    assert "Sources:" in result.answer and "[1] docs/shipping.txt" in result.answer
    assert "Passages:" in result.prompt or result.details["extractive"]
    assert "citations" not in base.details and "Passages:" not in base.prompt


def test_text_output_streams_the_result_for_each_prompt_read(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tunewise.advisor.cli import main

    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{PROMPT}\n\nHello\n"))  # two prompts and a blank line
    assert main(["chat", "runs/full_finetune", "--max-new-tokens", "4"]) == 0
    out, err = capsys.readouterr()
    assert out.count("tokens/s]") == 2 and "── base ──" not in out  # no --compare: the result only
    assert "result: fine-tuned model" in err


def test_cancel_ends_an_answer_early(work: Path) -> None:
    tryout = open_run(work / "runs/full_finetune", compare=False, allow_outside_paths=True)
    cancel = threading.Event()
    pieces: list[str] = []

    def stream(piece: str) -> None:
        pieces.append(piece)
        cancel.set()

    reply = tryout.answer(PROMPT, stream=stream, cancel=cancel, max_new_tokens=200)
    assert pieces and reply.cancelled and reply.tokens < 200
    with pytest.raises(TryOutError, match="base was not loaded"):
        tryout.answer(PROMPT, "base")
    with pytest.raises(TryOutError, match="prompt is empty"):
        tryout.answer("  ")
    with pytest.raises(TunewiseError, match=r"the prompt is [\d,]+ tokens .* this model reads at most 512: shorten it"):
        tryout.answer("order " * 600)


def _events(folder: Path, *events: tuple[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "events.jsonl", "w", encoding="utf-8") as stream:
        writer = JsonlEventWriter(stream)
        for kind, fields in events:
            writer(kind, **fields)
    return folder


START = ("start", {"method": "lora", "total_steps": 2, "plan": {"method": "lora", "model": None}})


@pytest.mark.parametrize(("case", "expected"), [
    ("missing", "folder not found"),
    ("empty", "is not a tunewise run folder: it has no events.jsonl"),
    ("unfinished", "has not finished"),
    ("failed", "failed: out of memory on cpu"),
    ("cancelled", "ended cancelled before saving its result"),
])
def test_folders_that_are_not_finished_runs_are_named(tmp_path: Path, case: str, expected: str) -> None:
    folder = tmp_path / "run"
    if case == "empty":
        folder.mkdir()
    elif case == "unfinished":
        _events(folder, START, ("progress", {"step": 1, "total_steps": 2, "loss": 1.0, "tokens_per_s": 1.0}))
    elif case in ("failed", "cancelled"):
        message = "out of memory on cpu" if case == "failed" else "cancelled at step 1"
        _events(folder, START, ("end", {"status": case, "result": {"status": case, "message": message}}))
    with pytest.raises(TryOutError, match=expected):
        read_run(folder)
    if case in ("empty", "failed"):  # the command says it in one line, before loading anything
        proc = run_cli("chat", str(folder), "--prompt", "hi")
        assert proc.returncode == 1 and proc.stderr.startswith("tunewise chat: error: ")
        assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_a_run_without_its_result_names_the_missing_file(work: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lora"
    shutil.copytree(work / "runs/lora", copy, ignore=shutil.ignore_patterns("adapter", "checkpoints"))
    with pytest.raises(TryOutError, match=r"nothing to chat with: the adapter's .*adapter[/\\]adapter_config.json "
                                          "is missing"):
        open_run(copy, allow_outside_paths=True)


def test_base_model_gone_or_changed_is_refused(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.plugins.testing import build_tiny_model

    monkeypatch.chdir(work)  # the plan named the base relative to where the run started
    base = work / "base"
    other = build_tiny_model(tmp_path / "other", seed=1)  # same layout, other weights
    saved = tmp_path / "saved"
    shutil.move(base, saved)
    try:
        with pytest.raises(TryOutError, match="base model of the run in .* is gone: model 'base' not found"):
            open_run("runs/lora")
        shutil.copytree(other, base)
        with pytest.raises(TryOutError, match=r"is not the one the run in .* trained from: its weights differ "
                                              r"\(model.safetensors"):
            open_run("runs/full_finetune")
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.move(saved, base)
