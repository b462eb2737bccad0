"""The Run screen for every method: phases with their own progress and ETA, elapsed summed over resumes,
a finished run at 100% with its outcome, and the cancel confirmation over a live run (issue 21)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from support import run_cli
from tui_support import async_test, screen_text, wait_until
from tunewise.advisor.run_times import run_times, split_sessions
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.run_watch import RunState, read_events
from tunewise.advisor.tui.screens.run import phase_lines
from tunewise.plugins import manager
from tunewise.plugins.events import make_event

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "support_chat.jsonl"
T0 = 1_800_000_000.0
"""Event times the tests choose, so every figure on screen follows from them."""


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(manager, "_HOST", manager.PluginHost(load_entry_points=False, disabled=set()))
    monkeypatch.setenv("TUNEWISE_DATA_DIR", str(tmp_path / "data"))


def _append(path: Path, events: Iterable[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        for event in events:
            stream.write(json.dumps(event) + "\n")


def _at(seconds: float, kind: str, **fields: Any) -> dict[str, Any]:
    """A real event (``make_event`` checks its kind and fields) stamped ``seconds`` after :data:`T0`."""
    return make_event(kind, **fields, time=T0 + seconds)


def _text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector).render())


def _seconds(shown: str) -> int:
    """``elapsed 1 min 42 s`` -> 102 (the figure as :func:`tunewise.advisor.spend.duration` writes it)."""
    match = re.search(r"elapsed (?:(\d+) h ?)?(?:(\d+) min ?)?(?:(\d+) s)?", shown)
    assert match and any(match.groups()), shown
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _rag_events() -> list[dict[str, Any]]:
    """The event stream of a RAG run (the phases the RAG method sends), one second per unit of work."""
    events = [_at(0, "start", method="rag", total_steps=0, device="cpu", plan={"method": "rag"}, questions=17),
              _at(1, "log", level="info", message="loading embedding model all-MiniLM-L6-v2")]
    t = 2.0
    for name, total, unit in [("reading", 3, "files"), ("chunking", 3, "files"), ("embedding", 12, "chunks"),
                              ("indexing", 1, "index"), ("answering without retrieval", 17, "questions"),
                              ("answering with retrieval", 17, "questions")]:
        for done in range(total + 1):
            events.append(_at(t, "phase", phase=name, done=done, total=total, unit=unit))
            t += 1.0
    events.append(_at(t, "bakeoff", metric="containment", verdict="better", examples=17, wins=9, ties=7, losses=1,
                      sentence="With retrieval the answers contain the reference on 12 of 17 questions "
                               "instead of 4 (95% interval +0.24 to +0.71)."))
    events.append(_at(t + 1, "end", status="completed", wall_s=t + 1.5, peak_memory_gb=0.3,
                      result={"method": "rag", "status": "completed", "message": "index of 12 chunks"}))
    return events


@async_test
async def test_a_rag_run_shows_its_phases_with_eta_and_ends_at_100_percent(tmp_path: Path) -> None:
    run_dir = tmp_path / "rag"
    run_dir.mkdir()
    events_file = run_dir / "events.jsonl"
    stream = _rag_events()
    middle = next(i for i, e in enumerate(stream)
                  if e.get("phase") == "answering without retrieval" and e.get("done") == 10)
    _append(events_file, stream[:middle + 1])
    app = TunewiseApp(run_dir=run_dir, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "answering without retrieval" in _text(app.screen, "#run-phases"),
                         "the answering phase on the run screen")
        screen = app.screen
        phases = _text(screen, "#run-phases")
        # Ten questions in ten seconds: seven left take about seven seconds.
        assert "answering without retrieval  10/17 questions · 10 s · ~7 s left" in phases, phases
        assert "✓ indexing  1/1 index" in phases and "✓ embedding  12/12 chunks · 13 s" in phases, phases
        assert phases.startswith("✓ reading  3/3 files · 4 s\n✓ chunking  3/3 files · 4 s"), phases
        assert not screen.query_one("#run-chart").display, "no loss chart for a method that does not train"
        bar = screen.query_one("#run-progress")
        assert bar.total == 17 and bar.progress == 10
        assert "answering without retrieval 10/17" in _text(screen, "#run-steps")
        assert "ETA 7 s" in _text(screen, "#run-stats") and "loss" not in _text(screen, "#run-stats")
        assert "waiting for the first step" not in screen_text(app)

        _append(events_file, stream[middle + 1:])
        await wait_until(pilot, lambda: screen.state.finished, "the end of the run")
        await wait_until(pilot, lambda: "completed" in _text(screen, "#run-outcome"), "the outcome line")
        await pilot.pause()
        assert screen.state.status == "completed"
        assert bar.total is not None and bar.percentage == 1.0, "a completed run stands at 100%"
        shown = screen_text(app)
        assert "100%" in shown and "--%" not in shown, shown
        outcome = _text(screen, "#run-outcome")
        assert outcome.startswith("completed: With retrieval the answers contain the reference on 12 of 17")
        phases = _text(screen, "#run-phases")
        assert "▶" not in phases and "left" not in phases, phases
        assert "✓ answering with retrieval  17/17 questions · 19 s" in phases, phases
        assert not screen.query_one("#run-chart").display
        assert "ETA" not in _text(screen, "#run-stats")


@pytest.fixture(scope="module")
def real_training_events(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> list[dict[str, Any]]:
    """The events.jsonl of a real LoRA run on the tiny model (20 held-out examples: three answer batches)."""
    work = tmp_path_factory.mktemp("real-run")
    (work / "data.jsonl").write_bytes(DATA.read_bytes())
    plan = work / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {tiny_model_dir}\ndata: data.jsonl\noutput_dir: out\n"
                    "training: {max_steps: 2, batch_size: 2, seq_len: 64, eval_max_examples: 20,\n"
                    "           max_new_tokens: 2, save_steps: 100}\n")
    done = run_cli("run", str(plan), "--out", str(work / "out"), "--allow-outside-paths", cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return read_events(work / "out" / "events.jsonl")


@async_test
async def test_a_training_run_shows_evaluating_before_progress_before_its_first_step(
        tmp_path: Path, real_training_events: list[dict[str, Any]]) -> None:
    events = real_training_events
    first_step = next(i for i, e in enumerate(events) if e["event"] == "progress")
    partial = next(i for i, e in enumerate(events[:first_step])
                   if e.get("phase") == "evaluating before" and 0 < (e.get("done") or 0) < e["total"])
    answered, total = events[partial]["done"], events[partial]["total"]
    first_phase = next(i for i, e in enumerate(events) if e["event"] == "phase")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _append(run_dir / "events.jsonl", events[:first_phase])  # started, loading the model
    app = TunewiseApp(run_dir=run_dir, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: _text(app.screen, "#run-phases").startswith("▶ starting · "),
                         "the run starting")
        screen = app.screen
        assert "starting" in _text(screen, "#run-steps")
        _append(run_dir / "events.jsonl", events[first_phase:partial + 1])  # the file as it stood mid-evaluation
        await wait_until(pilot, lambda: "evaluating before" in _text(screen, "#run-phases"),
                         "the evaluating-before phase")
        phases = _text(screen, "#run-phases")
        assert phases.startswith(f"▶ evaluating before  {answered}/{total} examples"), phases
        assert "left" in phases, phases  # an ETA from the batches answered so far
        assert f"evaluating before {answered}/{total}" in _text(screen, "#run-steps")
        assert screen.query_one("#run-progress").progress == answered
        assert not screen.query_one("#run-chart").display, "no chart before the first step"

        _append(run_dir / "events.jsonl", events[partial + 1:first_step + 1])
        await wait_until(pilot, lambda: screen.query_one("#run-chart").display, "the chart with the first step")
        phases = _text(screen, "#run-phases")
        assert f"✓ evaluating before  {total}/{total} examples" in phases, phases
        assert "▶ training  1/2 steps" in phases, phases
        assert "step 1/2" in _text(screen, "#run-steps")

        _append(run_dir / "events.jsonl", events[first_step + 1:])
        await wait_until(pilot, lambda: screen.state.status == "completed"
                         and "completed" in _text(screen, "#run-outcome"), "the completed run")
        assert screen.query_one("#run-progress").percentage == 1.0
        bake = next(e for e in events if e["event"] == "bakeoff")
        assert bake["sentence"] in _text(screen, "#run-outcome")
        phases = _text(screen, "#run-phases")
        assert "✓ training  2/2 steps" in phases and "✓ evaluating after" in phases, phases
        # The training line's time is the run's training time by the one definition.
        assert run_times(events).train_s is not None


def _resume_events() -> list[dict[str, Any]]:
    """A LoRA run cancelled after 60 s and resumed 15 minutes later for another 40 s."""
    first = [_at(0, "start", method="lora", total_steps=20, device="cpu"),
             _at(1, "phase", phase="evaluating before", done=0, total=10, unit="examples"),
             _at(11, "phase", phase="evaluating before", done=10, total=10, unit="examples"),
             _at(11, "phase", phase="training", done=0, total=20, unit="steps")]
    first += [_at(11 + 4 * s, "progress", step=s, total_steps=20, loss=3.0 - 0.1 * s, lr=1e-4, tokens_per_s=900.0,
                  elapsed_s=4.0 * s, eta_s=4.0 * (20 - s), epoch=s / 20) for s in range(1, 13)]
    first += [_at(59, "checkpoint", step=12, path="out/checkpoints/step-12"),
              _at(60, "end", status="cancelled", wall_s=61.0,
                  result={"method": "lora", "status": "cancelled", "message": "cancelled at step 12"})]
    later = 960.0
    second = [_at(later, "start", method="lora", total_steps=20, device="cpu"),
              _at(later + 2, "phase", phase="training", done=12, total=20, unit="steps")]
    # The resumed loop's own clock (elapsed_s) restarts from the checkpoint's: it is not the run's elapsed.
    second += [_at(later + 2 + 3 * (s - 12), "progress", step=s, total_steps=20, loss=2.0, lr=1e-4,
                   tokens_per_s=900.0, elapsed_s=3.0 * (s - 12), eta_s=3.0 * (20 - s), epoch=s / 20)
               for s in range(13, 21)]
    second += [_at(later + 30, "phase", phase="evaluating after", done=10, total=10, unit="examples"),
               _at(later + 38, "phase", phase="saving"),
               _at(later + 39, "end", status="completed", wall_s=40.0,
                   result={"method": "lora", "status": "completed", "message": "done"})]
    return first + second


def test_run_times_sum_every_session_of_the_folder() -> None:
    events = _resume_events()
    assert [len(s) for s in split_sessions(events)] == [18, 13]
    times = run_times(events)
    assert times.sessions == 2 and times.wall_s == 61.0 + 40.0
    # Training phases: 11 s → 60 s in the first session, 962 s → 990 s in the second.
    assert times.train_s == pytest.approx(49.0 + 28.0)
    # A session still running counts up to now; one cut off without ``end`` counts to its last event.
    running = events[:20]
    assert run_times(running, now=T0 + 1000).wall_s == pytest.approx(61.0 + 40.0)
    assert run_times(running).wall_s == pytest.approx(61.0 + 2.0)
    # Older streams (no phase events): no training time is recorded, and the screen shows none either.
    old = [e for e in events[:18] if e["event"] != "phase"]
    assert run_times(old).train_s is None and run_times(old).wall_s == 61.0
    state = RunState()
    for event in old:
        state.apply(event)
    assert [(p.name, p.state, p.done) for p in state.phases] == [("training", "cancelled", 12)]
    assert state.phases[0].seconds(None) is None
    rag = run_times(_rag_events())
    assert rag.train_s is None and rag.sessions == 1


def test_an_older_stream_without_phase_events_still_shows_its_phases() -> None:
    state = RunState()
    stream = [_at(0, "start", method="lora", total_steps=3),
              _at(5, "eval", phase="before", step=0, metrics={"eval_loss": 2.0}),
              *(_at(5 + s, "progress", step=s, total_steps=3, loss=2.0, tokens_per_s=1.0, eta_s=3.0 - s)
                for s in range(1, 4)),
              _at(12, "eval", phase="after", step=3, metrics={"eval_loss": 1.5}),
              _at(13, "end", status="completed", wall_s=13.5)]
    for event in stream:
        state.apply(event)
    assert [(p.name, p.state, p.done, p.total) for p in state.phases] == [
        ("evaluating before", "done", None, None), ("training", "done", 3, 3), ("evaluating after", "done", None, None)]
    assert all(p.seconds(None) is None for p in state.phases), "no phase times without phase events"
    assert phase_lines(state, None).plain.splitlines()[1] == "✓ training  3/3 steps"
    assert state.wall_s == 13.5 and state.trained


def test_a_staged_run_counts_each_stage_and_folds_earlier_phases_beside_the_chart() -> None:
    """RLHF: training stages report run-wide steps plus their own (stage_step / stage_steps)."""
    stream = [_at(0, "start", method="rlhf", total_steps=30)]
    t, offset = 1.0, 0
    for name, unit, total in [("supervised fine-tuning", "steps", 10), ("reward model", "steps", 10),
                              ("answering before", "prompts", 6), ("scoring pairs before", "pairs", 6),
                              ("policy training", "steps", 10), ("answering after", "prompts", 6)]:
        stream.append(_at(t, "phase", phase=name, done=0, total=total, unit=unit))
        for done in range(1, total + 1):
            t += 1.0
            if unit == "steps":
                stream.append(_at(t, "progress", step=offset + done, total_steps=30, loss=1.0, tokens_per_s=1.0,
                                  stage_step=done, stage_steps=total, eta_s=float(total - done)))
            else:
                stream.append(_at(t, "phase", phase=name, done=done, total=total, unit=unit))
        offset += total if unit == "steps" else 0
        t += 1.0
    state = RunState()
    for event in stream[:-3]:  # three prompts answered after training
        state.apply(event)
    assert [(p.name, p.done, p.total) for p in state.phases] == [
        ("supervised fine-tuning", 10, 10), ("reward model", 10, 10), ("answering before", 6, 6),
        ("scoring pairs before", 6, 6), ("policy training", 10, 10), ("answering after", 3, 6)]
    assert "training" not in [p.name for p in state.phases], "stage steps count in their stage, not a new phase"
    lines = phase_lines(state, state.last_time).plain.splitlines()
    assert lines == [
        "✓ 3 earlier phases (supervised fine-tuning, reward model, answering before) · 29 s",
        "✓ scoring pairs before  6/6 pairs · 7 s",
        "✓ policy training  10/10 steps · 11 s",
        "▶ answering after  3/6 prompts · 3 s · ~3 s left"], lines
    # Training time: the three training stages, as run_times counts it.
    assert run_times(stream[:-3]).train_s == pytest.approx(11.0 * 3)
    assert sum(p.seconds(state.last_time) or 0 for p in state.phases if p.training) == pytest.approx(33.0)


@async_test
async def test_elapsed_across_a_resume_is_the_sum_of_the_sessions_and_never_goes_back(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events_file = run_dir / "events.jsonl"
    events = _resume_events()
    _append(events_file, events[:1])
    app = TunewiseApp(run_dir=run_dir, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.state.events, "the run screen following the file")
        screen = app.screen
        shown: list[int] = []
        for count in range(2, len(events) + 1):
            _append(events_file, events[count - 1:count])
            await wait_until(pilot, lambda count=count: len(screen.state.events) == count,
                             f"event {count} on the screen")
            await pilot.pause()
            shown.append(_seconds(_text(screen, "#run-stats")))
        assert shown == sorted(shown), f"elapsed went backwards: {shown}"
        # Both sessions counted: 61 s before the cancel and 40 s after the resume (not 40 s, not 15 minutes).
        assert shown[-1] == 101
        assert "elapsed 1 min 41 s (2 sessions)" in _text(screen, "#run-stats")
        assert screen.state.wall_s == 101.0
        phases = _text(screen, "#run-phases")
        # Training time, by the same definition: 49 s before the cancel and 28 s after.
        assert "✓ training  20/20 steps · 1 min 17 s" in phases, phases
        assert "completed" in _text(screen, "#run-outcome")


@async_test
async def test_the_cancel_dialog_keeps_a_live_run_visible_and_updating(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "data.jsonl").write_bytes(DATA.read_bytes())
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {tiny_model_dir}\ndata: data.jsonl\noutput_dir: runs/live\n"
                    "training: {max_steps: 400, batch_size: 1, seq_len: 64, eval_max_examples: 2,\n"
                    "           generation_examples: 0, save_steps: 1000}\n")
    out = tmp_path / "runs" / "live"
    app = TunewiseApp(decisions_dir=tmp_path / "decisions", workdir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        process = app.start_run(plan, out)
        app.show_run(out, process)
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunScreen" and app.screen.state.step >= 1,
                         "the first training step")
        screen = app.screen
        await pilot.press("c")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", "the cancel confirmation")
        asked_at = screen.state.step
        before = screen_text(app)
        assert "Cancel the run?" in before
        assert "lora · running" in before, "the run stays visible behind the dialog:\n" + before
        assert re.search(r"step \d+/400", before), before
        # Training goes on behind the dialog, and the screen behind it shows it.
        later = await wait_until(
            pilot, lambda: (m := re.search(r"step (\d+)/400", screen_text(app))) and int(m.group(1)) > asked_at
            and int(m.group(1)), "a later step drawn behind the dialog")
        assert type(app.screen).__name__ == "ConfirmDialog" and later > asked_at
        assert process.running
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.state.finished, "the cancelled run to end")
        assert screen.state.status == "cancelled"
        assert "cancelled" in _text(screen, "#run-outcome")
        bar = screen.query_one("#run-progress")
        assert bar.total is not None and 0 < bar.percentage < 1, "a cancelled run's bar stops where it was"
        await wait_until(pilot, lambda: process.poll() is not None, "the process to exit")


@async_test
async def test_odd_event_fields_are_shown_as_written_and_never_break_the_screen(tmp_path: Path) -> None:
    """Texts from the events file are not markup; counts that are not counts are left out, not crashed on."""
    run_dir = tmp_path / "odd"
    run_dir.mkdir()
    lines = [_at(0, "start", method="[b]rag", total_steps=0, device="cuda [A100]"),
             _at(1, "phase", phase="[/oops] reading", done="3", total=None, unit="[i]files"),
             _at(2, "phase", phase="embedding", done=-4, total=0, unit="chunks"),
             _at(3, "phase", phase="answering", done=9, total=4, unit="questions"),
             _at(4, "bakeoff", metric="m", verdict="better", sentence="[red]better[/] on 3 of 4"),
             _at(5, "end", status="exploded", wall_s=5.0)]
    _append(run_dir / "events.jsonl", lines)
    with open(run_dir / "events.jsonl", "a") as stream:  # NaN is valid to Python's json, not a count
        stream.write('{"event": "phase", "time": NaN, "phase": "answering", "done": NaN, "total": 4}\n')
    app = TunewiseApp(run_dir=run_dir, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.state.finished and "failed" in _text(app.screen, "#run-outcome"),
                         "the odd run's end")
        screen = app.screen
        await pilot.pause()
        assert _text(screen, "#run-head") == "[b]rag · failed · cuda [A100]"
        phases = _text(screen, "#run-phases").splitlines()
        assert phases == ["✓ [/oops] reading · 1 s", "✓ embedding  0/0 chunks · 1 s",
                          "■ answering  9/4 questions · 2 s · failed"], phases  # the NaN line after the end: ignored
        assert _text(screen, "#run-outcome") == "failed: [red]better[/] on 3 of 4"
        bar = screen.query_one("#run-progress")
        assert bar.total == 100 and bar.progress == 100, "9 of 4 is all of it, not more"
