"""The Results screen shows the bake-off first, then spent vs quoted, for any run folder.

Run folders are built from real bake-offs (plugins/bakeoff.py) written the way methods write them
(write_bakeoff, merge_metrics, the runner's event writer) and opened the way a user opens an old run:
``tunewise --run DIR`` → ``v``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.text import Text
from tui_support import async_test, screen_text, wait_until
from tunewise.advisor import spend as spending
from tunewise.advisor.tui.app import TunewiseApp
from tunewise.advisor.tui.run_watch import read_events
from tunewise.advisor.tui.screens.results import ResultsScreen
from tunewise.plugins.bakeoff import BakeOff, RunFacts, bake_off, classification_bake_off, merge_metrics
from tunewise.plugins.bakeoff_report import ExampleOutcome, write_bakeoff
from tunewise.plugins.events import JsonlEventWriter

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

LABELS = ["billing", "refund", "delivery"]


def _classification(better: bool) -> tuple[BakeOff, list[ExampleOutcome]]:
    """30 held-out messages; the base answers none; the result answers 27 (better) or 1 (not better)."""
    golds = {f"intents.jsonl:{i}": LABELS[i % 3] for i in range(1, 31)}
    base = {k: "I am not sure" for k in golds}
    if better:
        result = {k: ("billing" if g == "refund" and i < 4 else g) for i, (k, g) in enumerate(golds.items())}
    else:
        result = {k: (g if i == 0 else "I am not sure") for i, (k, g) in enumerate(golds.items())}
    facts = RunFacts(steps=3, train_examples=90, examples_per_step=4, unchanged_answers=29 / 30)
    bake = classification_bake_off(golds, base, result, LABELS, method="LoRA", unit="held-out messages",
                                   facts=facts)
    examples = [ExampleOutcome(k, f"message {k}", golds[k], base[k], result[k],
                               float(base[k] == golds[k]), float(result[k] == golds[k])) for k in golds]
    return bake, examples


def _run_folder(run: Path, *, bake: BakeOff | None, examples: list[ExampleOutcome] = (),  # type: ignore[assignment]
                status: str = "completed", message: str = "", sessions: int = 1,
                in_result: bool = True) -> None:
    """A finished run folder: events.jsonl (``sessions`` sessions), and the bake-off files a method writes."""
    run.mkdir(parents=True)
    before = {"loss": 2.4}
    after = {"loss": 1.2}
    if bake is not None:
        write_bakeoff(run, bake, examples)
        metrics = merge_metrics({"before": before, "after": after}, bake)
        (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
        before, after = metrics["before"], metrics["after"]
    (run / "report.md").write_text("# LoRA run report\n", encoding="utf-8")
    with open(run / "events.jsonl", "a", encoding="utf-8") as stream:
        emit = JsonlEventWriter(stream)
        for session in range(sessions):
            last = session == sessions - 1
            emit("start", method="lora", total_steps=8, device="cpu (fp32)",
                 plan={"method": "lora", "training": {"seq_len": 96}})
            emit("phase", phase="training", done=0, total=8, unit="steps")
            emit("progress", step=4 * (session + 1), total_steps=8, loss=2.0, tokens_per_s=10.0, tokens_seen=1200)
            emit("phase", phase="evaluating after", done=0, total=30, unit="examples")
            if last and bake is not None:
                emit("bakeoff", **bake.to_dict())
            result = {"method": "lora", "status": status if last else "cancelled",
                      "message": message if last else "cancelled at step 4; --resume continues",
                      "metrics_before": before, "metrics_after": after if last else {},
                      "artifacts": {"adapter": str(run / "adapter")}, "report": "report.md",
                      "bakeoff": bake.to_dict() if (bake is not None and last and in_result) else None}
            emit("end", status=result["status"], result=result, wall_s=12.0 + session, peak_memory_gb=0.5)


async def _open_results(app: TunewiseApp, pilot) -> ResultsScreen:  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: type(app.screen).__name__ == "RunScreen" and app.screen.state.finished,
                     "the finished run")
    await pilot.press("v")
    return await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.results
                            and app.screen, "the results")


def _content(screen: ResultsScreen, widget: str) -> Text:
    content = screen.query_one(widget).content
    return content if isinstance(content, Text) else Text(str(content))


@async_test
async def test_a_better_classification_run_leads_with_its_verdict_labels_and_confusions(tmp_path: Path) -> None:
    bake, examples = _classification(better=True)
    assert bake.verdict == "better"
    run = tmp_path / "run"
    _run_folder(run, bake=bake, examples=examples, message=bake.sentence + ". 8 steps")
    report = spending.spend_report(read_events(run / "events.jsonl"))
    spending.write_spend(run, report)
    app = TunewiseApp(run_dir=run, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _open_results(app, pilot)
        verdict = _content(screen, "#results-verdict")
        assert verdict.plain == bake.sentence and "green" in str(verdict.style)
        figures = _content(screen, "#results-figures").plain
        lo, hi = bake.interval
        assert f"accuracy {bake.before:.2f} → {bake.after:.2f}" in figures
        assert f"95% interval {lo:+.2f} … {hi:+.2f}" in figures
        assert f"won {bake.wins} · tied {bake.ties} · lost {bake.losses} of 30" in figures
        table = screen.query_one("#results-labels")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows == [[c.label, str(c.examples), str(c.base_correct), str(c.result_correct)]
                        for c in bake.classification.labels]
        top = bake.classification.confusions[0]
        assert f"{top.gold} → {top.predicted}: {top.count}" in _content(screen, "#results-confusions").plain
        assert _content(screen, "#results-reasons").plain == ""  # a better result needs no excuses
        assert str(run / "bakeoff.jsonl") in _content(screen, "#results-evidence").plain
        assert _content(screen, "#results-spend").plain == report.sentence()
        text = screen_text(app)
        assert text.index("Bake-off") < text.index("Evaluation on the held-out split")
        assert "8 steps" in str(screen.query_one("#results-head").content)  # the rest of the run's message


@async_test
async def test_an_old_run_that_is_not_better_shows_why_and_the_setting_to_change(tmp_path: Path) -> None:
    """The bake-off only in metrics.json and bakeoff.jsonl (not in the end event), two sessions, no spend.json."""
    bake, examples = _classification(better=False)
    assert bake.verdict == "not_better" and bake.reasons
    run = tmp_path / "run"
    _run_folder(run, bake=bake, examples=examples, message=bake.sentence, sessions=2, in_result=False)
    app = TunewiseApp(run_dir=run, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _open_results(app, pilot)
        verdict = _content(screen, "#results-verdict")
        assert verdict.plain == bake.sentence and "yellow" in str(verdict.style)
        reasons = _content(screen, "#results-reasons").plain
        for reason in bake.reasons:
            assert reason.reason in reasons and reason.change in reasons
            if reason.setting:
                assert f"change {reason.setting}: " in reasons
        assert bake.reasons[0].setting == "training.max_steps"
        head = str(screen.query_one("#results-head").content)
        assert "in 25 s (2 sessions)" in head  # 12 s + 13 s: both sessions, not the last one only
        spend_line = _content(screen, "#results-spend").plain
        assert spend_line.startswith("spent 25 s (2 sessions") and "(CPU)" in spend_line


@async_test
async def test_without_a_bake_off_the_screen_says_why_and_keeps_the_rest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    why = "cancelled at step 4: nothing to compare yet; --resume continues"
    _run_folder(run, bake=None, status="cancelled", message=why)
    app = TunewiseApp(run_dir=run, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_results(app, pilot)
        assert _content(screen, "#results-verdict").plain == f"No bake-off for this run (cancelled): {why}"
        assert not screen.query_one("#results-labels").display
        assert _content(screen, "#results-figures").plain == ""
        metrics = screen.query_one("#results-metrics")
        assert metrics.get_row_at(0) == ["loss", "2.4", "1.2", "-1.2 (-50.0%)"]
        artifacts = screen.query_one("#results-artifacts")
        assert artifacts.get_row_at(0)[0] == "adapter"
        await pilot.press("t")  # Try it needs a completed run: refused, still on the results
        assert isinstance(app.screen, ResultsScreen)


def test_a_perplexity_bake_off_reads_lower_is_better(tmp_path: Path) -> None:
    """Figures of a metric where lower is better: the interval keeps its sign and the name its words."""
    from tunewise.advisor.report_render import bakeoff_figures

    base = {f"d:{i}": 3.0 + (i % 3) * 0.1 for i in range(40)}
    result = {k: v - 0.8 for k, v in base.items()}
    bake = bake_off(base, result, "perplexity", method="continual pretraining", unit="held-out documents")
    figures = bakeoff_figures(bake.to_dict())
    assert bake.verdict == "better" and figures.startswith(f"perplexity {bake.before:.1f} → {bake.after:.1f}")
    lo, hi = bake.interval
    assert lo < hi < 0 and "(95% interval -" in figures and " … -" in figures  # both ends keep their minus


@async_test
async def test_a_damaged_bake_off_shows_what_is_readable(tmp_path: Path) -> None:
    """metrics.json edited by hand: fields of the wrong type are skipped, never a crash or an error dialog."""
    bake, examples = _classification(better=True)
    run = tmp_path / "run"
    _run_folder(run, bake=bake, examples=examples, in_result=False)
    (run / "bakeoff.jsonl").unlink()
    events = [e for e in read_events(run / "events.jsonl") if e["event"] != "bakeoff"]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    damaged = {**bake.to_dict(), "reasons": 5, "labels": "billing", "confusions": [1, "x"],
               "interval_95": "wide", "wins": "many", "verdict": "worse"}
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    (run / "metrics.json").write_text(json.dumps({**metrics, "bakeoff": damaged}), encoding="utf-8")
    (run / "spend.json").write_text('{"spent": 3, "sentence": ["not", "text"]}', encoding="utf-8")
    app = TunewiseApp(run_dir=run, decisions_dir=tmp_path / "decisions")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_results(app, pilot)
        verdict = _content(screen, "#results-verdict")
        assert verdict.plain == bake.sentence and "red" in str(verdict.style)
        figures = _content(screen, "#results-figures").plain
        assert figures.startswith(f"accuracy {bake.before:.2f} → {bake.after:.2f}") and "interval" not in figures
        assert not screen.query_one("#results-labels").display
        assert _content(screen, "#results-confusions").plain == ""
        assert "read from metrics.json" in _content(screen, "#results-evidence").plain
        spend_line = _content(screen, "#results-spend").plain  # worked out from events.jsonl instead
        assert spend_line.startswith("spent 12 s (training ") and "$0 (CPU)" in spend_line
        assert type(app.screen).__name__ == "ResultsScreen"  # no error dialog
