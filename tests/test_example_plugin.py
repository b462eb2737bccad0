"""The example plugin installed for real: listed, ranked, run, its own tests pass, uninstalled cleanly.

The plugin is built into a wheel from a copy of ``examples/prompt_tuning_plugin`` (so no build
files land in the repository) and pip-installed into this interpreter's environment; every check
then runs ``tunewise`` in a fresh process, the way a user would. The module fixture uninstalls it
whatever happens, and the last test checks the uninstall left nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO, run_cli

PLUGIN_SRC = REPO / "examples" / "prompt_tuning_plugin"
DIST = "tunewise-prompt-tuning"
PACKAGE = "tunewise_prompt_tuning"
QUESTION = "Do you need many tasks served from one frozen model?"


def _pip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _installed_files() -> list[Path]:
    """Every file the installed distribution owns (from its RECORD), read in a fresh interpreter."""
    code = ("import json, importlib.metadata as m; d = m.distribution('tunewise-prompt-tuning'); "
            "print(json.dumps([str(d.locate_file(f)) for f in d.files or []]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [Path(p) for p in json.loads(out.stdout)]


def _is_installed() -> bool:
    return _pip("show", DIST, check=False).returncode == 0


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Build the wheel, install it without dependencies (tunewise and peft are here already), uninstall after."""
    work = tmp_path_factory.mktemp("example-plugin")
    source = work / "source"
    shutil.copytree(PLUGIN_SRC, source, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", "runs"))
    if _is_installed():  # left behind by an interrupted earlier run
        _pip("uninstall", "-y", DIST)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(work / "dist"), str(source))
    wheel = next((work / "dist").glob("tunewise_prompt_tuning-*.whl"))
    try:
        _pip("install", "--no-deps", "--no-index", str(wheel))
        yield _installed_files()
    finally:
        if _is_installed():
            _pip("uninstall", "-y", DIST, check=False)


def test_listed_by_tunewise_plugins(installed: list[Path]) -> None:
    result = run_cli("plugins", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plugin = next(p for p in report["plugins"] if p["name"] == "prompt_tuning")
    assert (plugin["package"], plugin["version"], plugin["builtin"]) == (DIST, "0.1.0", False)
    assert plugin["methods"] == ["prompt_tuning"]
    assert plugin["hooks"] == ["tunewise_register_methods", "tunewise_register_questions"]
    assert "prompt_tuning" in report["methods"]
    assert not [f for f in report["failures"] if f["plugin"] == "prompt_tuning"]
    strict = run_cli("--strict-plugins", "plugins")
    assert strict.returncode == 0 and "prompt_tuning" in strict.stdout


def test_ranked_by_tunewise_recommend(installed: list[Path]) -> None:
    result = run_cli("recommend", "--answers", str(PLUGIN_SRC / "answers.yaml"), "--format", "json")
    assert result.returncode == 0, result.stderr
    ranking = json.loads(result.stdout)["recommendations"]
    top = ranking[0]
    assert top["method"] == "prompt_tuning" and top["title"] == "Prompt tuning"
    assert any(QUESTION in reason for reason in top["reasons"])
    assert top["quote"]["fits"] and top["quote"]["assumptions"]["trainable_params"] > 0
    # Without the plugin's answers it still takes part, and a single task goes to LoRA first.
    result = run_cli("recommend", "--answers", str(REPO / "examples" / "answers" / "ticket-routing.yaml"),
                     "--format", "json")
    order = [r["method"] for r in json.loads(result.stdout)["recommendations"]]
    assert "prompt_tuning" in order and order.index("lora") < order.index("prompt_tuning")


INTERVIEW_PROBE = """
import json
from tunewise.advisor.interview import profile_from_answers, questions_for_topic
goals = questions_for_topic("goals")
ids = [q.id for q in goals]
follow_up = next(q for q in goals if q.id == "prompt_tuning.tasks")
profile = profile_from_answers({"prompt_tuning.many_tasks": True, "prompt_tuning.tasks": 12})
print(json.dumps({"ids": ids, "asked_when_no": follow_up.ask_if({"prompt_tuning.many_tasks": False}),
                  "extra": dict(profile.extra)}))
"""


def test_asked_in_the_interview(installed: list[Path]) -> None:
    out = subprocess.run([sys.executable, "-c", INTERVIEW_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["ids"][-2:] == ["prompt_tuning.many_tasks", "prompt_tuning.tasks"]  # after the built-in goals
    assert seen["asked_when_no"] is False
    assert seen["extra"] == {"prompt_tuning.many_tasks": True, "prompt_tuning.tasks": 12}


def test_run_by_tunewise_run(installed: list[Path], tiny_model_dir: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"method: prompt_tuning\nmodel: {tiny_model_dir}\ndata: {PLUGIN_SRC / 'data' / 'reviews.jsonl'}\n"
        f"output_dir: {tmp_path / 'out'}\n"
        "config: {num_virtual_tokens: 8, init: random}\n"
        "training: {max_steps: 3, batch_size: 4, learning_rate: 0.1, generation_examples: 2}\n"
    )
    result = run_cli("run", str(plan), "--quiet", "--allow-outside-paths")  # the model and data live elsewhere
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events][-1] == "end" and events[-1]["status"] == "completed"
    evals = {e["phase"]: e["metrics"] for e in events if e["event"] == "eval"}
    assert set(evals) == {"before", "after"} and evals["after"]["loss"] > 0
    assert sum(e["event"] == "progress" for e in events) == 3
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text(plan.read_text().replace("num_virtual_tokens: 8", "num_virtual_tokens: 0"))
    refused = run_cli("run", str(bad), "--quiet", "--allow-outside-paths")
    assert refused.returncode == 1 and "config.num_virtual_tokens" in refused.stderr


def test_plugin_own_tests_pass(installed: list[Path]) -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=PLUGIN_SRC, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\b7 passed\b", result.stdout) and "skipped" not in result.stdout, result.stdout[-500:]


def test_uninstall_removes_it_cleanly(installed: list[Path]) -> None:
    package_dir = next(p.parent for p in installed if p.name == "plugin.py" and p.parent.name == PACKAGE)
    _pip("uninstall", "-y", DIST)
    assert not _is_installed()
    assert not [p for p in installed if p.exists()]
    assert not package_dir.exists()
    report = json.loads(run_cli("plugins", "--format", "json").stdout)
    assert "prompt_tuning" not in report["methods"]
    assert not [f for f in report["failures"] if f["plugin"] == "prompt_tuning"]
    gone = run_cli("recommend", "--answers", str(PLUGIN_SRC / "answers.yaml"), "--format", "json")
    assert gone.returncode == 1 and "prompt_tuning.many_tasks" in gone.stderr  # its questions left with it
