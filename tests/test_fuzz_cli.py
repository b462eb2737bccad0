"""Fuzzing every ``tunewise`` command: whatever the arguments and files, a clean exit and a message.

Argument lists come from each command's own argparse configuration (tests/fuzz_strategies.py):
flags present or not, values of the right and wrong type (huge, negative, nan, inf, empty, unicode,
undecodable bytes), paths that do not exist, folders for files, FIFOs, symlink loops, files of
random bytes; answers files and plans are the shipped examples with fields mutated, data files
have random row shapes. Secret canaries sit in the environment and are pasted into arguments and
fields. A run fails on a traceback, "internal error", the CLI's "unexpected <Error>" catch-all, an
exception escaping ``main``, an exit code other than 0-3, a failure with no message, a canary on
the console, or a call still going after a generous hang bound.

Most examples call ``main(argv)`` in this process (a subprocess costs a second of imports on two
cores) with ``TUNEWISE_DEBUG=1``, so a report shows the traceback; stdout is strict UTF-8 as in
every UTF-8 locale but C, stderr escapes like Python's own. A few examples run the real console
script (exit statuses, signals), one cuts its output short like ``| head``, and ``tunewise tui``
without a terminal must refuse instead of hanging. Command lines the fuzzer found failing (issue
15) are pinned in ``test_found_cases``, so they run every time.
``TUNEWISE_FUZZ_SCALE=10`` runs ten times the examples for a longer hunt.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from fuzz_strategies import Arg, GenFile, Ref, command_line, data_files, plan_files
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support import REPO

_RNG = random.Random(15)
CANARIES = {
    "HF_TOKEN": "hf_" + "".join(_RNG.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=34)),
    "MY_SERVICE_API_KEY": "svc-" + "".join(_RNG.choices("0123456789abcdef", k=28)),
    "DB_PASSWORD": "pw-" + "".join(_RNG.choices("0123456789abcdef", k=20)),
}
PASTED = CANARIES["MY_SERVICE_API_KEY"]
"""The canary pasted into arguments and fields (no token shape: only the variable gives it away)."""

HANG_BOUND_S = 90
"""A call still going after this long is a hang (generous: every call here is meant to end in seconds)."""
CLEAN_CODES = {0, 1, 2, 3}
"""0 ok, 1 error, 2 usage error or a data audit with problems, 3 a run that stopped early."""
BAD_OUTPUT = re.compile(r"Traceback \(most recent call last\)|internal error|error: unexpected [A-Za-z_.]+",
                        re.IGNORECASE)


SCALE = float(os.environ.get("TUNEWISE_FUZZ_SCALE", "1"))
"""More examples for a longer local hunt (``TUNEWISE_FUZZ_SCALE=10``); CI runs the default."""


def fuzz_settings(examples: int) -> settings:
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    # No shrinking by default: a failure report already shows the whole command line and files, and
    # shrinking a hang would re-run it (a hang bound each time) dozens of times.
    if os.environ.get("TUNEWISE_FUZZ_SHRINK", "0") != "0":
        phases.append(Phase.shrink)
    return settings(max_examples=max(1, round(examples * SCALE)), deadline=None, derandomize=True, database=None,
                    phases=phases, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                          HealthCheck.data_too_large, HealthCheck.filter_too_much])


# ---------------------------------------------------------------------------------------------- workspace

@dataclass
class Workspace:
    """Shared inputs for every example (read-only by convention) and a fresh folder per example."""

    root: Path
    count: int = 0

    def example_dir(self) -> Path:
        self.count += 1
        folder = self.root / "ex" / str(self.count)
        folder.mkdir(parents=True)
        return folder

    def ref(self, kind: str, exdir: Path) -> str:
        r = self.root
        fixed = {
            "missing": r / "no-such" / "thing.yaml", "missing_deep": r / "a" / "b" / "c" / "d.jsonl",
            "dir": r / "junk_dir", "empty_dir": r / "empty_dir", "empty": r / "empty.jsonl", "devnull": "/dev/null",
            "fifo": r / "fifo.jsonl", "loop": r / "loop.jsonl", "long_name": r / ("x" * 300 + ".jsonl"),
            "tilde_user": "~no-such-user-fz/x.jsonl", "bytes_file": r / "bytes.jsonl",
            "trailing_slash": f"{r / 'data' / 'support_chat.jsonl'}/", "canary_name": r / f"{PASTED}.jsonl",
            "tiny_model": r / "tiny", "hub_id": "no-such-org/no-such-model", "embedded_name": "smollm2-135m-instruct",
            "data_chat": r / "data" / "support_chat.jsonl", "data_prefs": r / "data" / "preferences.jsonl",
            "data_intents": r / "data" / "support_intents.jsonl", "rlhf_prompts": r / "data" / "rlhf_prompts.jsonl",
            "questions": r / "data" / "questions.jsonl", "label_prompts": r / "data" / "label_prompts.jsonl",
            "docs": r / "docs", "doc_file": r / "docs" / "assert.txt", "odd_names": r / "odd_names",
            "answers_example": r / "answers.yaml", "plan_example": r / "plan.yaml",
            "existing_file": r / "data" / "support_chat.jsonl",
            "canary": PASTED, "canary_in_text": f"what is {PASTED}?",
        }
        if kind in fixed:
            return str(fixed[kind])
        if kind == "new_file":
            return str(exdir / "new.jsonl")
        if kind == "new_dir_file":
            return str(exdir / "sub" / "dir" / "new.yaml")
        if kind == "new_dir":
            return str(exdir / "new_index")
        if kind == "index":  # a private copy: commands may update an index
            copy = exdir / "index"
            if not copy.exists():
                shutil.copytree(r / "index", copy)
            return str(copy)
        raise AssertionError(f"unknown ref {kind}")

    def materialize(self, arg: Arg, exdir: Path) -> str:
        """The real argument for ``arg``: a workspace path, or the path of a file written now."""
        if isinstance(arg, str):
            return arg
        if isinstance(arg, Ref):
            return self.ref(arg.kind, exdir)
        children = [self.materialize(child, exdir) for child in arg.children]
        content = arg.content.replace(b"@@CANARY@@", PASTED.encode()).replace(b"@@EXDIR@@", os.fsencode(exdir))
        for i, path in enumerate(children):
            content = content.replace(f"@@CHILD{i}@@".encode(), os.fsencode(path))
        content = re.sub(rb"@@REF:(\w+)@@", lambda m: os.fsencode(self.ref(m.group(1).decode(), exdir)), content)
        path = exdir / f"f{len(list(exdir.iterdir()))}{arg.suffix}"
        path.write_bytes(content)
        return str(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Workspace:
    return build_workspace(tmp_path_factory.mktemp("fuzz-cli"), tiny_model_dir)


def build_workspace(root: Path, tiny_model_dir: Path) -> Workspace:
    """The shared inputs: the test model, shipped data (a few rows), documents and their index, odd paths."""
    shutil.copytree(tiny_model_dir, root / "tiny")
    data = root / "data"
    data.mkdir()
    for name, rows in (("support_chat.jsonl", 12), ("preferences.jsonl", 8), ("support_intents.jsonl", 12),
                       ("rlhf_prompts.jsonl", 4)):
        lines = (REPO / "examples" / "data" / name).read_text().splitlines()[:rows]
        (data / name).write_text("\n".join(lines) + "\n")
    (data / "questions.jsonl").write_text(
        "\n".join((REPO / "examples" / "questions" / "python_docs.jsonl").read_text().splitlines()[:3]) + "\n")
    (data / "label_prompts.jsonl").write_text(
        '{"prompt": "Say hi", "candidates": ["hi", "hello"]}\n'
        f'{{"prompt": "Repeat {PASTED}", "candidates": ["no", "{PASTED}"]}}\n'
        '{"prompt": "Name a colour", "candidates": ["red", "blue"]}\n')
    docs = root / "docs"
    docs.mkdir()
    for name in ("assert.txt", "assignment.txt", "async.txt"):
        shutil.copy(REPO / "examples" / "corpus" / "python_docs" / name, docs / name)
    odd = root / "odd_names"  # names a folder walk hands over: not UTF-8, the canary, a newline
    odd.mkdir()
    (odd / "plain.txt").write_text("Plain text about assert statements.\n")
    (Path(os.fsdecode(bytes(odd) + b"/caf\xe9.txt"))).write_text("A file whose name is Latin-1.\n")
    (odd / f"{PASTED}.md").write_text("# Notes\nA file named like a secret.\n")
    (odd / "two\nlines.txt").write_text("A newline in the name.\n")
    (root / "junk_dir").mkdir()
    (root / "junk_dir" / "a.bin").write_bytes(bytes(range(256)))
    (root / "empty_dir").mkdir()
    (root / "empty.jsonl").write_bytes(b"")
    (root / "bytes.jsonl").write_bytes(random.Random(1).randbytes(300))
    os.mkfifo(root / "fifo.jsonl")
    (root / "loop.jsonl").symlink_to(root / "loop.jsonl")
    shutil.copy(REPO / "examples" / "answers" / "support-billing.yaml", root / "answers.yaml")
    plan = yaml.safe_load((REPO / "examples" / "plans" / "lora.yaml").read_text())
    plan.update(model=str(root / "no-such-model"), data="data/support_chat.jsonl", output_dir=str(root / "plan-out"))
    (root / "plan.yaml").write_text(yaml.safe_dump(plan))
    from tunewise.methods.rag.index import build_index

    build_index([docs], root / "index")
    return Workspace(root)


# ---------------------------------------------------------------------------------------------- one call

def _record_thread_death(errors: list[str]) -> Callable[[threading.ExceptHookArgs], None]:
    """A ``threading.excepthook`` that keeps what ended a thread (Python would print its traceback)."""

    def record(hook: threading.ExceptHookArgs) -> None:
        name = hook.thread.name if hook.thread is not None else "?"
        errors.append(f"{name}: " + "".join(traceback.format_exception(hook.exc_value))[-1500:])

    return record


class Hang(BaseException):
    """Raised by the hang timer; a BaseException so that the CLI's catch-all cannot swallow it."""


_HUNG: list[list[str]] = []
"""Calls stopped by the hang timer: one abandoned mid-way (in an import, holding a lock) may break
later calls in this process, so their failure reports name it."""


@dataclass
class Result:
    argv: list[str]
    code: object
    out: str
    err: str
    escaped: str = ""
    literal_tildes: list[str] = field(default_factory=list)
    thread_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = [f"created ./{name} (a ~ path taken literally)" for name in self.literal_tildes]
        found += [f"a thread died during this call (maybe one an earlier call started): {error}"
                  for error in self.thread_errors]
        if self.escaped:
            found.append(f"escaped main: {self.escaped}")
        if self.code not in CLEAN_CODES:
            found.append(f"exit code {self.code!r}")
        text = self.out + self.err
        if match := BAD_OUTPUT.search(text):
            found.append(f"output has {match.group(0)!r}")
        found += [f"canary {name} on the console" for name, value in CANARIES.items() if value in text]
        if self.code not in (0, None) and not text.strip():
            found.append("failed without a message")
        return found

    def report(self) -> str:
        hung = f"(after an earlier call hung in this process: {_HUNG[0]!r})\n" if _HUNG and _HUNG[0] != self.argv else ""
        text = (f"{hung}argv: {self.argv!r}\nexit: {self.code!r}\nproblems: {self.problems()}\n"
                f"--- stdout (tail)\n{_short(self.out)[-2500:]}\n--- stderr (tail)\n{_short(self.err)[-6000:]}\n"
                f"{_short(self.escaped)}")
        return text


def _short(text: str) -> str:
    """Long runs of one character (generated names like x * 5000) shown as ``x×5000``."""
    return re.sub(r"(.)\1{40,}", lambda m: f"{m.group(1)}×{len(m.group(0))}", text)


def _environment(workspace: Workspace) -> dict[str, str]:
    # Own data folder: a probe's calibration must not change other tests' quotes. The cache folder
    # (the prepared embedded model) stays shared.
    return {**CANARIES, "TUNEWISE_DEBUG": "1", "TUNEWISE_DATA_DIR": str(workspace.root / "data-dir"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _console_stream(errors: str) -> tuple[io.TextIOWrapper, io.BytesIO]:
    """A UTF-8 stream like a terminal's: stdout is strict (outside the C locale), stderr backslash-escapes."""
    raw = io.BytesIO()
    return io.TextIOWrapper(raw, encoding="utf-8", errors=errors, write_through=True), raw


def call_in_process(workspace: Workspace, argv: list[str], stdin: str = "", bound: float = HANG_BOUND_S) -> Result:
    """``tunewise ARGV`` through ``main`` in this process, everything it changes put back afterwards."""
    from tunewise.advisor.cli import main

    thread_errors: list[str] = []
    saved_hook = threading.excepthook
    threading.excepthook = _record_thread_death(thread_errors)
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    (out, out_raw), (err, err_raw) = _console_stream("strict"), _console_stream("backslashreplace")

    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"still running after {bound} s")

    previous_alarm = signal.signal(signal.SIGALRM, on_alarm)
    os.environ.update(_environment(workspace))
    os.chdir(workspace.root)
    tildes = set(workspace.root.glob("~*"))
    code: object = None
    escaped = ""
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, bound)
        code = main(argv)
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    except BaseException as exc:
        escaped = "".join(traceback.format_exception(exc))
        if isinstance(exc, Hang):
            _HUNG.append(argv)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        threading.excepthook = saved_hook
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for sig, handler in saved_handlers.items():
            signal.signal(sig, handler)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    result = Result(argv, code, out_raw.getvalue().decode("utf-8", "replace"),
                    err_raw.getvalue().decode("utf-8", "replace"), escaped)
    result.thread_errors = thread_errors
    # "~user/x" is a home folder or an error, never a folder named "~user" in the working directory.
    result.literal_tildes = sorted(p.name for p in set(workspace.root.glob("~*")) - tildes)
    if os.environ.get("FUZZ_LOG"):
        with open(os.environ["FUZZ_LOG"], "a") as log:
            log.write(f"{time.monotonic() - started:7.2f}s {code!r} {argv!r}\n    {result.err.strip()[-300:]!r}\n")
    return result


def call_subprocess(workspace: Workspace, argv: list[str], stdin: str = "") -> Result:
    """``tunewise ARGV`` as users run it: a fresh interpreter, no terminal, a hang bound."""
    env = {**os.environ, **_environment(workspace)}
    try:
        proc = subprocess.run([sys.executable, "-m", "tunewise.advisor.cli", *argv], input=stdin.encode(),
                              capture_output=True, env=env, cwd=workspace.root, timeout=HANG_BOUND_S)
    except subprocess.TimeoutExpired as exc:
        return Result(argv, "timeout", (exc.stdout or b"").decode("utf-8", "replace"),
                      (exc.stderr or b"").decode("utf-8", "replace"), f"hang: still running after {HANG_BOUND_S} s")
    return Result(argv, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                  proc.stderr.decode("utf-8", "replace"))


KEYS = st.lists(st.sampled_from(["a", "b", "1", "2", "s", "u", "q", "x", "", "é", "\x03"]), max_size=6).map(
    lambda keys: "\n".join(keys) + "\n")


def _check(result: Result) -> None:
    assert not result.problems(), result.report()


def test_the_checks_catch_each_failure() -> None:
    """The fuzzer's oracle: each kind of failure it looks for is flagged, and a clean error is not."""
    clean = Result(["audit", "x"], 1, "", "tunewise audit: error: x: no such file or folder\n")
    assert clean.problems() == []
    failures = {
        "traceback": Result(["a"], 1, "", 'Traceback (most recent call last):\n  File "x.py"\nKeyError: 1\n'),
        "internal": Result(["a"], 1, "", "tunewise run: failed: internal error: KeyError: 'x'\n"),
        "unexpected": Result(["a"], 1, "", "tunewise audit: error: unexpected OSError: [Errno 36] ...\n"),
        "canary": Result(["a"], 0, f"token {CANARIES['HF_TOKEN']}\n", ""),
        "signal": Result(["a"], -9, "", "x\n"),
        "silent": Result(["a"], 1, "", ""),
        "escaped": Result(["a"], None, "", "", "Traceback ...\nValueError"),
        "tilde": Result(["a"], 1, "", "tunewise label: error: x\n", literal_tildes=["~x"]),
    }
    assert [name for name, result in failures.items() if not result.problems()] == []


# ---------------------------------------------------------------------------------------------- in-process fuzz

def _command_test(command: str, examples: int):
    @fuzz_settings(examples)
    @given(argv=command_line(command), keys=KEYS)
    def test(argv: list[Arg], keys: str, workspace: Workspace) -> None:
        exdir = workspace.example_dir()
        _check(call_in_process(workspace, [workspace.materialize(a, exdir) for a in argv], stdin=keys))

    test.__name__ = f"test_fuzz_{command}"
    test.__doc__ = f"``tunewise {command}`` with generated arguments and files: clean exit, a message, no secret."
    return test


test_fuzz_plugins = _command_test("plugins", 8)
test_fuzz_model = _command_test("model", 30)
test_fuzz_recommend = _command_test("recommend", 100)
test_fuzz_estimate = _command_test("estimate", 100)
test_fuzz_audit = _command_test("audit", 60)
test_fuzz_probe = _command_test("probe", 16)
test_fuzz_run = _command_test("run", 80)
test_fuzz_rag = _command_test("rag", 60)
test_fuzz_label = _command_test("label", 50)
test_fuzz_export = _command_test("export", 80)

def _live_data(good: str) -> st.SearchStrategy[Arg]:
    """Mostly the right shipped data (so the run gets going), else a generated file."""
    return st.one_of(st.just(Ref(good)), st.just(Ref(good)), data_files(good_bias=True))


_LIVE_DATA = {"default": _live_data("data_chat"), "continual_pretraining": _live_data("docs"),
              "rlhf": _live_data("data_prefs"), "in_context": _live_data("data_intents"), "rag": _live_data("docs"),
              "questions": _live_data("questions"), "prompts": _live_data("rlhf_prompts")}


@fuzz_settings(10)
@given(plan=plan_files(_LIVE_DATA, st.just(Ref("tiny_model")), live=True, max_mutations=2))
def test_fuzz_run_on_a_real_model(plan: GenFile, workspace: Workspace) -> None:
    """Plans on the 2-layer test model (so a run really starts): mutated fields end in a message, not a crash."""
    exdir = workspace.example_dir()
    argv = ["run", workspace.materialize(plan, exdir), "--max-steps", "1", "--out", str(exdir / "run"),
            "--allow-outside-paths", "--quiet"]
    _check(call_in_process(workspace, argv))


# ---------------------------------------------------------------------------------------------- found cases

FOUND = {
    # Failures the fuzzer found in issue 15 (ids: finding number, then the case), all fixed; kept as pins.
    "F1-tilde-user-answers": ["recommend", "--answers", "~no-such-user-fz/x.yaml"],
    "F1-tilde-user-data": ["audit", "~no-such-user-fz/x.jsonl"],
    "F1-tilde-user-model": ["model", "info", "--model", "~no-such-user-fz/m"],
    "F2-double-dash-value": ["estimate", "--method=--", "--tokens", "1e9"],
    "F2-double-dash-model": ["audit", Ref("data_prefs"), "--model=--"],
    "F3-stdout-undecodable": ["audit", Ref("data_prefs"), "--model", "x\udc80y", "--max-tokens", "3"],
    "F4-long-model-name": ["model", "info", "--model", Ref("long_name")],
    "F5-model-link-loop": ["audit", Ref("data_prefs"), "--model", Ref("loop")],
    "F6-undecodable-query": ["rag", "search", "x\udc80y", "--index", Ref("index")],
    "F6-undecodable-labeler": ["label", "--prompts", Ref("label_prompts"), "--out", Ref("new_file"),
                               "--keys-from-stdin", "--labeler", "x\udcff", "--model", Ref("missing")],
    "F6-undecodable-file-name": ["rag", "index", Ref("odd_names"), "--index", Ref("new_dir")],
    "F7-label-out-tilde": ["label", "--prompts", Ref("label_prompts"), "--out=~no-such-user-fz/p.jsonl",
                           "--keys-from-stdin", "--model", Ref("missing")],
    "F8-label-out-fifo": ["label", "--prompts", Ref("label_prompts"), "--out", Ref("fifo"), "--keys-from-stdin",
                          "--model", Ref("missing")],
    "F11-run-out-loop": ["run", Ref("plan_example"), "--out", Ref("loop")],
    "F11-embedding-model-loop": ["rag", "index", Ref("docs"), "--index", Ref("new_dir"), "--embedding-model", Ref("loop")],
    "export-out-undecodable": ["export", "--to", "axolotl", "--out", "x\udc80y.yaml", Ref("plan_example")],
    "export-out-fifo": ["export", "--to", "llamafactory", "--out", Ref("fifo"), Ref("plan_example")],
    "export-out-loop": ["export", "--to", "axolotl", "--out", Ref("loop"), Ref("plan_example")],
}


@pytest.mark.parametrize("argv", list(FOUND.values()), ids=list(FOUND))
def test_found_cases(argv: list[Arg], workspace: Workspace) -> None:
    """Command lines the fuzzer found failing, pinned so they run every time (fixed or not)."""
    exdir = workspace.example_dir()
    _check(call_in_process(workspace, [workspace.materialize(a, exdir) for a in argv], stdin="a\nb\nq\n", bound=30))


# ---------------------------------------------------------------------------------------------- real processes

@fuzz_settings(8)
@given(argv=st.sampled_from(["plugins", "model", "recommend", "estimate", "audit", "run", "rag", "label",
                             "export"]).flatmap(command_line), keys=KEYS)
def test_fuzz_real_processes(argv: list[Arg], keys: str, workspace: Workspace) -> None:
    """The console script itself: no negative exit (a signal), no traceback, no hang."""
    exdir = workspace.example_dir()
    _check(call_subprocess(workspace, [workspace.materialize(a, exdir) for a in argv], stdin=keys))


FOUND_IN_PROCESSES = {
    # F10: quitting while the next pair is generated in a thread: run twice (the race hits 5 in 6).
    "F10-label-quit-during-prefetch": (["label", "--model", Ref("tiny_model"), "--prompts", Ref("rlhf_prompts"),
                                        "--out", Ref("new_file"), "--max-new-tokens", "1", "--keys-from-stdin"],
                                       "\n", 2),
}


@pytest.mark.parametrize("case", list(FOUND_IN_PROCESSES.values()), ids=list(FOUND_IN_PROCESSES))
def test_found_cases_in_real_processes(case: tuple[list[Arg], str, int], workspace: Workspace) -> None:
    """Failures only a real process shows (an abort at exit), pinned."""
    argv, keys, runs = case
    for _ in range(runs):
        exdir = workspace.example_dir()
        _check(call_subprocess(workspace, [workspace.materialize(a, exdir) for a in argv], stdin=keys))


@pytest.mark.parametrize("output_format", ["table", "json"])
def test_output_cut_short(output_format: str, workspace: Workspace, tmp_path: Path) -> None:
    """``tunewise audit ... | head -c 100``: the reader goes away mid-output; a quiet end, no traceback."""
    rows = [json.dumps({"text": f"row {i}"} if i % 2 else {"prompt": f"p{i}", "chosen": "a", "rejected": "b"})
            for i in range(4000)]  # every other row has the wrong shape: one problem line each, far past a pipe's buffer
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(rows) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "tunewise.advisor.cli", "audit", str(data), "--format", output_format],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env={**os.environ, **_environment(workspace)}, cwd=workspace.root)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(100)
    proc.stdout.close()
    try:
        err = proc.stderr.read().decode("utf-8", "replace")
        code = proc.wait(timeout=HANG_BOUND_S)
    finally:
        proc.kill()
    result = Result(["audit", str(data), "--format", output_format, "| head -c 100"], code, first.decode(errors="replace"),
                    err)
    assert not BAD_OUTPUT.search(err) and code in CLEAN_CODES, result.report()


@pytest.mark.parametrize("argv", [["tui"], [], ["--strict-plugins"], ["tui", "--answers", "answers.yaml"]],
                         ids=["tui", "bare", "bare-flag", "tui-answers"])
def test_app_without_a_terminal_refuses(argv: list[str], workspace: Workspace) -> None:
    """The app needs a terminal: with a pipe instead it says so and exits 1, instead of drawing into the pipe."""
    result = call_subprocess(workspace, argv)
    _check(result)
    assert result.code == 1 and "terminal" in result.err, result.report()
