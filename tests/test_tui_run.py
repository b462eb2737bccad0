"""The run and results screens: following events.jsonl, crashes that never take the app down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tui_support import async_test, wait_until
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.run_watch import EventTail, RunState, read_run_state
from tunewise.plugins.events import JsonlEventWriter

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _write(path: Path, *events: tuple[str, dict]) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        writer = JsonlEventWriter(stream)
        for kind, fields in events:
            writer(kind, **fields)


def _progress(step: int, total: int = 10, loss: float = 2.0) -> tuple[str, dict]:
    return ("progress", {"step": step, "total_steps": total, "loss": loss, "lr": 1e-4, "tokens_per_s": 1500.0,
                         "elapsed_s": step * 2.0, "eta_s": (total - step) * 2.0, "epoch": step / total})


def test_event_tail_reads_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == ([], False)
    _write(path, ("start", {"method": "lora", "total_steps": 3}))
    with open(path, "a") as stream:
        stream.write('{"event": "log", "level": "info", "mess')
    events, restarted = tail.read_new()
    assert [e["event"] for e in events] == ["start"] and not restarted
    with open(path, "a") as stream:
        stream.write('age": "hi", "time": 1}\nprinted noise\n')
    assert [e["message"] for e in tail.read_new()[0]] == ["hi"]
    path.write_text("")  # a run that starts its file again
    _write(path, ("start", {"method": "lora", "total_steps": 3}))
    events, restarted = tail.read_new()
    assert restarted and [e["event"] for e in events] == ["start"]


def test_run_state_resume_replays_steps_without_duplicates() -> None:
    state = RunState()
    for event in [{"event": "start", "method": "lora", "total_steps": 6},
                  *({"event": "progress", "step": s, "total_steps": 6, "loss": 3.0 - s * 0.1, "tokens_per_s": 1}
                    for s in range(1, 5)),
                  {"event": "checkpoint", "step": 2, "path": "ckpt-2"},
                  {"event": "end", "status": "cancelled"},
                  {"event": "start", "method": "lora", "total_steps": 6},
                  {"event": "progress", "step": 3, "total_steps": 6, "loss": 2.5, "tokens_per_s": 1}]:
        state.apply(event)
    assert state.status == "running"
    assert [s for s, _ in state.losses] == [1, 2, 3]
    assert state.losses[-1] == (3, 2.5)


@async_test
async def test_run_screen_follows_a_run_and_opens_results(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = run_dir / "events.jsonl"
    app = TunewiseApp(run_dir=run_dir, decisions_dir=tmp_path / "decisions")
    _write(events, ("start", {"method": "lora", "total_steps": 10, "device": "cpu"}))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunScreen", "the run screen")
        screen = app.screen
        _write(events, *(_progress(s, loss=3.0 - s * 0.2) for s in range(1, 6)))
        _write(events, ("log", {"level": "warning", "message": "loss is noisy"}))
        await wait_until(pilot, lambda: "step 5/10" in str(screen.query_one("#run-steps").render())
                         and "loss is noisy" in "\n".join(screen.query_one("#run-log").lines), "step 5 and the log")
        stats = str(screen.query_one("#run-stats").render())
        assert "loss 2.0000" in stats and "1,500 tok/s" in stats and "ETA 10 s" in stats
        assert "WARNING: loss is noisy" in "\n".join(screen.query_one("#run-log").lines)
        await pilot.press("v")
        assert type(app.screen).__name__ == "RunScreen", "no results before the run ends"

        _write(events, ("eval", {"phase": "after", "step": 10, "metrics": {"eval_loss": 1.2}}),
               ("end", {"status": "completed", "wall_s": 20.0, "peak_memory_gb": 0.5, "result": {
                   "method": "lora", "status": "completed", "metrics_before": {"eval_loss": 2.4, "perplexity": 11.0},
                   "metrics_after": {"eval_loss": 1.2, "perplexity": 3.3},
                   "artifacts": {"adapter": str(run_dir / "adapter")}, "report": "report.md", "message": ""}}))
        (run_dir / "report.md").write_text("# Report\n\nloss went down\n")
        await wait_until(pilot, lambda: "completed" in str(screen.query_one("#run-head").render()), "completed")
        await pilot.press("v")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ResultsScreen"
                         and app.screen.query_one("#results-metrics").row_count, "the results table")
        results = app.screen
        table = results.query_one("#results-metrics")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows[0] == ["eval_loss", "2.4", "1.2", "-1.2 (-50.0%)"]
        assert "report.md" in str(results.query_one("#results-report").render())
        await pilot.press("m")
        assert results.query_one("#results-report-view").display


@async_test
async def test_a_crashing_run_shows_its_error_and_the_app_goes_on(tmp_path: Path) -> None:
    """`tunewise run` on a plan that does not exist exits non-zero: a dialog, never a dead app."""
    app = TunewiseApp(decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        process = app.start_run(tmp_path / "missing-plan.yaml", tmp_path / "run")
        app.show_run(tmp_path / "run")
        # Refused before it started, so nothing is written into the run folder: the reason comes from
        # the run's own events on its stdout.
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ErrorDialog"
                         and "missing-plan.yaml: no such plan file" in str(app.screen.query_one("#error-message").render()),
                         "the error dialog naming the missing plan")
        assert "The run failed (plan)" in str(app.screen.query_one(".dialog-title").render())
        assert process.poll() not in (None, 0)
        assert not (tmp_path / "run" / "events.jsonl").exists()
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunScreen"
                         and "failed" in str(app.screen.query_one("#run-head").render()),
                         "the run screen saying the run failed")
        launch = json.loads((tmp_path / "run" / "tui-run.json").read_text())
        assert launch["command"][:2] == ["tunewise", "run"]
        await pilot.press("escape")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "WelcomeScreen", "the welcome screen")


def test_read_run_state_of_a_folder_without_events(tmp_path: Path) -> None:
    assert read_run_state(tmp_path).status == "waiting"
