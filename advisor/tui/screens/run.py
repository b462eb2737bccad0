"""Run: starts or follows ``tunewise run``; each phase's progress and ETA, elapsed time summed over resumes,
the loss chart once training steps come, the outcome (with the bake-off's verdict), log tail, cancel, resume."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Log, ProgressBar, Static
from tunewise.advisor.spend import duration
from tunewise.advisor.tui.run_watch import (
    EVENTS_FILE,
    EventTail,
    Phase,
    RunHandle,
    RunState,
    launched_plan,
)
from tunewise.advisor.tui.screens.base import TunewiseScreen
from tunewise.advisor.tui.screens.dialogs import ConfirmDialog, ErrorDialog
from tunewise.advisor.tui.widgets.loss_chart import LossChart

POLL_SECONDS = 0.25
PHASE_ROWS = 4
"""Phase lines shown beside the loss chart; earlier finished phases share the first line (fits 80x24)."""
PHASE_ROWS_WITHOUT_CHART = 8
MARKS = {"running": "▶", "done": "✓"}


class RunScreen(TunewiseScreen):
    """Follows ``<run_dir>/events.jsonl``; owns nothing the run needs, so leaving it stops nothing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_run", "Cancel run"),
        Binding("r", "resume_run", "Resume"),
        Binding("v", "results", "Results"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run_dir: Path, process: RunHandle | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.process = process
        self.state = RunState()
        self.tail = EventTail(self.run_dir / EVENTS_FILE)
        self._logs_shown = 0
        self._crash_reported = False
        self._end_recorded = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="run"):
            yield Static("", id="run-head")
            with Horizontal(id="run-progress-row"):
                yield ProgressBar(total=None, show_eta=False, id="run-progress")
                yield Static("", id="run-steps")
            yield Static("", id="run-stats")
            yield Static("", id="run-phases")
            yield Static("", id="run-outcome")
            yield LossChart(id="run-chart")
            yield Log(id="run-log", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.run_dir)
        self._poll()
        self.set_interval(POLL_SECONDS, self._poll)

    # -- following -----------------------------------------------------------------------------

    def _poll(self) -> None:
        events, restarted = self.tail.read_new()
        if restarted:
            self.state = RunState()
            self._logs_shown = 0
            self.query_one(Log).clear()
        for event in events:
            self.state.apply(event)
        if self.process is not None and not self.state.finished:
            code = self.process.poll()
            if code is not None:
                # The process is gone; the last events may still be on their way to the file.
                for event in self.tail.read_new()[0]:
                    self.state.apply(event)
                if not self.state.finished and not self.state.starts:
                    # Refused before it started: nothing was written into the folder, the reason
                    # travelled on the run's stdout.
                    for event in self.process.early_events():
                        self.state.apply(event)
                if not self.state.finished:
                    self._crashed(code)
        if self.state.finished and not self._end_recorded:
            self._end_recorded = True
            self._ended()
        self._draw()

    def _crashed(self, code: int) -> None:
        self.state.crashed()
        if self._crash_reported:
            return
        self._crash_reported = True
        tail = self.process.log_tail(15) if self.process else ""
        how = f"exited with code {code}" if code >= 0 else "is no longer running"
        self.app.push_screen(ErrorDialog(
            "The run stopped without finishing",
            f"`tunewise run` {how} before reporting an end. "
            f"Its output is in {self.run_dir / 'tui-run.log'}; resume with r once fixed.",
            tail, overlay=True,
        ))

    def _ended(self) -> None:
        state = self.state
        self.tw.record_run_outcome(self.run_dir, state)
        if state.status == "completed":
            self.notify("Run completed: press v for the results.", title="run")
        elif state.status == "cancelled":
            self.notify("Run cancelled after its checkpoint: press r to resume.", title="run")
        elif state.status == "stopped":
            message = str((state.result or {}).get("message", "")) or "a guardrail stopped the run"
            self.app.push_screen(ErrorDialog("The run stopped at a guardrail (resumable)", message, overlay=True))
        elif state.status == "failed" and state.errors and not self._crash_reported:
            error = state.errors[-1]
            self.app.push_screen(ErrorDialog(f"The run failed ({error.get('kind', 'error')})",
                                             str(error.get("message", "")), overlay=True))

    def _live(self) -> bool:
        """Whether a session is running now (so its time counts up to now, not to its last event)."""
        return self.process is not None and self.process.running and not self.state.finished

    def _draw(self) -> None:
        state = self.state
        now = time.time() if self._live() else None
        until = now if now is not None else state.last_time
        status = state.status
        label = {"waiting": "waiting for the run to start", "crashed": "stopped without finishing"}.get(status, status)
        # Texts from the events file are shown as written, never read as markup.
        head = Text.assemble((state.method or "run", "bold"), f" · {label}")
        if state.device:
            head.append(f" · {state.device}")
        self.query_one("#run-head", Static).update(head)
        self._draw_progress(state)
        times = state.times(now)
        stats = []
        if state.trained:
            stats += [f"loss {state.loss:.4f}" if state.loss is not None else "loss –",
                      f"{state.tokens_per_s:,.0f} tok/s" if state.tokens_per_s is not None else "– tok/s"]
        elapsed = f"elapsed {duration(times.wall_s)}" if state.events else "elapsed –"
        if times.sessions > 1:
            elapsed += f" ({times.sessions} sessions)"
        stats.append(elapsed)
        if not state.finished:
            current = state.current
            eta = current.eta_s() if current is not None else None
            stats.append(f"ETA {duration(eta)}")
        if state.peak_memory_gb is not None:
            stats.append(f"peak {state.peak_memory_gb:.2f} GB")
        self.query_one("#run-stats", Static).update(" · ".join(stats))
        self.query_one("#run-phases", Static).update(phase_lines(state, until))
        outcome = self.query_one("#run-outcome", Static)
        outcome.display = state.finished
        outcome.update(outcome_text(state) if state.finished else "")
        chart = self.query_one(LossChart)
        # Methods that do not train (RAG, in-context) have no loss: phases instead of an empty chart.
        chart.display = state.trained
        self.query_one("#run").set_class(not state.trained, "-no-chart")
        chart.show_losses(state.losses, state.eval_losses)
        log = self.query_one(Log)
        lines = list(state.logs)
        for level, message in lines[self._logs_shown:]:
            log.write_line(message if level == "info" else f"{level.upper()}: {message}")
        self._logs_shown = len(lines)

    def _draw_progress(self, state: RunState) -> None:
        """The bar follows the current phase; a finished run's bar stands still (100% once completed)."""
        bar = self.query_one("#run-progress", ProgressBar)
        steps = self.query_one("#run-steps", Static)
        current = state.current
        counted = f"step {state.step}/{state.total_steps}" if state.total_steps else ""
        if state.status == "completed":
            bar.update(total=100, progress=100)
            steps.update(counted or state.status)
            return
        if state.finished:
            fraction = state.fraction if state.total_steps else (_last_fraction(state) or 0.0)
            bar.update(total=100, progress=round(100 * fraction))
            steps.update(counted or state.status)
            return
        if current is not None and current.training and state.total_steps:
            bar.update(total=state.total_steps, progress=state.step)
            steps.update(counted)
        elif current is not None and current.total:
            bar.update(total=current.total, progress=current.done or 0)
            steps.update(Text(f"{current.name} {current.done or 0}/{current.total}"))
        else:
            bar.update(total=None)  # nothing to count yet (starting, saving): the bar says it is busy
            if current is not None:
                steps.update(Text(current.name))
            else:
                steps.update("starting" if state.status == "running" else (counted or "step –"))

    # -- actions ---------------------------------------------------------------------------

    def action_cancel_run(self) -> None:
        if self.process is None or not self.process.running:
            self.notify("This run is not going: nothing to cancel.", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if yes and self.process is not None and self.process.cancel():
                self.state.logs.append(("info", "cancel requested: the run saves a checkpoint and stops"))
                self._draw()

        self.app.push_screen(ConfirmDialog(
            "Cancel the run?", "It saves a checkpoint and stops; press r later to resume from it.",
            yes="Cancel run", no="Keep running"), confirmed)

    def action_resume_run(self) -> None:
        if self.process is not None and self.process.running:
            self.notify("The run is still going.", severity="warning")
            return
        if self.state.status == "completed":
            self.notify("The run already completed.", severity="warning")
            return
        plan = launched_plan(self.run_dir) or (self.process.plan_path if self.process else None)
        if plan is None:
            self.notify(f"No plan found for {self.run_dir}: resume it with `tunewise run PLAN --out "
                        f"{self.run_dir} --resume`.", severity="error")
            return
        self.process = self.tw.start_run(plan, self.run_dir, resume=True)
        self._crash_reported = False
        self._end_recorded = False
        self.state.status = "waiting"
        self.state.logs.append(("info", "resuming: " + " ".join(self.process.command)))
        self._draw()

    def action_results(self) -> None:
        if not self.state.finished:
            self.notify("The run has not finished yet.", severity="warning")
            return
        self.tw.show_results(self.run_dir)

    def action_back(self) -> None:
        if self.process is not None and self.process.running:
            self.notify("The run keeps going in the background; `tunewise --run "
                        f"{self.run_dir}` follows it again.")
        self.app.pop_screen()


def _last_fraction(state: RunState) -> float | None:
    """How far the phase a run ended in got."""
    for phase in reversed(state.phases):
        if phase.fraction is not None:
            return phase.fraction
    return None


def phase_line(phase: Phase, until: float | None) -> str:
    """``▶ evaluating before  12/30 examples · 8s · ~40s left``."""
    mark = MARKS.get(phase.state, "■")
    parts = [f"{mark} {phase.name}"]
    if phase.total is not None and phase.done is not None:
        parts[0] += f"  {phase.done}/{phase.total}" + (f" {phase.unit}" if phase.unit else "")
    seconds = phase.seconds(until)
    if seconds is not None:
        parts.append(duration(seconds))
    if phase.state == "running":
        eta = phase.eta_s()
        if eta is not None and phase.done is not None and phase.total is not None and phase.done < phase.total:
            parts.append(f"~{duration(eta)} left")
    elif phase.state != "done":
        parts.append(phase.state)
    return " · ".join(parts)


def phase_lines(state: RunState, until: float | None) -> Text:
    """One line per phase, the current one bold; older finished phases folded into the first line."""
    phases = state.phases
    text = Text(no_wrap=True, overflow="ellipsis")
    if not phases:
        if state.status == "running" and state.started_at is not None and until is not None:
            # Loading the model and data: no phase reported yet, but the run is busy, not stuck.
            text.append(f"▶ starting · {duration(until - state.started_at)}", style="bold")
        return text
    rows = PHASE_ROWS if state.trained else PHASE_ROWS_WITHOUT_CHART
    hidden = phases[:-rows + 1] if len(phases) > rows else []
    if hidden:
        seconds = sum(p.seconds(until) or 0.0 for p in hidden)
        text.append(f"✓ {len(hidden)} earlier phases ({', '.join(p.name for p in hidden)}) · "
                    f"{duration(seconds)}\n", style="dim")
    shown = phases[len(hidden):]
    for i, phase in enumerate(shown):
        style = "bold" if phase is state.current else ("dim" if phase.state == "done" else "")
        text.append(phase_line(phase, until) + ("\n" if i < len(shown) - 1 else ""), style=style)
    return text


def outcome_text(state: RunState) -> Text:
    """The end in one sentence: the status, and the bake-off's verdict when the run sent one."""
    text = Text()
    text.append(state.status, style="bold")
    result = state.result or {}
    if state.bakeoff and state.bakeoff.get("sentence"):
        text.append(f": {state.bakeoff['sentence']}")
    elif state.status == "crashed":
        text.append(": the run stopped without reporting an end; r resumes from its last checkpoint")
    elif result.get("message"):
        text.append(f": {result['message']}")
    elif state.errors:
        text.append(f": {state.errors[-1].get('message', '')}")
    return text
