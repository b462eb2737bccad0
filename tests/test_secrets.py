"""Secrets: with credential variables set to canary values, no file tunewise writes contains them.

Real ``tunewise run`` processes (training with checkpoints, in-context with the canary pasted into
the plan), a real RAG index, a decision log of answers that quote the canary and a label session
whose labeler and prompt carry it; then every byte under the output, cache and data folders is
scanned.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from support import run_cli
from tunewise.plugins.redaction import REDACTED, redact, redact_data, secret_values


def canaries() -> dict[str, str]:
    """One distinct random value per variable (HF_TOKEN also has the real hf_ token shape)."""
    tag = secrets.token_hex(6)
    return {
        "HF_TOKEN": "hf_" + secrets.token_hex(17),
        "HUGGING_FACE_HUB_TOKEN": f"hub-canary-{tag}",
        "WANDB_API_KEY": f"wandb-canary-{tag}",
        "OPENAI_API_KEY": f"openai-canary-{tag}",
        "MY_DB_PASSWORD": f"db-canary-{tag}",
    }


def leaks(roots: list[Path], values: dict[str, str]) -> list[str]:
    """``file: VARIABLE`` for every file under ``roots`` holding a canary's bytes."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            data = path.read_bytes()
            found += [f"{path}: {name}" for name, value in values.items() if value.encode() in data]
    return found


def environment(tmp_path: Path, values: dict[str, str]) -> dict[str, str]:
    return {**values, "TUNEWISE_CACHE_DIR": str(tmp_path / "cache"), "TUNEWISE_DATA_DIR": str(tmp_path / "data-dir")}


def test_secret_values_come_from_credential_variables() -> None:
    env = {"HF_TOKEN": "hf_abcdefgh12345678", "SERVICE_SECRET": "s3cr3t-value", "API_KEY": "short",
           "TOKENIZERS_PARALLELISM": "false-but-long-enough", "HOME": "/home/someone-long", "X_PASSWORD": " pw-123456 "}
    assert set(secret_values(env)) == {"hf_abcdefgh12345678", "s3cr3t-value", "pw-123456"}


def test_redaction_reaches_escaped_and_nested_values() -> None:
    secret = 'tok"en\\with ünïcode'
    data = {"a": [f"x {secret} y", {"k": secret}], secret: 1, "n": 3}
    cleaned = redact_data(data, (secret,))
    assert secret not in json.dumps(cleaned, ensure_ascii=False) and secret not in json.dumps(cleaned)
    assert cleaned["a"][0] == f"x {REDACTED} y" and cleaned["n"] == 3
    # Only values are matched: a name merely shaped like a token (a data file, a model) is left alone.
    shaped = "data sk-support-chats-train-v1.jsonl and model hf_" + "a1" * 20
    assert redact(shaped, ()) == shaped and redact_data({shaped: [shaped]}, ()) == {shaped: [shaped]}


def chat_plan(folder: Path, model: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"Where is order {i}?"},
                          {"role": "assistant", "content": f"Order {i} ships in {i % 4 + 1} days."}]} for i in range(16)]
    (folder / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.yaml"
    plan.write_text(f"method: full_finetune\nmodel: {model}\ndata: chat.jsonl\noutput_dir: {folder / 'out'}\n"
                    "training: {max_steps: 2, save_steps: 1, batch_size: 2, seq_len: 128, generation_examples: 1, "
                    "max_new_tokens: 4}\n")
    return plan


def test_training_run_writes_no_secret(tmp_path: Path, tiny_model_dir: Path) -> None:
    values = canaries()
    plan = chat_plan(tmp_path / "project", tiny_model_dir)
    result = run_cli("run", str(plan), "--events", "-", "--quiet", "--allow-outside-paths",  # the tiny model
                     env=environment(tmp_path, values), cwd=plan.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    out = plan.parent / "out"
    assert list((out / "checkpoints").glob("step-*")) and (out / "events.jsonl").is_file()
    assert not [name for name, value in values.items() if value in result.stdout + result.stderr]
    assert leaks([tmp_path], values) == []


def test_secret_pasted_into_a_plan_is_redacted_everywhere(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A user pastes a token into the plan's system prompt: the events, report and predictions hold [redacted]."""
    values = canaries()
    folder = tmp_path / "project"
    folder.mkdir()
    rows = [{"instruction": "Classify: billing or delivery.", "input": text, "output": label}
            for label, texts in {"billing": ["charged twice", "refund my fee", "wrong invoice"],
                                 "delivery": ["where is my parcel", "never arrived", "no tracking"]}.items()
            for text in texts]
    (folder / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.yaml"
    plan.write_text(f"method: in_context\nmodel: {tiny_model_dir}\ndata: d.jsonl\noutput_dir: {folder / 'out'}\n"
                    f"config: {{shots: 1, selection: random, eval_fraction: 0.34, max_new_tokens: 2, "
                    f"system_prompt: 'Answer in one word. API key {values['OPENAI_API_KEY']}'}}\n")
    result = run_cli("run", str(plan), "--allow-outside-paths",  # the tiny model lives outside the project
                     env=environment(tmp_path, values), cwd=folder)  # progress on stderr too
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [name for name, value in values.items() if value in result.stdout + result.stderr]
    written = [p for p in (folder / "out").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"events.jsonl", "report.md", "predictions.jsonl"}
    assert REDACTED in (folder / "out" / "events.jsonl").read_text()  # the start event's plan, redacted
    assert leaks([folder / "out", tmp_path / "cache", tmp_path / "data-dir"], values) == []


def test_rag_index_writes_no_secret(tmp_path: Path) -> None:
    values = canaries()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Returns\nItems can be returned within 30 days of delivery.\n")
    (docs / "b.md").write_text("# Shipping\nOrders ship within two business days.\n")
    result = run_cli("rag", "index", str(docs), "--index", str(tmp_path / "index"), env=environment(tmp_path, values))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "index" / "manifest.json").is_file()
    assert leaks([tmp_path], values) == []


def test_decision_log_and_label_files_hold_no_pasted_secret(tmp_path: Path, monkeypatch) -> None:
    from tunewise.advisor.answers import parse_answers
    from tunewise.advisor.decision_log import DecisionLog
    from tunewise.advisor.labeling import LabelingSession, load_prompts
    from tunewise.advisor.ranking import rank

    values = canaries()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    token = values["HF_TOKEN"]
    profile = parse_answers(f"use_case: 'support bot; our hub token is {token}'\ngoals: [task]\n"
                            "data: {labeled_examples: 3000}\n")
    log = DecisionLog.start(tmp_path / "decisions")
    log.record("answers", {"profile": profile, "raw": f"HF_TOKEN={token}"})
    log.record("ranking", rank(profile).to_dict())
    log.record("note", {"text": f"wandb {values['WANDB_API_KEY']} and \"{values['MY_DB_PASSWORD']}\""})

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": f"Is {values['MY_DB_PASSWORD']} a good password?",
                                   "candidates": ["No.", f"Yes, {values['MY_DB_PASSWORD']} is fine."]}) + "\n"
                       + json.dumps({"prompt": "Say hi", "candidates": ["hi", "hello"]}) + "\n")
    session = LabelingSession(load_prompts(prompts), tmp_path / "labels" / "prefs.jsonl",
                              labeler=f"ops {values['HUGGING_FACE_HUB_TOKEN']}")
    first = session.next_prompt()
    assert first is not None
    session.choose(first, 0)
    second = session.next_prompt()
    assert second is not None
    session.skip(second)
    written = sorted(p.name for p in tmp_path.rglob("*.jsonl"))
    assert len(written) >= 3 and os.path.getsize(log.path) > 0
    assert leaks([tmp_path / "decisions", tmp_path / "labels"], values) == []
    assert REDACTED in log.path.read_text()
