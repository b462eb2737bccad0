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
from tui_support import async_test, wait_until
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.plugins import manager


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))


async def _wait_for_screen(pilot, app: TunewiseApp, name: str, timeout: float = 240.0) -> None:  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: type(app.screen).__name__ == name, f"screen {name}", timeout)


def _text(app: TunewiseApp, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def _wait_for_text(pilot, app: TunewiseApp, selector: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``selector`` on the current screen is mounted and shows ``expected``."""
    await wait_until(pilot, lambda: expected in _text(app, selector), f"{expected!r} in {selector}")


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
        await _wait_for_text(pilot, app, ".dialog-title", "The run failed (data)")
        await _wait_for_text(pilot, app, "#error-message", "chat.jsonl:2: invalid JSON")
        await wait_until(pilot, lambda: process.poll() is not None, "the run process to exit")
        assert process.poll() == 1
        await pilot.press("escape")
        await _wait_for_screen(pilot, app, "RunScreen")
        await _wait_for_text(pilot, app, "#run-head", "failed")
        await pilot.press("escape")
        await _wait_for_screen(pilot, app, "WelcomeScreen")
        await pilot.press("n")  # still usable: a new consultation starts
        await _wait_for_screen(pilot, app, "InterviewScreen")


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
        await _wait_for_text(pilot, app, ".dialog-title", "guardrail")
        await _wait_for_text(pilot, app, "#error-message", "stopped: budget")
        message = _text(app, "#error-message")
        assert "training.max_hours" in message and "--resume" in message
        # the end event comes just before the process exits
        await wait_until(pilot, lambda: process.poll() is not None, "the run process to exit")
        assert process.poll() == 3
        await pilot.press("escape")
        await _wait_for_screen(pilot, app, "RunScreen")
        await _wait_for_text(pilot, app, "#run-head", "stopped")
        screen = app.screen
        assert screen.state.checkpoints and screen.state.checkpoints[-1][0] == 1
        await pilot.press("escape")
        await _wait_for_screen(pilot, app, "WelcomeScreen")
