"""Starting, following and stopping a ``tunewise run`` from the app (no textual in here).

The app does not read the run's stdout: it starts ``tunewise run PLAN --out DIR`` in its own
session with output going to ``DIR/tui-run.log`` and follows ``DIR/events.jsonl``. So the run
keeps going when the terminal closes (no SIGHUP, no broken pipe), and watching a run started
elsewhere (``tunewise --run DIR``) is the same code path.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tunewise.advisor.run_times import RunTimes, run_times
from tunewise.plugins.events import parse_event_line
from tunewise.plugins.redaction import seal_data

EVENTS_FILE = "events.jsonl"
RUN_LOG_FILE = "tui-run.log"
LAUNCH_FILE = "tui-run.json"
"""What the app launched (plan, command, pid), so a later session can resume the same plan."""
RUN_EVENTS_FILE = "tui-run-events.jsonl"
"""The events of the app's latest launch as the run's stdout carried them (``--events -``). A run
refused before it starts writes nothing into its folder (no ``events.jsonl``), so this is where the
app learns why it was refused."""


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete event line of ``path`` ([] when it does not exist)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [e for e in (parse_event_line(line) for line in text.split("\n")[:-1]) if e is not None]


class EventTail:
    """Reads the events appended to a file since the last call; copes with a file that restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = 0
        self._partial = b""

    def read_new(self) -> tuple[list[dict[str, Any]], bool]:
        """``(new events, restarted)``; ``restarted`` means the file was replaced or truncated."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], False
        restarted = size < self._position
        if restarted:
            self._position, self._partial = 0, b""
        if size == self._position:
            return [], restarted
        with open(self.path, "rb") as stream:
            stream.seek(self._position)
            chunk = stream.read(size - self._position)
        self._position += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for its end
        events = []
        for raw in lines:
            event = parse_event_line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events, restarted


@dataclass
class Phase:
    """One thing the run does (``evaluating before``, ``training``, ``embedding`` …) with its own progress.

    ``elapsed_s`` counts the closed stints (a phase entered again after a resume has several); the open
    one runs from ``since``. The rate behind :meth:`eta_s` comes from the open stint's first and latest
    ``(time, done)`` points, so a resumed phase is not credited with the steps done before it.
    """

    name: str
    unit: str = ""
    done: int | None = None
    total: int | None = None
    state: str = "running"
    """``running``, ``done``, or how the run ended while in it (``cancelled``, ``failed``, ``stopped``,
    ``interrupted`` for a session cut off without an end)."""
    elapsed_s: float = 0.0
    since: float | None = None
    origin: tuple[float, float] | None = None
    latest: tuple[float, float] | None = None
    reported_eta_s: float | None = None
    """The run's own estimate (a ``progress`` event's ``eta_s``), preferred to the rate from the events."""
    untimed: bool = False
    """Inferred from ``progress`` events alone (a stream from before ``phase`` events): its time is not
    recorded, as :mod:`tunewise.advisor.run_times` does not count it as training time."""

    @property
    def training(self) -> bool:
        return self.unit == "steps"

    def seconds(self, until: float | None) -> float | None:
        """Wall seconds in this phase, the open stint counted to ``until``; None when never timed."""
        if self.untimed:
            return None
        if self.since is None:
            return self.elapsed_s if self.elapsed_s > 0 else None
        return self.elapsed_s + max(0.0, (until if until is not None else self.since) - self.since)

    def eta_s(self) -> float | None:
        if self.total is None or self.done is None:
            return None
        if self.done >= self.total:
            return 0.0
        if self.reported_eta_s is not None:
            return self.reported_eta_s
        if self.origin is None or self.latest is None:
            return None
        (t0, d0), (t1, d1) = self.origin, self.latest
        if d1 <= d0 or t1 <= t0:
            return None
        return (t1 - t0) / (d1 - d0) * (self.total - self.done)

    @property
    def fraction(self) -> float | None:
        if self.total is None or self.done is None or self.total <= 0:
            return None
        return min(1.0, max(0.0, self.done / self.total))


EVAL_PHASES = {"before": "evaluating before", "after": "evaluating after"}
"""The phase an ``eval`` event closes, for event streams written before ``phase`` events existed."""

END_STATES = ("completed", "failed", "cancelled", "stopped", "crashed")


@dataclass
class RunState:
    """Everything the run screen shows, folded from the event stream."""

    method: str = ""
    device: str = ""
    status: str = "waiting"
    """``waiting`` (no event yet), ``running``, then the end status or ``crashed``."""
    step: int = 0
    total_steps: int = 0
    epoch: float | None = None
    loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    elapsed_s: float | None = None
    """The latest ``progress`` event's ``elapsed_s`` (the method's own step clock; not what the screen
    calls elapsed, which is :meth:`times`)."""
    eta_s: float | None = None
    peak_memory_gb: float | None = None
    wall_s: float | None = None
    """Once ended: the run's wall seconds summed over its sessions (:mod:`tunewise.advisor.run_times`)."""
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    evals: dict[str, dict[str, float]] = field(default_factory=dict)
    """Latest metrics per phase (``before`` / ``during`` / ``after``)."""
    checkpoints: list[tuple[int, str]] = field(default_factory=list)
    logs: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=500))
    errors: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    starts: int = 0
    phases: list[Phase] = field(default_factory=list)
    current: Phase | None = None
    bakeoff: dict[str, Any] | None = None
    trained: bool = False
    """A ``progress`` event came: the run trains, so the screen shows its loss chart."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every event, for the times (summed over sessions)."""
    last_time: float | None = None
    started_at: float | None = None
    """When the latest session sent ``start``."""
    explicit_phases: bool = False
    """The run sends ``phase`` events; else (older streams) ``eval`` events stand for its evaluations."""

    @property
    def finished(self) -> bool:
        return self.status in END_STATES

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def times(self, now: float | None = None) -> RunTimes:
        """Wall and training time over every session; ``now`` counts a session still running up to now."""
        return run_times(self.events, None if self.finished else now)

    def apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        when = _number(event.get("time"))
        when = when if when is not None and math.isfinite(when) else None
        self.events.append(dict(event))
        if kind == "start":
            if self.starts and self.current is not None:
                # The session before ended without an ``end`` event (killed): its phase stopped then.
                self._close(self.last_time, "interrupted")
            self.starts += 1
            self.started_at = when
            self.status = "running"
            self.method = str(event.get("method", self.method))
            self.device = str(event.get("device", self.device) or "")
            self.total_steps = int(event.get("total_steps") or 0)
            self.plan = event.get("plan") if isinstance(event.get("plan"), dict) else self.plan
            self.result = None
            self.wall_s = None
            if self.starts > 1:
                self.logs.append(("info", "run started again (resume)"))
        elif kind == "phase" and not self.finished:  # after ``end``, only a ``start`` reopens the run
            self._busy()
            self.explicit_phases = True
            self._enter(str(event.get("phase") or "working"), when, _count(event.get("done")),
                        _count(event.get("total")), str(event.get("unit") or ""))
        elif kind == "progress" and not self.finished:
            self._busy()
            self.trained = True
            step = int(event.get("step", 0))
            # A resume from an earlier checkpoint replays steps: forget the points it replaces.
            self.losses = [(s, v) for s, v in self.losses if s < step]
            self.step = step
            self.total_steps = int(event.get("total_steps") or self.total_steps)
            self.loss = _number(event.get("loss"))
            self.lr = _number(event.get("lr"))
            self.tokens_per_s = _number(event.get("tokens_per_s"))
            self.elapsed_s = _number(event.get("elapsed_s"))
            self.eta_s = _number(event.get("eta_s"))
            self.epoch = _number(event.get("epoch"))
            self.peak_memory_gb = _number(event.get("peak_memory_gb")) or self.peak_memory_gb
            if self.loss is not None:
                self.losses.append((step, self.loss))
            # A staged method (RLHF) counts steps across the run and also within the stage.
            done = _count(event.get("stage_step"))
            total = _count(event.get("stage_steps"))
            if done is None or total is None:
                done, total = step, self.total_steps or None
            training = self.current if self.current is not None and self.current.training else None
            self._enter(training.name if training else "training", when, done, total, "steps")
            assert self.current is not None
            self.current.reported_eta_s = self.eta_s
            self.current.untimed = not self.explicit_phases
        elif kind == "eval":
            phase = str(event.get("phase", "during"))
            metrics = {k: v for k, v in (event.get("metrics") or {}).items() if isinstance(v, (int, float))}
            self.evals[phase] = metrics
            loss = metrics.get("eval_loss", metrics.get("loss"))
            if loss is not None:
                self.eval_losses.append((int(event.get("step", 0)), float(loss)))
            self._eval_phase(phase, when)
        elif kind == "checkpoint":
            self.checkpoints.append((int(event.get("step", 0)), str(event.get("path", ""))))
            self.logs.append(("info", f"checkpoint at step {event.get('step')}: {event.get('path')}"))
        elif kind == "log":
            self.logs.append((str(event.get("level", "info")), str(event.get("message", ""))))
        elif kind == "error":
            self.errors.append(dict(event))
            self.logs.append(("error", f"{event.get('kind', 'error')}: {event.get('message', '')}"))
        elif kind == "bakeoff":
            self.bakeoff = dict(event)
        elif kind == "end":
            self.status = str(event.get("status", "failed"))
            if self.status not in END_STATES:
                self.status = "failed"
            result = event.get("result")
            self.result = result if isinstance(result, dict) else None
            self.peak_memory_gb = _number(event.get("peak_memory_gb")) or self.peak_memory_gb
            if self.status == "completed" and self.total_steps:
                self.step = max(self.step, self.total_steps if not self.errors else self.step)
            self._close(when if when is not None else self.last_time,
                        "done" if self.status == "completed" else self.status)
            if self.status == "completed":
                for finished in self.phases:
                    finished.state = "done"
            self.wall_s = run_times(self.events).wall_s
        if when is not None:
            self.last_time = when if self.last_time is None else max(self.last_time, when)

    def _busy(self) -> None:
        # Only ``start`` reopens an ended run: a stray line after ``end`` does not make it run again.
        if self.status == "waiting":
            self.status = "running"

    def crashed(self) -> None:
        """The process is gone without an ``end`` event."""
        self.status = "crashed"
        self._close(self.last_time, "interrupted")

    # -- phases --------------------------------------------------------------------------------

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def _enter(self, name: str, when: float | None, done: int | None, total: int | None, unit: str) -> None:
        """A phase event (or a progress event standing for one): make ``name`` current and update it."""
        phase = self.phase(name)
        fresh = phase is None
        if phase is None:
            phase = Phase(name)
            self.phases.append(phase)
        if self.current is not phase:
            self._close(when, "done")
            phase.state = "running"
            phase.since = when
            phase.reported_eta_s = None
            if when is None:
                phase.origin = None
            elif fresh and done:
                # The first report came after some work: the phase began when the run's previous event came.
                phase.origin = (self.last_time if self.last_time is not None else when, 0.0)
            else:
                phase.origin = (when, float(done or 0))
            self.current = phase
        phase.unit = unit or phase.unit
        phase.total = total if total is not None else phase.total
        phase.done = done if done is not None else phase.done
        if when is not None and done is not None:
            phase.latest = (when, float(done))

    def _eval_phase(self, phase: str, when: float | None) -> None:
        """An older stream (no ``phase`` events) still shows that the run evaluated before and after."""
        name = EVAL_PHASES.get(phase)
        if self.explicit_phases or name is None or self.phase(name) is not None:
            return
        self._close(when, "done")
        self.phases.append(Phase(name, state="done"))

    def _close(self, when: float | None, how: str) -> None:
        phase = self.current
        if phase is None:
            return
        if phase.since is not None and when is not None:
            phase.elapsed_s += max(0.0, when - phase.since)
        phase.since = None
        phase.state = how
        phase.reported_eta_s = None
        self.current = None


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None or not math.isfinite(number) else max(0, int(number))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_run_state(run_dir: Path) -> RunState:
    """The state of a run from its events file (all of it, from the start)."""
    state = RunState()
    events, _ = EventTail(run_dir / EVENTS_FILE).read_new()
    for event in events:
        state.apply(event)
    return state


def run_command(plan_path: Path, out_dir: Path, *, resume: bool = False) -> list[str]:
    """The command line that runs ``plan_path`` (what the app starts and what it shows the user)."""
    command = ["tunewise", "run", str(plan_path), "--out", str(out_dir)]
    if resume:
        command.append("--resume")
    if _names_outside_paths(plan_path, out_dir):
        command.append("--allow-outside-paths")  # the user chose those paths in the app; the flag shows it
    return command


def _names_outside_paths(plan_path: Path, out_dir: Path) -> bool:
    """Whether ``tunewise run PLAN --out OUT_DIR`` needs ``--allow-outside-paths``: the plan loads with the
    opt-in and not without it (the very rule the run applies to every path: data, model, config files)."""
    from tunewise.advisor.plans import PlanError, load_plan
    from tunewise.plugins.errors import TunewiseError

    try:
        load_plan(plan_path, allow_outside_paths=True, out=str(out_dir))
    except (TunewiseError, OSError):
        return False  # no plan yet, or one the run will refuse with its own message
    try:
        load_plan(plan_path, allow_outside_paths=False, out=str(out_dir))
    except PlanError:
        return True
    return False


class RunHandle(Protocol):
    """What the run screen needs of a run it can stop: a :class:`RunProcess` or an :class:`AttachedRun`."""

    out_dir: Path
    plan_path: Path
    resume: bool

    @property
    def command(self) -> list[str]: ...

    @property
    def running(self) -> bool: ...

    def poll(self) -> int | None: ...

    def cancel(self) -> bool: ...

    def log_tail(self, lines: int = 20) -> str: ...

    def early_events(self) -> list[dict[str, Any]]: ...


class RunProcess:
    """A ``tunewise run`` started by the app in its own session (survives the app and the terminal)."""

    def __init__(self, plan_path: Path, out_dir: Path, *, resume: bool = False) -> None:
        self.plan_path = Path(plan_path)
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return run_command(self.plan_path, self.out_dir, resume=self.resume)

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Events also go to stdout (into RUN_EVENTS_FILE): the only record of a run refused before it starts.
        argv = [sys.executable, "-m", "tunewise.advisor.cli", *self.command[1:], "--events", "-"]
        log = open(self.out_dir / RUN_LOG_FILE, "ab")  # noqa: SIM115 - handed to the child, closed below
        early = open(self.out_dir / RUN_EVENTS_FILE, "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=early, stderr=log, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
            early.close()
        launch = {"plan": str(self.plan_path.resolve()), "out": str(self.out_dir.resolve()),
                  "command": self.command, "pid": self.process.pid}
        (self.out_dir / LAUNCH_FILE).write_text(json.dumps(seal_data(launch), indent=2) + "\n", encoding="utf-8")

    def poll(self) -> int | None:
        """The exit code once the process ended, else None."""
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cancel(self) -> bool:
        """Ask the run to checkpoint and stop (SIGTERM); False if it is not running."""
        if not self.running:
            return False
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return True

    def log_tail(self, lines: int = 20) -> str:
        path = self.out_dir / RUN_LOG_FILE
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def early_events(self) -> list[dict[str, Any]]:
        """The latest launch's events from its stdout (see :data:`RUN_EVENTS_FILE`)."""
        return read_events(self.out_dir / RUN_EVENTS_FILE)


def launched_pid(run_dir: Path) -> int | None:
    """The pid of a ``tunewise run`` an earlier app session started for ``run_dir``, if it still runs.

    The pid is trusted only while ``/proc/<pid>/cmdline`` is a ``tunewise run`` for this folder, so a
    recycled pid is never signalled (without ``/proc`` this returns None: no cancel from outside).
    """
    launch = run_dir / LAUNCH_FILE
    try:
        pid = int(json.loads(launch.read_text(encoding="utf-8"))["pid"])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    words = [a.decode("utf-8", "replace") for a in argv]
    out = str(run_dir.resolve())
    is_run = "tunewise.advisor.cli" in words and "run" in words
    same_dir = any(w and Path(w).resolve() == Path(out) for w in words if not w.startswith("-"))
    return pid if is_run and same_dir else None


class AttachedRun:
    """A run this app session did not start (found through ``tui-run.json``): follow and cancel it."""

    def __init__(self, run_dir: Path, pid: int) -> None:
        self.out_dir = Path(run_dir)
        self.pid = pid
        self.plan_path = launched_plan(self.out_dir) or self.out_dir / "plan.yaml"
        self.resume = False

    @property
    def command(self) -> list[str]:
        return run_command(self.plan_path, self.out_dir)

    @property
    def running(self) -> bool:
        return launched_pid(self.out_dir) == self.pid

    def poll(self) -> int | None:
        """None while it runs; -1 once it is gone (not our child: its exit code is unknown)."""
        return None if self.running else -1

    def cancel(self) -> bool:
        if not self.running:
            return False
        os.kill(self.pid, signal.SIGTERM)
        return True

    def log_tail(self, lines: int = 20) -> str:
        path = self.out_dir / RUN_LOG_FILE
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def early_events(self) -> list[dict[str, Any]]:
        """The latest launch's events from its stdout (see :data:`RUN_EVENTS_FILE`)."""
        return read_events(self.out_dir / RUN_EVENTS_FILE)


def launched_plan(run_dir: Path) -> Path | None:
    """The plan file the app (or a plan-writing runner) left in ``run_dir``, for resuming."""
    launch = run_dir / LAUNCH_FILE
    if launch.exists():
        try:
            plan = Path(json.loads(launch.read_text(encoding="utf-8"))["plan"])
        except (ValueError, KeyError, TypeError):
            plan = None
        if plan is not None and plan.exists():
            return plan
    for name in ("plan.yaml", "plan.yml"):
        if (run_dir / name).exists():
            return run_dir / name
    return None
