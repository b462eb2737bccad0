"""Real runs from the app on a tiny random model: plan → run → results, and cancel → checkpoint → resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tui_support import async_test
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.plugins import manager

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "support_chat.jsonl"


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))


async def _wait(pilot, condition, timeout: float = 240.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    waited = 0.0
    while not condition():
        assert waited < timeout, f"timed out waiting for {what}"
        await pilot.pause(0.25)
        waited += 0.25


def _fill(app: TunewiseApp, values: dict[str, str]) -> None:
    for qid, value in values.items():
        app.screen.query_one(f"#q-{qid.replace('.', '-')} #input").value = value


@async_test
async def test_a_tiny_plan_runs_from_the_app_to_results(tmp_path: Path, tiny_model_dir: Path) -> None:
    app = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.start_consultation()  # the decision log belongs to a consultation
        app.show_plan("lora")
        await pilot.pause()
        _fill(app, {"plan.model": str(tiny_model_dir), "plan.data": str(DATA), "plan.output_dir": "runs/tiny",
                    "training.max_steps": "3", "training.batch_size": "2", "training.seq_len": "64",
                    "training.eval_max_examples": "4", "training.generation_examples": "1",
                    "training.max_new_tokens": "4", "training.save_steps": "2"})
        await pilot.press("ctrl+r")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "RunScreen"
        await _wait(pilot, lambda: screen.state.finished, what="the run to finish")
        assert screen.state.status == "completed", list(screen.state.logs)
        assert screen.state.step == 3 and [s for s, _ in screen.state.losses] == [1, 2, 3]
        assert "step 3/3" in str(screen.query_one("#run-steps").render())
        await pilot.press("v")
        await app.workers.wait_for_complete()
        await pilot.pause()
        results = app.screen
        assert type(results).__name__ == "ResultsScreen"
        metrics = results.query_one("#results-metrics")
        names = [str(metrics.get_row_at(i)[0]) for i in range(metrics.row_count)]
        assert "loss" in names and "perplexity" in names
        artifacts = results.query_one("#results-artifacts")
        assert artifacts.row_count >= 1
        assert "report.md" in str(results.query_one("#results-report").render())
    plan = tmp_path / "plans" / "lora.yaml"
    assert plan.read_text().startswith("# tunewise plan for lora")
    assert (tmp_path / "runs" / "tiny" / "report.md").exists()
    records = [json.loads(line) for line in next((tmp_path / "decisions").glob("*.jsonl")).read_text().splitlines()]
    assert records[-1]["kind"] == "run" and records[-1]["status"] == "completed"


@async_test
async def test_cancel_leaves_a_complete_checkpoint_and_resume_continues_from_it(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {tiny_model_dir}\ndata: {DATA}\noutput_dir: runs/long\n"
                    "training: {max_steps: 400, batch_size: 1, seq_len: 64, eval_max_examples: 2,\n"
                    "           generation_examples: 0, save_steps: 1000}\n")
    out = tmp_path / "runs" / "long"
    # The run starts in one app session, which then quits: the run goes on without it.
    first = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with first.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        started = first.start_run(plan, out)
        first.show_run(out, started)
        await pilot.pause()
    assert started.running, "quitting the app leaves the run going"
    # A second session (`tunewise --run DIR`) follows it and can cancel it.
    app = TunewiseApp(run_dir=out, decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "RunScreen" and type(screen.process).__name__ == "AttachedRun"
        await _wait(pilot, lambda: screen.state.step >= 2, what="two training steps")
        await pilot.press("c")
        assert type(app.screen).__name__ == "ConfirmDialog"
        await pilot.press("y")
        await _wait(pilot, lambda: screen.state.finished, what="the cancelled run to end")
        assert screen.state.status == "cancelled"
        await _wait(pilot, lambda: started.poll() is not None, what="the process to exit")
        assert started.poll() == 130
        cancelled_at = screen.state.step
        assert screen.state.checkpoints, "cancelling writes a checkpoint"
        step, path = screen.state.checkpoints[-1]
        assert step == cancelled_at
        checkpoint = Path(path)
        assert (checkpoint / "COMPLETE").exists() and (checkpoint / "weights.safetensors").exists()
        assert json.loads((checkpoint / "state.json").read_text())["step"] == cancelled_at

        await pilot.press("r")
        await _wait(pilot, lambda: screen.state.starts >= 2 and screen.state.step > cancelled_at,
                    what="the resumed run's first step")
        assert screen.state.losses[-1][0] == screen.state.step
        assert [s for s, _ in screen.state.losses] == list(range(1, screen.state.step + 1))
        assert screen.process is not None and screen.process.resume
        await pilot.press("c", "y")
        await _wait(pilot, lambda: screen.state.finished, what="the second cancel")
        assert screen.state.status == "cancelled"
        resumed = screen.process
        await _wait(pilot, lambda: resumed.poll() is not None, what="the resumed process to exit")
