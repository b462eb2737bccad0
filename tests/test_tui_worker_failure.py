"""A run worker that fails, or that a guardrail stops, opens a dialog and the app stays usable; a run
started from the app lives in its own session, so closing the terminal (SIGHUP to the app's session)
does not reach it.

Real ``tunewise run`` processes started by the app under Pilot: a plan whose data has a broken row
(the run fails before any model loads) and a tiny-model plan with a spent time budget (``stopped``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tui_support import async_test
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.plugins import manager


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))


async def _wait_for_screen(pilot, app: TunewiseApp, name: str, timeout: float = 240.0) -> None:  # type: ignore[no-untyped-def]
    waited = 0.0
    while type(app.screen).__name__ != name:
        assert waited < timeout, f"timed out waiting for {name} (on {type(app.screen).__name__})"
        await pilot.pause(0.2)
        waited += 0.2


def _text(app: TunewiseApp, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


@async_test
async def test_a_failing_run_worker_opens_an_error_dialog_and_the_app_stays_usable(tmp_path: Path,
                                                                                 tiny_model_dir: Path) -> None:
    data = tmp_path / "chat.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text(json.dumps(good) + "\n" + '{"messages": [{"role": "user"\n')
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {tiny_model_dir}\ndata: {data}\ntraining: {{max_steps: 2}}\n")
    out = tmp_path / "run"
    app = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        process = app.start_run(plan, out)
        app.show_run(out, process)
        # The run's own session: a terminal's hang-up goes to the app's session, never to the run.
        assert os.getsid(process.process.pid) != os.getsid(0)
        await _wait_for_screen(pilot, app, "ErrorDialog")
        assert "The run failed (data)" in _text(app, ".dialog-title")
        assert "chat.jsonl:2: invalid JSON" in _text(app, "#error-message")
        for _ in range(300):
            if process.poll() is not None:
                break
            await pilot.pause(0.1)
        assert process.poll() == 1
        await pilot.press("escape")
        assert type(app.screen).__name__ == "RunScreen"
        assert "failed" in _text(app, "#run-head")
        await pilot.press("escape")
        assert type(app.screen).__name__ == "WelcomeScreen"
        await pilot.press("n")  # still usable: a new consultation starts
        await pilot.pause()
        assert type(app.screen).__name__ == "InterviewScreen"


@async_test
async def test_a_run_stopped_by_its_budget_says_so_and_keeps_its_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Order {i}?"},
                                                     {"role": "assistant", "content": f"Ships in {i} days."}]})
                            + "\n" for i in range(12)))
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {tiny_model_dir}\ndata: {data}\n"
                    "training: {max_steps: 3, batch_size: 2, seq_len: 64, generation_examples: 0,\n"
                    "           max_hours: 0.000001}\n")
    out = tmp_path / "run"
    app = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        process = app.start_run(plan, out)
        app.show_run(out, process)
        await _wait_for_screen(pilot, app, "ErrorDialog")
        assert "guardrail" in _text(app, ".dialog-title")
        message = _text(app, "#error-message")
        assert "stopped: budget" in message and "training.max_hours" in message and "--resume" in message
        for _ in range(300):  # the end event comes just before the process exits
            if process.poll() is not None:
                break
            await pilot.pause(0.1)
        assert process.poll() == 3
        await pilot.press("escape")
        screen = app.screen
        assert type(screen).__name__ == "RunScreen" and "stopped" in _text(app, "#run-head")
        assert screen.state.checkpoints and screen.state.checkpoints[-1][0] == 1
        await pilot.press("escape")
        assert type(app.screen).__name__ == "WelcomeScreen"
