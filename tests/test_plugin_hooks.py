"""Hooks nobody else exercises, through real plugins registered with the host and tunewise's own callers.

``tunewise_register_hardware`` feeds the catalogue the quotes use; ``tunewise_training_callbacks``,
``tunewise_before_run`` and ``tunewise_after_run`` wrap every ``tunewise run`` (advisor/runner.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tunewise.advisor.hardware import catalogue, find_hardware
from tunewise.advisor.runner import run_plan
from tunewise.plugins import Fit, Hardware, Plan, Quote, RunResult, hookimpl
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.testing import plugin_host


class AcceleratorPlugin:
    @hookimpl
    def tunewise_register_hardware(self, register):  # type: ignore[no-untyped-def]
        register(Hardware("MI300X", peak_tflops=1307, memory_gb=192, usd_per_hour_low=2.0, usd_per_hour_high=4.5,
                          aliases=("mi300",), source="AMD Instinct MI300X data sheet"))
        register(Hardware("H100", peak_tflops=1.0, memory_gb=1.0))  # a taken name: the built-in entry stays


def test_registered_hardware_is_found_and_quoted() -> None:
    with plugin_host(("accelerators", AcceleratorPlugin())):
        mi300 = find_hardware("MI-300")
        assert (mi300.name, mi300.memory_gb, mi300.peak_tflops) == ("MI300X", 192, 1307)
        assert find_hardware("h100").memory_gb > 1.0
        assert list(catalogue()).count("H100") <= 1
    names = {n.lower() for n in catalogue()}
    assert "mi300x" not in names  # gone with the plugin


class Countdown:
    """A real method that trains nothing: it counts steps, honouring the sink's stop request."""

    id = "countdown"
    title = "Countdown"
    summary = "Counts to ten."
    config_class = None

    def fit(self, profile):  # type: ignore[no-untyped-def]
        return Fit(self.id, 0.1, ("counts",))

    def estimate(self, profile, hardware):  # type: ignore[no-untyped-def]
        return Quote(self.id, 0, 0, 0, 0, 0, 0, True, assumptions={"steps": 10})

    def run(self, plan: Plan, events: Any) -> RunResult:
        if plan.config.get("fail"):
            raise TunewiseError("countdown: told to fail")
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
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def on_step(self, step: int, metrics: dict[str, float]) -> bool:
        self.log.append(f"step {step} loss {metrics['loss']:g}")
        return step >= 3

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.log.append(f"eval {step} {metrics}")

    def on_end(self, result: RunResult) -> None:
        self.log.append(f"end {result.status} after {result.steps}")


class Raising:
    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        raise ValueError("callback bug")


class RunWatcher:
    def __init__(self) -> None:
        self.log: list[str] = []

    @hookimpl
    def tunewise_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(Countdown)

    @hookimpl
    def tunewise_training_callbacks(self, plan):  # type: ignore[no-untyped-def]
        self.log.append(f"callbacks for {plan.method}")
        return [StopAtThree(self.log), Raising()]

    @hookimpl
    def tunewise_before_run(self, plan):  # type: ignore[no-untyped-def]
        self.log.append(f"before {plan.method} -> {Path(plan.output_dir).name}")

    @hookimpl
    def tunewise_after_run(self, plan, result):  # type: ignore[no-untyped-def]
        self.log.append(f"after {result.status}: {result.message or result.metrics_after}")


def _events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def test_run_hooks_wrap_a_run_and_callbacks_stop_it_early(tmp_path: Path) -> None:
    watcher = RunWatcher()
    with plugin_host(("watcher", watcher)):
        result, code = run_plan(Plan("countdown", output_dir=str(tmp_path / "out")), show_progress=False)
    assert (result.status, result.steps, code) == ("completed", 3, 0)
    assert watcher.log == [
        "callbacks for countdown",
        "before countdown -> out",
        "eval 0 {'remaining': 10.0}",
        "step 1 loss 9", "step 2 loss 8", "step 3 loss 7",
        "eval 3 {'remaining': 7.0}",
        "after completed: {'remaining': 7.0}",
        "end completed after 3",
    ]
    events = _events(tmp_path / "out")
    warnings = [e["message"] for e in events if e["event"] == "log" and e["level"] == "warning"]
    assert len(warnings) == 1 and "Raising.on_step raised ValueError: callback bug" in warnings[0]
    assert events[-1]["event"] == "end" and events[-1]["status"] == "completed"


def test_after_run_sees_a_failed_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    watcher = RunWatcher()
    with plugin_host(("watcher", watcher)):
        result, code = run_plan(Plan("countdown", config={"fail": True}, output_dir=str(tmp_path)),
                                events_to_stdout=True, show_progress=False)
    assert (result.status, code) == ("failed", 1)
    assert watcher.log[-2:] == ["after failed: countdown: told to fail", "end failed after 0"]
    streamed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [e["event"] for e in streamed][-2:] == ["error", "end"]
    assert list(tmp_path.iterdir()) == []  # refused before ``start``: the folder is left as it was
