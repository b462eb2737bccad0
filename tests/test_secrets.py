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
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import REPO, run_cli
from tunewise.plugins.redaction import REDACTED, redact, redact_data, redacted_repr, seal_data, secret_values


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
    # A multi-line key is also matched line by line (consoles are redacted a line at a time); a variable
    # naming where a secret lives (an existing absolute path) is a location, not a secret.
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n-----END KEY-----"
    found = secret_values({"DEPLOY_PRIVATE_KEY": pem, "HF_TOKEN_PATH": str(Path(__file__))})
    assert set(found) == {pem, "-----BEGIN KEY-----", "MIIEvQIBADANBgkq", "-----END KEY-----"}


def test_redaction_reaches_escaped_and_nested_values() -> None:
    secret = 'tok"en\\with ünïcode'
    data = {"a": [f"x {secret} y", {"k": secret}], secret: 1, "n": 3}
    cleaned = redact_data(data, (secret,))
    assert secret not in json.dumps(cleaned, ensure_ascii=False) and secret not in json.dumps(cleaned)
    assert cleaned["a"][0] == f"x {REDACTED} y" and cleaned["n"] == 3
    # Only values are matched: a name merely shaped like a token (a data file, a model) is left alone.
    shaped = "data sk-support-chats-train-v1.jsonl and model hf_" + "a1" * 20
    assert redact(shaped, ()) == shaped and redact_data({shaped: [shaped]}, ()) == {shaped: [shaped]}


def test_redacted_repr_redacts_before_quoting_and_cutting(monkeypatch) -> None:
    secret = 'k"ey\\ünï-' + secrets.token_hex(20)
    monkeypatch.setenv("SERVICE_API_KEY", secret)
    for value in ("x" * 70 + secret, [1, {"k": secret}], secret.upper()):
        shown = redacted_repr(value, 80)
        assert REDACTED in shown and not any(secret[i:i + 12].lower() in shown.lower() for i in range(len(secret) - 11))
    assert redacted_repr("y" * 100, 80) == repr("y" * 80) + "…"
    # Text that quotes the secret (a repr inside JSON, in capitals) is matched too.
    assert redact(json.dumps({"message": f"got {secret!r}"}).upper()) == json.dumps({"message": "got '[REDACTED]'"}) \
        .upper().replace("[REDACTED]", REDACTED)


def test_records_read_back_keep_names_and_seal_secrets(monkeypatch, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A resume identity: token-shaped names stored as they are, a string holding a secret as its hash."""
    from tunewise.methods._hf.identity import identity_differences, run_identity

    token = "acct-" + secrets.token_hex(8)
    monkeypatch.setenv("DATASET_ACCESS_TOKEN", token)
    shaped, holding = tmp_path / "sk-support-chats-train-v1.jsonl", tmp_path / f"extra-{token}.jsonl"
    for path in (shaped, holding):
        path.write_text('{"text": "hello"}\n')
    identity = run_identity(method="lora", model_name="hf_" + "a1" * 20, model_path=tiny_model_dir,
                            data_files=[str(shaped), str(holding)], config={"target_modules": ["q_proj", token]},
                            training={"seed": 1}, precision="fp32", device_type="cpu")
    stored = json.dumps(seal_data(identity))
    assert token not in stored and str(shaped) in stored and "hf_" + "a1" * 20 in stored
    assert identity_differences(json.loads(stored), identity) == []
    changed = {**identity, "config": {"target_modules": ["q_proj", token + "x"]}}
    assert [d.split(":")[0] for d in identity_differences(json.loads(stored), changed)] == ["config.target_modules"]


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


# -- names shaped like tokens, and records read back ------------------------------------------------
# Redaction matches secret values, never shapes: a data file, an output folder or a corpus file merely
# *named* like a token is stored as it is wherever tunewise reads it back (checkpoint state, RAG
# manifest, label decisions), so resuming and reopening work; a string that does hold a secret is
# stored as its hash in those records and still compares equal.

SHAPED_DATA = "sk-support-chats-train-v1.jsonl"


def shaped_folder() -> str:
    return "hf_" + secrets.token_hex(17)  # the hf_ token shape: 34 letters and digits


def test_training_run_with_token_shaped_names_resumes(tmp_path: Path, tiny_model_dir: Path) -> None:
    values = {**canaries(), "DATASET_ACCESS_TOKEN": "acct-" + secrets.token_hex(6)}
    project = tmp_path / "project"
    project.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"Where is order {i}?"},
                          {"role": "assistant", "content": f"Order {i} ships in {i % 4 + 1} days."}]} for i in range(24)]
    (project / SHAPED_DATA).write_text("".join(json.dumps(r) + "\n" for r in rows[:16]))
    holding = f"extra-{values['DATASET_ACCESS_TOKEN']}.jsonl"  # a name that holds a secret: stored as its hash
    (project / holding).write_text("".join(json.dumps(r) + "\n" for r in rows[16:]))
    out = project / shaped_folder()
    plan = project / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {tiny_model_dir}\ndata: [{SHAPED_DATA}, {holding}]\noutput_dir: {out}\n"
                    "training: {max_steps: 30, save_steps: 2, batch_size: 2, seq_len: 64, generation_examples: 1, "
                    "max_new_tokens: 2, early_stopping_patience: 0}\n")  # the resume must reach step 30
    command = [sys.executable, "-m", "tunewise.advisor.cli", "run", str(plan), "--quiet", "--allow-outside-paths"]
    env = {**os.environ, **environment(tmp_path, values)}
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    events = out / "events.jsonl"
    try:
        deadline = time.monotonic() + 240
        while not (events.is_file() and '"event": "checkpoint"' in events.read_text()):
            assert first.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
            time.sleep(0.05)
        first.send_signal(signal.SIGTERM)  # checkpoints the current step and exits 130
        assert first.wait(timeout=120) == 130
    finally:
        if first.poll() is None:
            first.kill()
    checkpoint = [e for e in map(json.loads, events.read_text().splitlines()) if e["event"] == "checkpoint"][-1]
    assert (Path(checkpoint["path"]) / "COMPLETE").is_file()  # the event's path is the real folder
    state = (Path(checkpoint["path"]) / "state.json").read_text()
    assert SHAPED_DATA in state and REDACTED not in state and "sealed-sha256:" in state
    resumed = run_cli("run", str(plan), "--resume", "--quiet", "--allow-outside-paths", "--events", "-",
                      env=environment(tmp_path, values), cwd=project)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "different run" not in resumed.stderr
    told = [json.loads(line) for line in resumed.stdout.splitlines() if line.startswith("{")]
    assert any(e["event"] == "log" and e["message"].startswith("resumed from") for e in told)
    assert told[-1]["event"] == "end" and told[-1]["result"]["steps"] == 30
    assert not [name for name, value in values.items() if value in resumed.stdout + resumed.stderr]
    assert leaks([out, tmp_path / "cache", tmp_path / "data-dir"], values) == []  # the plan names that file


def test_rag_index_writes_no_secret(tmp_path: Path) -> None:
    """Canaries in the environment of `tunewise rag index`; a corpus in a token-shaped folder and file still reopens."""
    values = canaries()
    docs = tmp_path / shaped_folder()
    docs.mkdir()
    (docs / "sk-support-chats-train-v1.md").write_text("# Returns\nItems can be returned within 30 days.\n")
    (docs / "b.md").write_text("# Shipping\nOrders ship within two business days.\n")
    env = environment(tmp_path, values)
    index = str(tmp_path / "index")
    built = run_cli("rag", "index", str(docs), "--index", index, "--format", "json", env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    shaped = f"{docs.name}/sk-support-chats-train-v1.md"
    assert shaped in json.loads(built.stdout)["added"]
    found = run_cli("rag", "search", "--index", index, "how long to return items", "--format", "json", env=env)
    assert found.returncode == 0, found.stderr[-3000:]
    assert json.loads(found.stdout)[0]["source"] == shaped
    again = run_cli("rag", "index", str(docs), "--index", index, "--format", "json", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads(again.stdout)  # the manifest's names matched the files: nothing re-read
    assert (report["added"], report["changed"], report["removed"], report["unchanged"]) == ([], [], [], 2)
    assert leaks([tmp_path], values) == []


def test_label_session_with_token_shaped_and_secret_prompts_reopens(tmp_path: Path) -> None:
    values = canaries()
    password = values["MY_DB_PASSWORD"]
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"Summarise {SHAPED_DATA}", "candidates": ["A summary.", "No."]},
            {"prompt": f"Is {password} a good password?", "candidates": ["No.", f"Yes, {password} is fine."]},
            {"prompt": "Say hi", "candidates": ["hi", "hello"]}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "labels" / "prefs.jsonl"
    args = ("label", "--prompts", str(prompts), "--out", str(out), "--keys-from-stdin")
    env = environment(tmp_path, values)
    first = subprocess_label(args, env, "a\nb\nq\n")
    assert first.returncode == 0, first.stderr[-3000:]
    stored = [json.loads(line) for line in out.read_text().splitlines()]
    assert stored[0]["prompt"] == f"Summarise {SHAPED_DATA}" and REDACTED in stored[1]["prompt"]
    again = subprocess_label(args, env, "q\n")  # reopened: both decisions are found, the third prompt is next
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 labelled" in again.stdout and "prompt 3 of 3" in again.stdout and "Say hi" in again.stdout
    for result in (first, again):
        assert not [name for name, value in values.items() if value in result.stdout + result.stderr]
    assert leaks([tmp_path / "labels"], values) == []


def subprocess_label(args: tuple[str, ...], env: dict[str, str], keys: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunewise.advisor.cli", *args], cwd=REPO, input=keys,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
