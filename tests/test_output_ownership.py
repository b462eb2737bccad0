"""Output folders are owned: one run at a time, refusals leave them untouched, user files survive.

- A second ``tunewise run`` on a folder in use is refused at once, naming the folder and the owner's
  pid; once the owner is killed (SIGKILL: no cleanup ran) the next run proceeds.
- Every way a run is refused (folder holds a run, identity mismatch, bad data, bad settings, missing
  model, nothing to resume, folder locked — for every method family) leaves a finished run's folder
  byte for byte and mtime for mtime as it was, including a killed run's stale lock file.
- Files a user put into the output folder, ``adapter/``, ``checkpoints/``, a RAG index folder or an
  RLHF stage folder survive runs, resumes and ``--force``; only what tunewise wrote is replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import run_cli
from tunewise.advisor.output_lock import LOCK_FILE, OutputLocked, acquire, owner_alive, owner_record

CHAT = [{"messages": [{"role": "user", "content": f"Where is parcel {i}?"},
                      {"role": "assistant", "content": f"Parcel {i} is in depot {i % 4}."}]} for i in range(12)]
TRAINING = ("training: {max_steps: 2, save_steps: 1, keep_checkpoints: 1, batch_size: 2, seq_len: 48,\n"
            "           eval_max_examples: 2, generation_examples: 0, device: cpu, precision: fp32}\n")


def write_plan(folder: Path, model: Path, *, name: str = "plan.yaml", method: str = "lora", config: str = "{}",
               data: str = "chat.jsonl", training: str = TRAINING) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "chat.jsonl").exists():
        (folder / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CHAT))
    plan = folder / name
    plan.write_text(f"method: {method}\nmodel: {model}\ndata: {data}\nconfig: {config}\n"
                    f"output_dir: {folder / 'out'}\n{training}")
    return plan


def snapshot(folder: Path) -> dict[str, tuple[str, int] | str]:
    """Every entry below ``folder``: files by sha256 and mtime, folders and links by kind."""
    state: dict[str, tuple[str, int] | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = f"link:{os.readlink(path)}"
        elif path.is_dir():
            state[key] = "dir"
        else:
            state[key] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A folder holding a finished LoRA run (checkpoint, adapter, report)."""
    from tunewise.advisor.plans import load_plan
    from tunewise.advisor.runner import run_plan

    folder = tmp_path_factory.mktemp("finished")
    model = shutil.copytree(tiny_model_dir, folder / "model")
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        result, code = run_plan(load_plan(write_plan(folder, model)), show_progress=False)
    finally:
        os.chdir(cwd)
    assert code == 0, result.message
    return folder


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the finished run's folder (timestamps kept), as the working directory."""
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder, symlinks=True)  # copy2: mtimes come along
    monkeypatch.chdir(folder)
    return folder


def _damage_checkpoints(folder: Path) -> None:
    for weights in (folder / "out" / "checkpoints").glob("step-*/weights.safetensors"):
        with open(weights, "r+b") as fh:
            fh.truncate(100)


def _stale_lock(folder: Path) -> None:
    """What kill -9 leaves: a lock file naming a process that is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (folder / "out" / LOCK_FILE).write_text(json.dumps(owner_record(gone.pid)) + "\n")
    os.utime(folder / "out" / LOCK_FILE, ns=(1_000_000_000, 1_000_000_000))


# Each case: how to prepare the copy (before the snapshot), plan arguments, overrides, and what the refusal says.
REFUSALS: dict[str, tuple[Callable[[Path], None] | None, dict[str, str], dict[str, bool], str]] = {
    "holds-a-run": (None, {}, {}, "already holds a run"),
    "holds-a-run-stale-lock": (_stale_lock, {}, {}, "already holds a run"),
    "holds-a-run-without-checkpoints": (lambda f: shutil.rmtree(f / "out" / "checkpoints"), {}, {},
                                        "already holds a run (a completed run, run.json)"),
    "identity": (None, {"config": "{r: 4}"}, {"resume": True}, "config.r: checkpoint 8, plan 4"),
    "bad-data": (lambda f: (f / "bad.jsonl").write_text('{"messages": [}\n'), {"data": "bad.jsonl"},
                 {"resume": True}, "bad.jsonl:1"),
    "bad-settings": (None, {"training": "training: {max_steps: 2, max_usd: 5, budget_hardware: no-such-gpu}\n"},
                     {"resume": True}, "training.budget_hardware"),
    "model-missing": (None, {}, {"resume": True, "model": True}, "no-such-model"),
    "nothing-to-resume": (_damage_checkpoints, {}, {"resume": True}, "no complete checkpoint"),
    "in-context-bad-data": (lambda f: (f / "bad.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"text": 1}\n'),
                            {"method": "in_context", "data": "bad.jsonl", "training": ""}, {}, "bad.jsonl:2"),
    "rag-bad-data": (lambda f: (f / "docs").mkdir() or (f / "docs" / "a.txt").write_bytes(bytes(range(256))),
                     {"method": "rag", "data": "docs", "training": ""}, {}, "a.txt:2"),
    "rlhf-bad-data": (lambda f: (f / "pairs.jsonl").write_text('{"prompt": "p", "chosen": "a"}\n'),
                      {"method": "rlhf", "data": "pairs.jsonl"}, {"resume": True}, "pairs.jsonl:1"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_run_leaves_the_folder_byte_identical(run_copy: Path, case: str) -> None:
    from tunewise.advisor.plans import load_plan
    from tunewise.advisor.runner import apply_overrides, run_plan

    prepare, plan_args, overrides, says = REFUSALS[case]
    if prepare is not None:
        prepare(run_copy)
    model = run_copy / ("no-such-model" if overrides.get("model") else "model")
    plan = load_plan(write_plan(run_copy, model, name="again.yaml", **plan_args))
    before = snapshot(run_copy / "out")
    result, code = run_plan(apply_overrides(plan, resume=overrides.get("resume", False)), show_progress=False)
    assert (result.status, code) == ("failed", 1)
    assert says in result.message, result.message
    assert snapshot(run_copy / "out") == before


def test_a_locked_folder_is_refused_naming_it_and_its_owner_and_stays_as_it_was(run_copy: Path) -> None:
    from tunewise.advisor.plans import load_plan
    from tunewise.advisor.runner import run_plan

    out = run_copy / "out"
    plan = load_plan(write_plan(run_copy, run_copy / "model", name="again.yaml"))
    before = snapshot(out)
    lock = acquire(out)  # held through another open file: flock refuses it even within this process
    try:
        assert (out / LOCK_FILE).is_file()
        with pytest.raises(OutputLocked, match=f"{out} is in use by another tunewise run \\(pid {os.getpid()}"):
            acquire(out)
        result, code = run_plan(plan, show_progress=False)
        assert (result.status, code) == ("failed", 1) and "is in use" in result.message
        # The launcher of a multi-process run takes the same lock before it starts any process.
        launched = run_cli("run", "again.yaml", "--processes", "2", "--events", "-", cwd=run_copy)
        assert launched.returncode == 1 and f"pid {os.getpid()}" in launched.stderr
        assert '"kind": "locked"' in launched.stdout
    finally:
        lock.release(accepted=False)
    assert snapshot(out) == before  # the lock file this test made is gone again


def test_a_refused_run_in_a_new_folder_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.advisor.plans import load_plan
    from tunewise.advisor.runner import apply_overrides, run_plan

    monkeypatch.chdir(tmp_path)
    plan = load_plan(write_plan(tmp_path, tmp_path / "model", training="training: {max_usd: 5, budget_hardware: x}\n"))
    plan = apply_overrides(plan, out=str(tmp_path / "new" / "nested"))
    result, _ = run_plan(plan, show_progress=False)
    assert result.status == "failed" and "training.budget_hardware" in result.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.jsonl", "plan.yaml"]


def _events(out: Path) -> list[dict]:
    path = out / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_second_run_is_refused_while_the_first_runs_and_a_killed_owner_frees_the_folder(
        tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    long = TRAINING.replace("max_steps: 2", "max_steps: 100000").replace("save_steps: 1", "save_steps: 100000")
    plan = write_plan(tmp_path, model, training=long)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tunewise.advisor.cli", "run", str(plan), "--quiet"]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not any(e["event"] == "progress" for e in _events(out)):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first run never got going"
            time.sleep(0.05)
        second = run_cli("run", str(plan), "--resume", "--quiet", cwd=tmp_path, timeout=120)
        assert second.returncode == 1
        assert f"{out} is in use by another tunewise run (pid {first.pid}" in second.stderr, second.stderr
        assert first.poll() is None  # the owner runs on
    finally:
        first.kill()  # SIGKILL: no handler runs, the lock file stays with the dead pid in it
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL and (out / LOCK_FILE).is_file()
    from tunewise.advisor.plans import load_plan
    from tunewise.advisor.runner import apply_overrides, run_plan

    monkeypatch.chdir(tmp_path)
    result, code = run_plan(apply_overrides(load_plan(plan), resume=True, max_steps=1), show_progress=False)
    assert code == 0, result.message
    assert not (out / LOCK_FILE).exists()  # an accepted run cleans up the dead owner's lock file


def test_owner_records_tell_a_live_process_from_a_dead_one() -> None:
    assert owner_alive(owner_record())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not owner_alive(owner_record(gone.pid))
    assert not owner_alive({**owner_record(), "start_ticks": -1})  # same pid, another process (pid reused)


USER_FILES = ("notes.txt", "adapter/NOTES.md", "adapter/eval/score.py", "checkpoints/README.txt")


def test_user_files_survive_a_resume_and_a_forced_restart(tmp_path: Path, tiny_model_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.advisor.plans import load_plan
    from tunewise.advisor.runner import apply_overrides, run_plan

    monkeypatch.chdir(tmp_path)  # a run of its own: a resume checks the data files by path
    plan = load_plan(write_plan(tmp_path, shutil.copytree(tiny_model_dir, tmp_path / "model")))
    assert run_plan(plan, show_progress=False)[1] == 0
    out = tmp_path / "out"
    for name in USER_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(f"mine: {name}\n")
    mine = {name: snapshot(out)[name] for name in USER_FILES}
    saved = (out / "adapter" / "adapter_model.safetensors").stat().st_ino

    result, code = run_plan(apply_overrides(plan, resume=True), show_progress=False)
    assert code == 0, result.message
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_ino != saved  # the adapter was saved again
    assert {name: snapshot(out)[name] for name in USER_FILES} == mine

    result, code = run_plan(apply_overrides(plan, force=True, max_steps=1), show_progress=False)
    assert code == 0, result.message
    assert {name: snapshot(out)[name] for name in USER_FILES} == mine
    assert not list((out / "checkpoints").glob("step-*"))  # the old one went (one step leaves no checkpoint)
    assert not list(out.glob(".adapter.*"))  # no leftovers of the swap


def test_a_save_replaces_only_what_the_last_save_wrote(tmp_path: Path) -> None:
    from tunewise.methods._hf.saving import WRITTEN_FILE, remove_saved, save_atomically

    target = tmp_path / "model"

    def writes(*names: str) -> Callable[[Path], None]:
        def write(folder: Path) -> None:
            for name in names:
                (folder / name).write_text(f"tunewise {name}")
        return write

    save_atomically(target, writes("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                   "model.safetensors.index.json", "config.json"))
    (target / "my-notes.md").write_text("mine")
    (target / "evals").mkdir()
    (target / "evals" / "run.sh").write_text("mine too")
    save_atomically(target, writes("model.safetensors", "config.json"))
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["model.safetensors", "config.json", "my-notes.md", "evals", WRITTEN_FILE])  # stale shards gone
    assert (target / "evals" / "run.sh").read_text() == "mine too"

    # A save killed between its two renames: the old folder is put back before the next save.
    os.replace(target, tmp_path / ".model.old-99999")
    save_atomically(target, writes("model.safetensors"))
    assert (target / "my-notes.md").read_text() == "mine" and not (tmp_path / ".model.old-99999").exists()
    assert not (target / "config.json").exists()

    # A folder saved before the list existed: its weights go (they would shadow the new ones), the rest stays.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("pytorch_model.bin", "model.safetensors", "tokenizer.json", "README.md"):
        (legacy / name).write_text("old")
    save_atomically(legacy, writes("adapter_model.safetensors"))
    assert sorted(p.name for p in legacy.iterdir()) == sorted(
        ["adapter_model.safetensors", "tokenizer.json", "README.md", WRITTEN_FILE])

    remove_saved(target)  # --force of an RLHF run: what tunewise wrote goes, the user's stays
    assert sorted(p.name for p in target.iterdir()) == ["evals", "my-notes.md"]


def test_rlhf_stage_cleanup_removes_only_trainer_checkpoints_and_saved_models(tmp_path: Path) -> None:
    from tunewise.methods._hf.device import Placement
    from tunewise.methods._hf.saving import save_atomically
    from tunewise.methods._hf.settings import TrainingSettings
    from tunewise.methods.rlhf.stages import STAGE_FILE, Stage, forget_stages

    stage = Stage("sft", tmp_path, TrainingSettings(), Placement("cpu", "fp32"), lambda *a, **k: None)
    for step in (3, 6):
        (stage.checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        (stage.checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (stage.checkpoints / "keep-me.txt").write_text("mine")
    save_atomically(stage.model_dir, lambda folder: (folder / "model.safetensors").write_text("w"))
    (stage.model_dir / "keep-me.txt").write_text("mine")

    stage.mark_done({"steps": 6})
    assert sorted(p.name for p in stage.checkpoints.iterdir()) == ["keep-me.txt"]
    forget_stages(tmp_path)  # what --force deletes of the earlier run
    assert not (stage.folder / STAGE_FILE).exists() and not (stage.model_dir / "model.safetensors").exists()
    assert (stage.checkpoints / "keep-me.txt").read_text() == "mine"
    assert (stage.model_dir / "keep-me.txt").read_text() == "mine"


def test_rag_index_updates_keep_the_users_files(tmp_path: Path) -> None:
    from tunewise.methods.rag.index import build_index

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Shipping\nParcels ship from the north depot within two days.\n")
    index_dir = tmp_path / "index"
    build_index([docs], index_dir, chunk_tokens=24, overlap_tokens=4)
    (index_dir / "NOTES.md").write_text("mine")
    (index_dir / "data-backup").mkdir()
    (index_dir / "data-backup" / "copy.txt").write_text("mine too")
    first = json.loads((index_dir / "manifest.json").read_text())["data_dir"]

    (docs / "b.md").write_text("# Returns\nReturns are accepted for thirty days.\n")
    build_index([docs], index_dir)
    assert not (index_dir / first).exists()  # the index's own old data folder is replaced
    assert (index_dir / "NOTES.md").read_text() == "mine"
    assert (index_dir / "data-backup" / "copy.txt").read_text() == "mine too"
