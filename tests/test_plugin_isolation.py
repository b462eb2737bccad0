"""Plugin isolation, the whole class: whatever a plugin raises (``SystemExit``, ``KeyboardInterrupt``,
any ``BaseException``), wherever it hangs (import, registration, run-time hooks, training callbacks)
and whatever wrong thing it hands back, tunewise reports it, drops it and goes on.

Plugins here are real installed distributions (dist-info with entry points, see
``support.write_distribution``) driving the real CLI in a subprocess; the subprocess timeouts are
hang guards only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from support import REPO, run_cli, write_distribution
from tunewise.plugins import Hardware, Plan, hookimpl
from tunewise.plugins.hook_results import known_hooks
from tunewise.plugins.manager import TIMEOUT_ENV, PluginHost

BUILTIN_IDS = {"rag", "in_context", "full_finetune", "lora", "continual_pretraining", "rlhf"}
HANG_GUARD_S = 60
SHORT_LIMIT = {TIMEOUT_ENV: "2"}  # seconds; every hang below costs this once

FAULTS = {
    "exit0": "SystemExit(0)",
    "exit3": "SystemExit(3)",
    "ctrlc": "KeyboardInterrupt()",
    "boom": "Boom('custom base exception')",
    "genexit": "GeneratorExit()",
}
"""Exceptions that are not ``Exception``s: each must be reported like any other failure."""
BOOM = "class Boom(BaseException):\n    pass\n"

ECHO = textwrap.dedent('''
    from tunewise.plugins import Fit, Quote, hookimpl

    class Echo:
        id = "echo"
        title = "Echo"
        summary = "Repeats the prompt."
        config_class = None
        def fit(self, profile):
            return Fit(self.id, 0.1, ("echo only repeats",))
        def estimate(self, profile, hardware):
            return Quote(self.id, 1.0, 0.0, 0.0, 0.0, 0.0, 0.1, True)
        def run(self, plan, events):
            raise RuntimeError("no run")

    @hookimpl
    def tunewise_register_methods(register):
        register(Echo)
''')

COUNTDOWN = textwrap.dedent('''
    from tunewise.plugins import Fit, Quote, RunResult, hookimpl

    class Countdown:
        """Trains nothing: counts steps, honouring the sink's stop request."""
        id = "countdown"
        title = "Countdown"
        summary = "Counts to ten."
        config_class = None
        def fit(self, profile):
            return Fit(self.id, 0.1, ("counts",))
        def estimate(self, profile, hardware):
            return Quote(self.id, 0, 0, 0, 0, 0, 0, True)
        def run(self, plan, events):
            events("start", method=self.id, total_steps=10)
            events("eval", phase="before", step=0, metrics={"remaining": 10.0})
            step = 0
            for step in range(1, 11):
                events("progress", step=step, total_steps=10, loss=10.0 - step, tokens_per_s=1.0)
                if getattr(events, "stop_requested", False):
                    break
            events("eval", phase="after", step=step, metrics={"remaining": 10.0 - step})
            return RunResult(self.id, "completed", {"remaining": 10.0}, {"remaining": 10.0 - step}, steps=step)

    class StopAtThree:
        def on_step(self, step, metrics):
            return step >= 3

    @hookimpl
    def tunewise_register_methods(register):
        register(Countdown)

    @hookimpl
    def tunewise_training_callbacks(plan):
        return [StopAtThree()]
''')


def _plugin(body: str) -> str:
    return "import time\nfrom tunewise.plugins import hookimpl\n" + BOOM + textwrap.dedent(body)


def _site(tmp_path: Path, **plugins: str) -> Path:
    """One installed distribution per plugin: entry-point name -> module source."""
    site = tmp_path / "site"
    for name, source in plugins.items():
        write_distribution(site, f"tw-{name}", {f"tw_{name}": source}, {name: f"tw_{name}"})
    return site


def _cli(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"PYTHONPATH": str(site), **(env or {})}, timeout=HANG_GUARD_S)


def _plugins_json(site: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = _cli(site, "plugins", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _failures(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_plugin: dict[str, list[dict[str, Any]]] = {}
    for failure in data["failures"]:
        by_plugin.setdefault(failure["plugin"], []).append(failure)
    return by_plugin


def _hook_faults(exc: str) -> str:
    """A plugin whose every hook raises ``exc``."""
    return _plugin(f'''
        @hookimpl
        def tunewise_register_methods(register):
            raise {exc}

        @hookimpl
        def tunewise_register_hardware(register):
            raise {exc}

        @hookimpl
        def tunewise_adjust_recommendations(ranking):
            raise {exc}

        @hookimpl
        def tunewise_load_dataset(source):
            raise {exc}
    ''')


XYZ_READER = _plugin('''
    @hookimpl
    def tunewise_load_dataset(source):
        if source.endswith(".xyz"):
            return [{"text": line} for line in open(source).read().splitlines()]
        return None
''')


def test_base_exceptions_at_import_and_in_hooks_are_reported(tmp_path: Path) -> None:
    plugins = {"echo": ECHO, "xyzreader": XYZ_READER}
    for fault, exc in FAULTS.items():
        plugins[f"imp_{fault}"] = BOOM + f"raise {exc}\n"
        plugins[f"hook_{fault}"] = _hook_faults(exc)
    site = _site(tmp_path, **plugins)

    data = _plugins_json(site)
    assert set(data["methods"]) == BUILTIN_IDS | {"echo"}
    failures = _failures(data)
    for fault, exc in FAULTS.items():
        kind = exc.split("(")[0]
        [at_import] = failures[f"imp_{fault}"]
        assert at_import["stage"] == "import" and kind in at_import["error"], at_import
        [in_hook] = failures[f"hook_{fault}"]
        assert (in_hook["stage"], in_hook["hook"]) == ("hook", "tunewise_register_methods"), in_hook
        assert kind in in_hook["error"]

    # The rest of tunewise works with these installed: ranking (methods, hardware, adjustment hooks) ...
    answers = REPO / "examples" / "answers" / "support-billing.yaml"
    proc = _cli(site, "recommend", "--answers", str(answers), "--format", "json", "--no-audit")
    assert proc.returncode == 0, proc.stderr
    ranking = json.loads(proc.stdout)
    assert {r["method"] for r in ranking["recommendations"]} == BUILTIN_IDS | {"echo"}
    for fault in FAULTS:
        assert any(f"hook_{fault}" in p and "adjust" in p for p in ranking["problems"]), ranking["problems"]
    # ... and reading data through the one plugin that knows the format.
    (tmp_path / "rows.xyz").write_text("first row\nsecond row\n")
    proc = _cli(site, "audit", str(tmp_path / "rows.xyz"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"] == 2


def test_strict_mode_turns_a_plugin_exit_into_an_error(tmp_path: Path) -> None:
    site = _site(tmp_path, quitter=BOOM + "raise SystemExit(0)\n")
    proc = _cli(site, "--strict-plugins", "plugins")
    assert proc.returncode == 1
    assert "quitter" in proc.stderr and "SystemExit" in proc.stderr and "Traceback" not in proc.stderr


HANG_AT_IMPORT = "import time\ntime.sleep(1e9)\n"
HANG_IN_REGISTER = _plugin('''
    @hookimpl
    def tunewise_register_methods(register):
        time.sleep(1e9)
''')


def test_hanging_import_and_registration_are_abandoned(tmp_path: Path) -> None:
    site = _site(tmp_path, echo=ECHO, hang_import=HANG_AT_IMPORT, hang_register=HANG_IN_REGISTER)
    data = _plugins_json(site, env=SHORT_LIMIT)
    assert set(data["methods"]) == BUILTIN_IDS | {"echo"}
    failures = _failures(data)
    [imported] = failures["hang_import"]
    assert imported["stage"] == "timeout" and "import" in imported["error"] and TIMEOUT_ENV in imported["error"]
    [registered] = failures["hang_register"]
    assert (registered["stage"], registered["hook"]) == ("timeout", "tunewise_register_methods")


def test_a_real_ctrl_c_still_interrupts_while_a_plugin_runs(tmp_path: Path) -> None:
    marker = tmp_path / "plugin-started"
    site = _site(tmp_path, stuck=f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(1e9)\n")
    env = {**os.environ, "PYTHONPATH": str(site), TIMEOUT_ENV: "600"}
    proc = subprocess.Popen([sys.executable, "-m", "tunewise.advisor.cli", "plugins"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stopped = threading.Event()
        while not marker.exists() and proc.poll() is None:
            stopped.wait(0.05)
        assert marker.exists(), proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err


def _run(tmp_path: Path, site: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    (tmp_path / "rows.jsonl").write_text('{"text": "hello"}\n')
    plan = tmp_path / "plan.yaml"
    plan.write_text("method: countdown\ndata: rows.jsonl\n")
    out = tmp_path / "out"
    proc = _cli(site, "run", str(plan), "--quiet", "--out", str(out), env=SHORT_LIMIT)
    events_file = out / "events.jsonl"
    events = [json.loads(line) for line in events_file.read_text().splitlines()] if events_file.exists() else []
    return proc, events


def test_a_run_survives_broken_run_time_hooks_and_callbacks(tmp_path: Path) -> None:
    def callback(method: str, body: str) -> str:
        """A plugin returning one callback whose ``method`` runs ``body``."""
        return _plugin(f'''
            class CB:
                def {method}(self, *args):
                    {body}

            @hookimpl
            def tunewise_training_callbacks(plan):
                return [CB()]
        ''')

    site = _site(
        tmp_path,
        countdown=COUNTDOWN,
        cb_hang=_plugin('''
            @hookimpl
            def tunewise_training_callbacks(plan):
                time.sleep(1e9)
        '''),
        cb_number=_plugin('''
            @hookimpl
            def tunewise_training_callbacks(plan):
                return 42
        '''),
        cb_garbage=_plugin('''
            @hookimpl
            def tunewise_training_callbacks(plan):
                return [1, "on_step", object()]
        '''),
        cb_exit=callback("on_step", "raise SystemExit(0)"),
        cb_ctrlc=callback("on_eval", "raise KeyboardInterrupt"),
        cb_sleeper=callback("on_step", "time.sleep(1e9)"),
        around=_plugin('''
            @hookimpl
            def tunewise_before_run(plan):
                raise SystemExit(0)

            @hookimpl
            def tunewise_after_run(plan, result):
                raise Boom("after the run")
        '''),
    )
    proc, events = _run(tmp_path, site)
    assert proc.returncode == 0, proc.stderr
    end = events[-1]
    assert end["event"] == "end" and end["status"] == "completed"
    assert end["result"]["steps"] == 3  # the good callback still stopped the run
    warnings = "\n".join(e["message"] for e in events if e["event"] == "log" and e.get("level") == "warning")
    expected = [
        ("'cb_hang'", "timeout in tunewise_training_callbacks"),
        ("'cb_number'", "invalid in tunewise_training_callbacks"),
        ("'cb_garbage'", "callback 1"),
        ("'cb_garbage'", "callback 3"),
        ("CB.on_step raised SystemExit", "dropped"),
        ("CB.on_eval raised KeyboardInterrupt", "dropped"),
        ("CB.on_step did not return within", "dropped"),
        ("'around'", "hook in tunewise_before_run: SystemExit"),
        ("'around'", "hook in tunewise_after_run: Boom: after the run"),
    ]
    lines = warnings.splitlines()
    for first, second in expected:
        assert any(first in line and second in line for line in lines), (first, second, warnings)


QUITTING_METHODS = textwrap.dedent('''
    import time
    from tunewise.plugins import Fit, hookimpl

    class Quitter:
        """fit calls sys.exit; run raises SystemExit too."""
        id, title, summary, config_class = "quitter", "Quitter", "Exits.", None
        def fit(self, profile):
            raise SystemExit(0)
        def estimate(self, profile, hardware): ...
        def run(self, plan, events):
            raise SystemExit(3)

    class Stuck:
        """fit is fine, estimate never returns."""
        id, title, summary, config_class = "stuck", "Stuck", "Hangs.", None
        def fit(self, profile):
            return Fit(self.id, 0.5, ("fits",))
        def estimate(self, profile, hardware):
            time.sleep(1e9)
        def run(self, plan, events): ...

    @hookimpl
    def tunewise_register_methods(register):
        register(Quitter)
        register(Stuck)
''')


def test_method_code_is_isolated_too(tmp_path: Path) -> None:
    """A third-party method's fit/estimate (ranking) and run (``tunewise run``) are plugin code as well."""
    site = _site(tmp_path, methods=QUITTING_METHODS)
    answers = REPO / "examples" / "answers" / "support-billing.yaml"
    proc = _cli(site, "recommend", "--answers", str(answers), "--format", "json", "--no-audit", env=SHORT_LIMIT)
    assert proc.returncode == 0, proc.stderr
    recommendations = {r["method"]: r for r in json.loads(proc.stdout)["recommendations"]}
    assert set(recommendations) == BUILTIN_IDS | {"quitter", "stuck"}
    assert "SystemExit" in recommendations["quitter"]["error"]
    assert "did not return within" in recommendations["stuck"]["error"]

    (tmp_path / "rows.jsonl").write_text('{"text": "hello"}\n')
    (tmp_path / "plan.yaml").write_text("method: quitter\ndata: rows.jsonl\n")
    proc = _cli(site, "run", str(tmp_path / "plan.yaml"), "--quiet", "--out", str(tmp_path / "out"))
    assert proc.returncode == 1 and "SystemExit: 3" in proc.stderr, proc.stderr


def test_wrong_registrations_are_dropped_and_named(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        echo=ECHO,
        mixed=_plugin('''
            import math
            from tunewise.plugins import Hardware

            class NoRun:
                id, title, summary, config_class = "norun", "No run", "Cannot run.", None
                def fit(self, profile): ...
                def estimate(self, profile, hardware): ...

            class NumericId(NoRun):
                id = 5
                def run(self, plan, events): ...

            @hookimpl
            def tunewise_register_methods(register):
                register("lora")
                register(NoRun)
                register(NumericId)
                return [NoRun]

            @hookimpl
            def tunewise_register_hardware(register):
                register(Hardware("good-gpu", peak_tflops=100.0, memory_gb=48.0))
                register(Hardware("nan-gpu", peak_tflops=math.nan, memory_gb=48.0))
                register(Hardware("negative-gpu", peak_tflops=100.0, memory_gb=-1.0))
                register({"name": "dict-gpu"})
        '''),
        wrapper=_plugin('''
            @hookimpl(hookwrapper=True)
            def tunewise_register_methods(register):
                yield
        '''),
    )
    data = _plugins_json(site)
    assert set(data["methods"]) == BUILTIN_IDS | {"echo"}
    failures = _failures(data)
    mixed = [f["error"] for f in failures["mixed"] if f["stage"] == "invalid"]
    for needle in ("value of type str, not a method class", "'NoRun' lacks run", "'NumericId'.id is 5",
                   "returned a value of type list"):
        assert any(needle in error for error in mixed), (needle, mixed)
    [wrapper] = failures["wrapper"]
    assert wrapper["stage"] == "signature" and "hook wrappers are not supported" in wrapper["error"]

    estimate = ("estimate", "--method", "lora", "--tokens", "1e6", "--format", "json", "--gpu")
    assert _cli(site, *estimate, "good-gpu").returncode == 0
    for dropped in ("nan-gpu", "negative-gpu", "dict-gpu"):
        proc = _cli(site, *estimate, dropped)
        assert proc.returncode == 1 and dropped in proc.stderr and "Traceback" not in proc.stderr


def test_a_broken_dist_info_does_not_hide_other_plugins(tmp_path: Path) -> None:
    site = _site(tmp_path, echo=ECHO)
    broken = site / "tw_broken-1.0.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: tw-broken\nVersion: 1.0\n")
    (broken / "entry_points.txt").write_text("[tunewise]\nthis line is not an entry point\n")
    data = _plugins_json(site)
    assert "echo" in data["methods"]
    assert any(f["stage"] == "import" and "entry points" in f["error"] for f in data["failures"]), data["failures"]


def test_a_bad_time_limit_setting_is_a_clear_error(tmp_path: Path) -> None:
    proc = _cli(_site(tmp_path, echo=ECHO), "plugins", env={TIMEOUT_ENV: "soon"})
    assert proc.returncode == 1 and TIMEOUT_ENV in proc.stderr and "Traceback" not in proc.stderr


def test_an_abandoned_call_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hook past its limit that registers later changes no result, and is not called again."""

    class Late:
        def __init__(self) -> None:
            self.release, self.finished = threading.Event(), threading.Event()
            self.calls = 0

        @hookimpl
        def tunewise_register_hardware(self, register):  # type: ignore[no-untyped-def]
            self.calls += 1
            self.release.wait()
            register(Hardware("late-gpu", peak_tflops=1.0, memory_gb=1.0))
            self.finished.set()

    monkeypatch.setenv(TIMEOUT_ENV, "0.2")
    late = Late()
    host = PluginHost(load_entry_points=False, builtins=(), disabled=(), extra_plugins=[("late", late)])
    registered = host.collect("tunewise_register_hardware")
    assert registered == [] and [f.stage for f in host.failures] == ["timeout"]
    assert host.collect("tunewise_register_hardware") == [] and late.calls == 1  # not called (nor waited for) again
    late.release.set()
    assert late.finished.wait(HANG_GUARD_S)
    assert registered == [] and [f.stage for f in host.failures] == ["timeout"]

    assert host.call("tunewise_before_run", plan=Plan("countdown")) == []  # the plugin is abandoned as a whole


def test_hooks_get_private_copies_of_their_arguments() -> None:
    class Meddler:
        @hookimpl
        def tunewise_before_run(self, plan):  # type: ignore[no-untyped-def]
            plan.config["changed"] = True
            plan.training.clear()

    host = PluginHost(load_entry_points=False, builtins=(), disabled=(), extra_plugins=[("meddler", Meddler())])
    plan = Plan("countdown", config={"steps": 10}, training={"max_steps": 3})
    assert host.call("tunewise_before_run", plan=plan) == [("meddler", None)]
    assert plan.config == {"steps": 10} and plan.training == {"max_steps": 3} and not host.failures


ASKERS = textwrap.dedent('''
    import sys
    import threading
    from tunewise.plugins import Question, hookimpl

    RELEASE = threading.Event()

    def stuck(answers):
        RELEASE.wait()
        return False

    def keyboard(answers):
        raise KeyboardInterrupt

    @hookimpl
    def tunewise_register_questions(register):
        register(Question("iso_exit", "Exits?", ask_if=lambda answers: sys.exit(0)))
        register(Question("iso_ctrlc", "Interrupts?", ask_if=keyboard))
        register(Question("iso_stuck", "Hangs?", ask_if=stuck))
        register(Question("iso_never", "Never asked?", ask_if=lambda answers: answers.clear()))
        register({"id": "iso_dict"})
        register(Question("iso_weird", "Weird type?", type="weird"))
        register(Question("has space", "Bad id?"))
''')


def test_plugin_questions_are_checked_and_their_conditions_isolated(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.advisor.interview import plugin_questions, should_ask
    from tunewise.plugins import manager

    site = _site(tmp_path, askers=ASKERS)
    monkeypatch.syspath_prepend(str(site))  # a real installed distribution, discovered in this process
    monkeypatch.setenv(TIMEOUT_ENV, "0.5")
    host = PluginHost(strict=False, disabled=())
    monkeypatch.setattr(manager, "_HOST", host)
    try:
        asked = {q.id: q for q in plugin_questions() if q.id.startswith("iso_")}  # other installed plugins aside
        assert set(asked) == {"iso_exit", "iso_ctrlc", "iso_stuck", "iso_never"}
        invalid = [f.error for f in host.failures if f.plugin == "askers" and f.stage == "invalid"]
        assert len(invalid) == 3 and any("weird" in e for e in invalid) and any("has space" in e for e in invalid)
        answers = {"use_case": "x"}
        assert [should_ask(asked[i], answers) for i in ("iso_exit", "iso_ctrlc", "iso_stuck")] == [True] * 3
        assert should_ask(asked["iso_never"], answers) is False and answers == {"use_case": "x"}
    finally:
        sys.modules["tw_askers"].RELEASE.set()


def test_every_hook_has_a_result_check() -> None:
    assert list(known_hooks()) == PluginHost.hook_names()
