"""Snapshot tests of the app's main screens at 80x24 (update with `pytest --snapshot-update`).

Deterministic on purpose: only the built-in plugins, relative paths (the test runs in its tmp dir),
event streams written by the test, no clocks on screen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.plugins import manager
from tunewise.plugins.events import JsonlEventWriter

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A real host with the built-in methods only, so a plugin installed in the venv changes nothing."""
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


async def _settle(pilot) -> None:  # type: ignore[no-untyped-def]
    from textual.widgets import Input

    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)
    for field in pilot.app.screen.query(Input):  # a blinking cursor would make the picture random
        field.cursor_blink = False
    await pilot.pause()


def _events(path: Path, *, finished: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as stream:
        emit = JsonlEventWriter(stream)
        emit("start", method="lora", total_steps=40, device="cpu", plan={"method": "lora"})
        emit("eval", phase="before", step=0, metrics={"eval_loss": 2.61, "perplexity": 13.6})
        for step in range(1, 25):
            loss = 2.6 * (0.97 ** step) + 0.05 * (step % 3)
            emit("progress", step=step, total_steps=40, loss=round(loss, 4), lr=2e-4, tokens_per_s=2310.0,
                 elapsed_s=step * 1.5, eta_s=(40 - step) * 1.5, epoch=step / 40)
            if step % 10 == 0:
                emit("eval", phase="during", step=step, metrics={"eval_loss": round(2.5 * (0.975 ** step), 4)})
                emit("checkpoint", step=step, path=f"runs/lora/checkpoints/step-{step}")
        emit("log", level="info", message="held-out loss falling")
        if finished:
            emit("eval", phase="after", step=40, metrics={"eval_loss": 1.41, "perplexity": 4.1})
            emit("end", status="completed", wall_s=61.0, peak_memory_gb=0.92, result={
                "method": "lora", "status": "completed",
                "metrics_before": {"eval_loss": 2.61, "perplexity": 13.6, "rougeL": 0.18},
                "metrics_after": {"eval_loss": 1.41, "perplexity": 4.1, "rougeL": 0.37},
                "artifacts": {"adapter": "runs/lora/adapter", "model_card": "runs/lora/README.md"},
                "report": "runs/lora/report.md", "message": "held-out loss fell by 46%"})


def test_welcome(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(TunewiseApp(), terminal_size=SIZE, run_before=_settle)


def test_run_in_progress(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _events(tmp_path / "runs" / "lora" / "events.jsonl", finished=False)
    assert snap_compare(TunewiseApp(run_dir=Path("runs/lora")), terminal_size=SIZE, run_before=_settle)


def test_results(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _events(tmp_path / "runs" / "lora" / "events.jsonl", finished=True)
    (tmp_path / "runs" / "lora" / "report.md").write_text("# Report\n")

    async def open_results(pilot) -> None:  # type: ignore[no-untyped-def]
        await _settle(pilot)
        await pilot.press("v")
        await _quiet(pilot)  # the "run completed" toast would cover the table

    assert snap_compare(TunewiseApp(run_dir=Path("runs/lora")), terminal_size=SIZE, run_before=open_results)


def test_preferences(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"prompt": "How do I reset my billing password?",
             "candidates": ["Open Settings → Billing, choose 'Reset password' and follow the e-mail link.",
                            "Passwords cannot be reset; create a new account instead."]},
            {"prompt": "Summarise our refund policy.", "candidates": ["Refunds within 30 days.", "No refunds."]}]
    Path("prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = TunewiseApp(labeling=(Path("prompts.jsonl"), Path("prefs.jsonl"), None))
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


def _answers(tmp_path: Path, example: str = "support-billing.yaml") -> Path:
    """An example answers file copied into the test's folder (relative paths on screen)."""
    source = Path(__file__).resolve().parents[1] / "examples" / "answers" / example
    (tmp_path / example).write_text(source.read_text())
    return Path(example)


async def _quiet(pilot) -> None:  # type: ignore[no-untyped-def]
    await _settle(pilot)
    pilot.app.clear_notifications()
    await pilot.pause()


def test_interview_topic(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = TunewiseApp(answers=_answers(tmp_path))

    async def to_data_topic(pilot) -> None:  # type: ignore[no-untyped-def]
        await _settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n")
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=to_data_topic)


def test_recommendations(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = TunewiseApp(answers=_answers(tmp_path))

    async def recommend(pilot) -> None:  # type: ignore[no-untyped-def]
        await _settle(pilot)
        await pilot.press("ctrl+r")
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=recommend)


def test_plan(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = TunewiseApp(answers=_answers(tmp_path), workdir=Path("."))

    async def plan_lora(pilot) -> None:  # type: ignore[no-untyped-def]
        await _settle(pilot)
        await pilot.press("ctrl+r")
        await _settle(pilot)
        pilot.app.consultation.choose("lora")
        pilot.app.show_plan("lora")
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=plan_lora)


def test_audit(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"instruction": f"Classify ticket {i}", "output": "billing" if i % 2 else "shipping"} for i in range(12)]
    lines = [json.dumps(r) for r in rows] + [json.dumps(rows[3]), json.dumps({"instruction": "", "output": "x"})]
    (tmp_path / "tickets.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "answers.yaml").write_text("use_case: route tickets\ngoals: [task]\ndata: {path: tickets.jsonl}\n"
                                           "hardware: {gpu: cpu}\nmodel: {params_b: 0.135}\n")
    app = TunewiseApp(answers=Path("answers.yaml"))

    async def audit(pilot) -> None:  # type: ignore[no-untyped-def]
        await _settle(pilot)
        for _ in range(7):
            await pilot.press("ctrl+n")
            await _settle(pilot)
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=audit)
