"""No secret on any console: with canary credentials in the environment, pasted into bad plans,
answers, data rows, model paths, prompts and plugin errors, no command prints one, whole or in part.

Every case runs the real CLI in a subprocess (``--format json`` where the command has it) and scans
stdout and stderr for each canary as written, as a repr and as JSON would quote it, and for every
20-character piece of those. Three canaries: an ``hf_`` token, one with quotes, a backslash and
non-ASCII letters (escaping would hide it from a plain match), and one of 123 characters (cut or
wrapped by anything that shortens or lays out text).
"""

from __future__ import annotations

import io
import json
import secrets
import textwrap
from pathlib import Path

from support import run_cli, write_distribution
from tunewise.advisor.console_guard import RedactingStream
from tunewise.plugins.redaction import REDACTED


def canaries() -> dict[str, str]:
    tag = secrets.token_hex(8)
    return {"HF_TOKEN": "hf_" + secrets.token_hex(16),
            "TUNEWISE_TEST_PASSWORD": f"pa\"ss\\wörd-'{tag}",
            "LONG_SERVICE_KEY": "lk-" + secrets.token_hex(60)}


def environment(tmp_path: Path, values: dict[str, str]) -> dict[str, str]:
    return {**values, "TUNEWISE_CACHE_DIR": str(tmp_path / "cache"), "TUNEWISE_DATA_DIR": str(tmp_path / "data-dir")}


def pieces(value: str, size: int = 20) -> set[str]:
    """``value`` as written, repr-quoted and JSON-quoted, and every ``size``-character piece of those."""
    forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    return {form[i:i + size] for form in forms for i in range(max(1, len(form) - size + 1))}


def leaks(text: str, values: dict[str, str]) -> list[str]:
    """``VARIABLE: piece`` for each canary piece found in ``text`` (case-insensitively)."""
    lowered = text.lower()
    return sorted({f"{name}: {piece!r}" for name, value in values.items() for piece in pieces(value)
                   if piece.lower() in lowered})


def check(result, values: dict[str, str], code: int = 1) -> str:  # type: ignore[no-untyped-def]
    """The command's stdout + stderr, after asserting its exit code, no leak and no traceback on stderr."""
    both = result.stdout + result.stderr
    assert result.returncode == code, both[-3000:]
    assert leaks(both, values) == []
    assert "Traceback" not in result.stderr
    return both


def q(value: str) -> str:
    """``value`` as a YAML double-quoted scalar (JSON is valid YAML)."""
    return json.dumps(value)


def test_stream_catches_a_secret_split_across_writes_and_flushes() -> None:
    secret = 'tok"en\\with ünïcode-abcdef'
    raw = io.StringIO()
    stream = RedactingStream(raw, (secret,))
    stream.write("key: " + secret[:6])
    stream.flush()  # e.g. print(..., end="", flush=True): the start of a secret waits for the rest
    assert raw.getvalue() == "key: "
    stream.write(secret[6:] + " ok\n")
    stream.write(json.dumps({"k": secret}) + "\n" + repr([secret]).upper() + "\rstep 5/9")
    stream.flush()  # a progress line with no newline still shows at once
    assert raw.getvalue() == f'key: {REDACTED} ok\n{{"k": "{REDACTED}"}}\n[\'{REDACTED}\']\rstep 5/9'
    stream.write("tok")
    stream.close_guard()  # at the end a held piece that never became a secret is passed on
    assert raw.getvalue().endswith("step 5/9tok")


def test_invalid_plan_fields_are_named_without_their_secret_values(tmp_path: Path) -> None:
    values = canaries()
    hf, pw, long = values.values()
    (tmp_path / "chat.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                                  {"role": "assistant", "content": "yo"}]}) + "\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {tmp_path}\n"
                    f"data: [chat.jsonl, {{x: {q(pw)}}}, {q(long * 3)}]\n"  # a list item of the wrong type; a name too long
                    f"output_dir: out\nconfig: {{bias: {q(pw)}}}\n"  # an unknown enum value
                    f"training: {{max_steps: {q(long)}, lr_schedule: {q(hf)}, device: {q(pw)}}}\n")  # wrong type, enum
    env = environment(tmp_path, values)
    expected = ["plan.yaml:3: data[1]: must be a path", "plan.yaml:3: data[2]: not a usable path",
                "plan.yaml:5: config.bias: must be one of", "plan.yaml:6: training.max_steps: must be a whole number",
                "plan.yaml:6: training.lr_schedule: must be one of", "plan.yaml:6: training.device: must be"]
    for args in (["run", str(plan)], ["run", str(plan), "--events", "-"], ["export", str(plan), "--to", "axolotl"]):
        both = check(run_cli(*args, env=env, cwd=tmp_path), values)
        assert all(line in both for line in expected), both
        assert REDACTED in both
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(f"method: {q(long)}\nmodel: {tmp_path}\ndata: chat.jsonl\noutput_dir: out\n")
    assert "unknown.yaml:1: method: unknown method" in check(run_cli("run", str(unknown), env=env, cwd=tmp_path),
                                                             values)


def test_invalid_answers_and_data_rows_are_named_without_their_secret_values(tmp_path: Path) -> None:
    values = canaries()
    hf, pw, long = values.values()
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"use_case: bot\ngoals: [task, {q(hf)}]\ndata: {{labeled_examples: {q(long)}}}\n"
                       f"budget: {{usd: {q(pw)}}}\n{q(pw)}: 3\n")
    env = environment(tmp_path, values)
    both = check(run_cli("recommend", "--answers", str(answers), "--format", "json", env=env), values)
    assert "answers.yaml:2: goals:" in both and "answers.yaml:3: data.labeled_examples:" in both
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"messages": [{"role": pw, "content": "hi " + long},
                                             {"role": "assistant", "content": "yo"}]}) + "\n"
                    + json.dumps({"messages": [{"role": "user", "content": hf}], hf: long}) + "\n")
    for fmt in ("json", "table"):
        both = check(run_cli("audit", str(data), "--format", fmt, env=env), values, code=2)
        assert "rows.jsonl:1: messages[0].role is" in both


def test_missing_paths_holding_a_secret_are_named_without_it(tmp_path: Path) -> None:
    values = canaries()
    hf, pw, long = values.values()
    env = environment(tmp_path, values)
    cases = [(["model", "info", "--model", f"/nope/{long}", "--format", "json"], "not found"),
             (["probe", "--method", "lora", "--model", f"/nope/{hf}", "--format", "json"], "not found"),
             (["rag", "search", "--index", str(tmp_path / long), "query", "--format", "json"], "not a tunewise RAG index"),
             (["label", "--prompts", str(tmp_path / f"{pw}.jsonl"), "--out", str(tmp_path / "o.jsonl"),
               "--keys-from-stdin"], "prompts file not found")]
    for args, words in cases:
        assert words in check(run_cli(*args, env=env, cwd=tmp_path), values)
    # A model that is not there only changes the quote's assumptions: the JSON names it, redacted.
    result = run_cli("estimate", "--method", "lora", "--model", pw, "--tokens", "1M", "--format", "json", env=env)
    check(result, values, code=0)
    assert json.loads(result.stdout)["assumptions"]["model_shape"].startswith(f"model '{REDACTED}' not found")


LEAKY_PLUGIN = textwrap.dedent('''
    import os
    from tunewise.plugins import Fit, hookimpl

    KEY = os.environ["LONG_SERVICE_KEY"]

    class Leaky:
        id = "leaky"
        title = "Leaky"
        summary = "Fails with a credential in its messages."
        config_class = None
        def fit(self, profile):
            return Fit(self.id, 0.1, ("leaks",))
        def estimate(self, profile, hardware):
            raise RuntimeError(f"auth failed for https://user:{KEY}@example.com " + repr({"key": KEY}))
        def run(self, plan, events):
            raise ConnectionError(f"upload refused for token {os.environ['TUNEWISE_TEST_PASSWORD']!r}")

    @hookimpl
    def tunewise_register_methods(register):
        register(Leaky)
''')


def test_plugin_errors_and_unexpected_exceptions_print_no_secret(tmp_path: Path) -> None:
    values = canaries()
    site = tmp_path / "site"
    write_distribution(site, "tw-leaky", {"tw_leaky": LEAKY_PLUGIN}, {"leaky": "tw_leaky"})
    write_distribution(site, "tw-broken", {"tw_broken": "import os\nraise ImportError('bad key ' + "
                                                        "os.environ['LONG_SERVICE_KEY'] * 2)\n"},
                       {"broken": "tw_broken"})
    env = {**environment(tmp_path, values), "PYTHONPATH": str(site)}
    result = run_cli("plugins", "--format", "json", env=env)
    check(result, values, code=0)
    listed = json.loads(result.stdout)
    assert [f["plugin"] for f in listed["failures"]] == ["broken"] and REDACTED in listed["failures"][0]["error"]
    table = check(run_cli("plugins", env=env), values, code=0)  # rich wraps the long line: redacted before
    assert "broken" in table and "[redacted]" in table
    # An exception no check foresaw: one redacted line, the traceback only on request (and redacted too).
    both = check(run_cli("estimate", "--method", "leaky", "--tokens", "1M", "--format", "json", env=env), values)
    assert both.strip().splitlines()[-1].startswith("tunewise estimate: error: unexpected RuntimeError: auth failed")
    debug = run_cli("estimate", "--method", "leaky", "--tokens", "1M", env={**env, "TUNEWISE_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and leaks(debug.stdout + debug.stderr, values) == []
    (tmp_path / "d.jsonl").write_text('{"text": "hello"}\n')
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"method: leaky\ndata: d.jsonl\noutput_dir: {tmp_path / 'out'}\n")
    both = check(run_cli("run", str(plan), "--events", "-", env=env, cwd=tmp_path), values)
    assert "ConnectionError" in both
    assert leaks("".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file()), values) == []


def test_prompts_and_documents_shown_by_rich_or_cut_short_hold_no_secret(tmp_path: Path) -> None:
    """The label panels wrap a long prompt over lines; a search preview is cut at 300 characters."""
    values = canaries()
    hf, pw, long = values.values()
    env = environment(tmp_path, values)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": f"Is {long} a good key? Also {pw}.",
                                   "candidates": [f"No, {long} leaked.", f"Yes, {hf} too."]}) + "\n")
    labels = tmp_path / "labels.jsonl"
    both = check(run_cli("label", "--prompts", str(prompts), "--out", str(labels), "--keys-from-stdin",
                         env={**env, "COLUMNS": "60"}), values, code=0)
    assert "answer A" in both
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keys.md").write_text("# Keys\n" + "Rotation policy words. " * 10 + f"The key is {long}.\n")
    check(run_cli("rag", "index", str(docs), "--index", str(tmp_path / "index"), env=env), values, code=0)
    shown = check(run_cli("rag", "search", "--index", str(tmp_path / "index"), "rotation key", env=env), values, code=0)
    assert "keys.md" in shown and "The key is [redacted]" in shown
