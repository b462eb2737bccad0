"""Running a plan in this process: what ``tunewise run`` does (the TUI starts that command as a subprocess).

Order: the plan is validated, the output folder's lock is taken (:mod:`~tunewise.advisor.output_lock`:
one run per folder), ``tunewise_before_run`` is called, the method runs with a :class:`RunSink` as
its event sink, ``tunewise_after_run`` is called and an ``end`` event closes the stream. Events go as
JSON lines to ``<output_dir>/events.jsonl`` (and stdout with ``--events -``); a progress bar with
loss, tokens/s and ETA goes to stderr. Training methods run their memory preflight themselves, before
their model loads, because only they know what trains.

A run is *accepted* when its method sends ``start`` (methods make every refusal decision before
it); only then is ``events.jsonl`` opened (appended to on ``--resume``, else started afresh). A run
that ends before ``start`` was refused and leaves the output folder as it found it, byte for byte:
its events go to stdout (``--events -``) and stderr only.

Plugins' ``tunewise_training_callbacks`` objects are fed from the same events: ``on_step(step,
metrics)`` for progress, ``on_eval(step, metrics)`` for evaluations and ``on_end(result)``. A
callback that returns ``True`` from ``on_step`` or ``on_eval`` asks the run to stop early (the
training loop checks :attr:`RunSink.stop_requested` after every step, checkpoints and finishes
normally). A callback that raises (any exception) or does not return within the plugin time limit
is reported as a warning and dropped; callback methods run in a worker thread for that.

SIGTERM and Ctrl-C cancel: the training loop checkpoints and the run ends with status
``cancelled`` and exit code 130 (``--resume`` continues it). A guardrail (``training.max_hours`` /
``max_usd``, too little disk for the next checkpoint) ends it with status ``stopped`` and exit code 3.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.events import JsonlEventWriter
from tunewise.plugins.types import Plan, RunResult

if TYPE_CHECKING:
    from tunewise.advisor.output_lock import OutputLock
    from tunewise.advisor.spend import SpendReport

EXIT_CODES = {"completed": 0, "failed": 1, "stopped": 3, "cancelled": 130}
_ERROR_KINDS = {"DataError": "data", "PlanError": "plan", "PlanSettingsError": "plan", "ResumeError": "resume",
                "MethodNotRunnable": "not_runnable", "ModelNotFoundError": "model", "PluginError": "plugin",
                "OutputLocked": "locked"}


class ProgressView:
    """Progress on stderr: a rich bar on a terminal, plain lines (at most every few seconds) otherwise."""

    PLAIN_INTERVAL_S = 5.0

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console

        self.console = Console(file=stream, stderr=stream is sys.stderr, soft_wrap=True)
        self.live = self.console.is_terminal
        self._progress: Any = None
        self._task: Any = None
        self._last_plain = 0.0

    def _start_bar(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
            TextColumn("ETA {task.fields[eta]}"), console=self.console, transient=False,
        )
        self._task = self._progress.add_task("training", total=total, loss="–", speed="–", eta="–")
        self._progress.start()

    @staticmethod
    def _eta(seconds: float | None) -> str:
        if seconds is None:
            return "–"
        seconds = int(seconds)
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "start":
            self.console.print(f"[bold]{event['method']}[/bold] on {event.get('device', '?')}: "
                               f"{event['total_steps']} steps")
            if self.live:
                self._start_bar(int(event["total_steps"]))
        elif kind == "progress":
            loss, speed, eta = f"{event['loss']:.4f}", f"{event['tokens_per_s']:,.0f}", self._eta(event.get("eta_s"))
            if self._progress is not None:
                self._progress.update(self._task, completed=event["step"], loss=loss, speed=speed, eta=eta)
            elif time.monotonic() - self._last_plain >= self.PLAIN_INTERVAL_S or event["step"] == event["total_steps"]:
                self._last_plain = time.monotonic()
                self.console.print(f"step {event['step']}/{event['total_steps']}  loss {loss}  {speed} tok/s  ETA {eta}",
                                   highlight=False)
        elif kind == "eval":
            shown = ", ".join(f"{k} {v:.4f}" for k, v in event["metrics"].items() if k != "eval_tokens")
            self.console.print(f"eval ({event['phase']}, step {event['step']}): {shown}", highlight=False)
        elif kind == "checkpoint":
            self.console.print(f"checkpoint {event['path']}", style="dim", highlight=False)
        elif kind == "log":
            style = "yellow" if event.get("level") == "warning" else "dim"
            self.console.print(f"{event['level']}: {event['message']}", style=style, highlight=False)
        elif kind == "error":
            self.console.print(f"error ({event['kind']}): {event['message']}", style="red", highlight=False)
        elif kind == "end":
            self.close()
            self.summary(event)

    def summary(self, end: dict[str, Any]) -> None:
        """The run's last lines: status, the bake-off verdict and interval, spent vs quoted, then artifacts."""
        from tunewise.advisor.report_render import bakeoff_console

        result = end.get("result") or {}
        bake = result.get("bakeoff") if isinstance(result.get("bakeoff"), dict) else None
        message = str(result.get("message", ""))
        sentence = str(bake.get("sentence", "")) if bake else ""
        rest = message.removeprefix(sentence).strip(" .") if sentence and message.startswith(sentence) else message
        from rich.markup import escape

        status = f"[bold]{escape(str(end['status']))}[/bold]"
        self.console.print(f"{status}: {escape(rest)}" if rest else status, highlight=False)
        if bake or end.get("status") == "completed":
            for line in bakeoff_console(bake, message):
                self.console.print(line, highlight=False)
        spend = end.get("spend")
        if isinstance(spend, dict) and spend.get("sentence"):
            self.console.print(str(spend["sentence"]), highlight=False)
        for name, path in sorted((result.get("artifacts") or {}).items()):
            if path and name != "report":
                self.console.print(f"{name}: {path}", style="dim", highlight=False)
        if result.get("report"):
            self.console.print(f"report: {result['report']}", highlight=False)
        if bake and "bakeoff" not in (result.get("artifacts") or {}):
            folder = Path(str(result.get("output_dir") or "."))
            self.console.print(f"every example's answers: {folder / 'bakeoff.jsonl'}", highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class EventsFile:
    """The run's events file, opened only when the run is accepted; lines before that wait in memory."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self.path = path
        self.append = append
        self._pending: list[str] = []
        self._file: IO[str] | None = None
        self._actions: list[Callable[[], None]] = []

    @property
    def accepted(self) -> bool:
        return self._file is not None

    def on_accept(self, action: Callable[[], None]) -> None:
        """Run ``action`` when the run is accepted (writes that must not happen for a refused run)."""
        self._actions.append(action)

    def accept(self) -> None:
        if self._file is not None:
            return
        self._file = open(self.path, "a" if self.append else "w", encoding="utf-8")  # noqa: SIM115 - see close
        self._file.write("".join(self._pending))
        self._file.flush()
        self._pending.clear()
        for action in self._actions:
            action()

    def write(self, text: str) -> int:
        if self._file is None:
            self._pending.append(text)
        else:
            self._file.write(text)
        return len(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class RunSink:
    """The event sink a method writes to during ``tunewise run``."""

    def __init__(self, streams: Sequence[IO[str]], view: ProgressView | None = None,
                 callbacks: Sequence[Any] = (), on_start: Callable[[], None] | None = None,
                 started: float | None = None) -> None:
        self._writer = JsonlEventWriter(*streams)
        self.started = started
        """``time.time()`` when this session began; stamped on ``start`` as ``session_started`` so a
        session killed before its ``end`` still has a beginning (:mod:`~tunewise.advisor.spend`)."""
        self.view = view
        self.callbacks = list(callbacks)
        self.on_start = on_start
        self.stop_requested = False
        self.peak_memory_gb = 0.0
        self.last_error: str | None = None

    def __call__(self, kind: str, /, **fields: Any) -> None:
        from tunewise.plugins.events import make_event

        if kind == "start" and self.started is not None:
            fields.setdefault("session_started", round(self.started, 3))
        if kind == "start" and self.on_start is not None:
            self.on_start()  # the run is accepted: its events file opens before this event is written
        if kind in ("progress", "end") and fields.get("peak_memory_gb"):
            self.peak_memory_gb = max(self.peak_memory_gb, float(fields["peak_memory_gb"]))
        if kind == "error":
            self.last_error = str(fields.get("message"))
        self._writer(kind, **fields)
        if self.view is not None:
            from tunewise.plugins.redaction import redact_data

            self.view(redact_data(make_event(kind, **fields)))  # stderr often ends up in a log file
        if kind == "start":
            self._warn_sizing(fields)
        if kind == "progress":
            metrics = {k: v for k, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self._dispatch("on_step", fields["step"], metrics)
        elif kind == "eval":
            self._dispatch("on_eval", fields["step"], dict(fields["metrics"]))

    def _warn_sizing(self, start: dict[str, Any]) -> None:
        """Settings too small to change anything (:mod:`~tunewise.advisor.plan_sizing`): warned, never refused.

        Sent once the method accepted the run, before its first step, so refusals keep their order.
        """
        from tunewise.advisor.plan_sizing import start_warnings

        for message in start_warnings(start):
            self("log", level="warning", message=message)

    def _dispatch(self, name: str, *args: Any) -> None:
        """Call ``name`` on each callback, isolated like a plugin hook (``plugins/isolation.py``): any
        exception (``SystemExit`` and ``KeyboardInterrupt`` included) or a call past the time limit
        drops the callback with a warning; a real Ctrl-C still interrupts the run."""
        if not self.callbacks:
            return
        from tunewise.plugins.isolation import run_isolated
        from tunewise.plugins.manager import RUN_LIMIT_S, time_limit

        limit = time_limit(RUN_LIMIT_S)
        for callback in list(self.callbacks):
            label = f"{type(callback).__name__}.{name}"
            outcome = run_isolated(functools.partial(_call_callback, callback, name, args), limit,
                                   name=f"tunewise-callback {label}")
            if outcome.ok:
                if outcome.value is True:
                    self.stop_requested = True
                continue
            self.callbacks.remove(callback)
            what = (f"did not return within {limit:g} s (abandoned)" if outcome.timed_out
                    else f"raised {outcome.error_text}")
            self._writer("log", level="warning",
                         message=f"training callback {label} {what}; it is dropped for the rest of the run")

    def finish(self, result: RunResult, wall_s: float, spend: dict[str, Any] | None = None) -> None:
        """Tell callbacks the result and write the ``end`` event (with ``spend``: spent vs quoted)."""
        self._dispatch("on_end", result)
        peak = max(self.peak_memory_gb, result.peak_memory_gb, _process_peak_gb())
        extra = {"spend": spend} if spend is not None else {}
        self("end", status=result.status, result=result.to_dict(), peak_memory_gb=round(peak, 3),
             wall_s=round(wall_s, 2), **extra)


def _call_callback(callback: Any, name: str, args: tuple[Any, ...]) -> Any:
    method = getattr(callback, name, None)
    return None if method is None else method(*args)


def _report_plugin_problems(host: Any, sink: RunSink, since: int) -> int:
    """Plugin failures recorded after the first ``since`` (this run's hook calls) as warning events."""
    for failure in host.failures[since:]:
        sink("log", level="warning", message=f"plugin problem: {failure.describe()}")
    return len(host.failures)


def _process_peak_gb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (like Ctrl-C) until a training loop installs its own handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def apply_overrides(plan: Plan, *, out: str | None = None, max_steps: int | None = None, resume: bool = False,
                    force: bool = False) -> Plan:
    """The plan with command-line overrides applied."""
    training = dict(plan.training)
    if max_steps is not None:
        training["max_steps"] = max_steps
    return replace(plan, output_dir=out or plan.output_dir, training=training, resume=resume or plan.resume,
                   force=force or plan.force)


def run_plan(plan: Plan, *, events_to_stdout: bool = False, show_progress: bool = True,
             on_accept: Sequence[Callable[[], None]] = ()) -> tuple[RunResult, int]:
    """Run a validated plan; returns its result and the process exit code (0, 1, 3 or 130).

    ``on_accept`` actions run when the method accepts the run (sends ``start``), never for a refused one.
    """
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.parallelism import events_file_name

    started = time.time()
    out = Path(plan.output_dir).expanduser().resolve()
    plan = replace(plan, output_dir=str(out))
    # One of several data-parallel processes: only rank 0 writes the run's events.jsonl.
    events_file = EventsFile(out / events_file_name(), append=plan.resume)
    for action in on_accept:
        events_file.on_accept(action)
    streams: list[IO[str]] = [events_file]  # type: ignore[list-item]  # write/flush is all a writer needs
    if events_to_stdout:
        streams.append(sys.stdout)
    view = ProgressView(sys.stderr) if show_progress else None
    host = get_host()
    reported = len(host.failures)
    callbacks: list[Any] = []
    for _plugin, returned in host.call("tunewise_training_callbacks", plan=plan):
        callbacks.extend(returned)  # checked by the host: a list of callback objects
    sink = RunSink(streams, view, callbacks, on_start=events_file.accept, started=started)
    reported = _report_plugin_problems(host, sink, reported)
    lock = None
    try:
        with _sigterm_interrupts():
            lock = _take_lock(out)
            host.call("tunewise_before_run", plan=plan)
            method = host.method(plan.method)
            reported = _report_plugin_problems(host, sink, reported)
            result = method.run(plan, sink)
    except KeyboardInterrupt:
        message = "cancelled before training started; nothing was checkpointed (run again, or --resume)"
        sink("log", level="warning", message=message)
        result = RunResult(plan.method, "cancelled", message=message, output_dir=str(out))
    except TunewiseError as exc:
        kind = _ERROR_KINDS.get(type(exc).__name__, "error")
        sink("error", message=str(exc), kind=kind)
        result = RunResult(plan.method, "failed", message=str(exc), output_dir=str(out))
    except BaseException as exc:  # also SystemExit or a custom BaseException from method code: the run failed
        detail = traceback.format_exc()
        sink("error", message=f"{type(exc).__name__}: {exc}", kind="internal", traceback=detail)
        result = RunResult(plan.method, "failed", message=f"internal error: {type(exc).__name__}: {exc}",
                           output_dir=str(out))
    try:
        if result.status == "failed" and not result.message and sink.last_error:
            result = replace(result, message=sink.last_error)
        if result.status == "completed":
            events_file.accept()  # a method that never sent ``start`` still gets its events written
        host.call("tunewise_after_run", plan=plan, result=result)
        _report_plugin_problems(host, sink, reported)
        wall_s = time.time() - started
        spend = _spend(plan, result, events_file, sink, wall_s)
        sink.finish(result, wall_s, None if spend is None else spend.to_dict())
        if view is not None:
            view.close()
    finally:
        events_file.close()
        if lock is not None:
            lock.release(accepted=events_file.accepted)
    return result, EXIT_CODES.get(result.status, 1)


def _spend(plan: Plan, result: RunResult, events_file: EventsFile, sink: RunSink, wall_s: float) -> SpendReport | None:
    """Spent vs quoted (:mod:`~tunewise.advisor.spend`) over every session of the folder, this one
    included: written to ``spend.json`` and appended to the method's report.md as a marked section.

    Only for a run accepted into its folder, by the process that writes its ``events.jsonl``. Working
    it out must never turn a finished run into a failed one: a problem is a warning.
    """
    from tunewise.advisor import spend as spending
    from tunewise.advisor.tui.run_watch import EVENTS_FILE, read_events

    if not events_file.accepted or events_file.path.name != EVENTS_FILE:
        return None
    try:
        events_file.flush()
        events = read_events(events_file.path)
        events.append({"event": "end", "time": time.time(), "wall_s": round(wall_s, 2)})
        report = spending.spend_report(events, plan.to_dict())
        out = events_file.path.parent
        spending.write_spend(out, report)
        if result.report:
            path = Path(result.report)
            spending.append_to_report(path if path.is_absolute() else out / path, report)
    except Exception as exc:  # bookkeeping after the run: it never fails a finished run
        sink("log", level="warning", message=f"could not work out what the run spent: {type(exc).__name__}: {exc}")
        return None
    return report


def _take_lock(out: Path) -> OutputLock | None:
    """This run's hold on its output folder; None for a rank whose launcher (or rank 0) holds it."""
    from tunewise.advisor.output_lock import acquire, covered_by_launcher
    from tunewise.plugins.parallelism import world_from_env

    rank, world, _ = world_from_env()
    if world > 1 and (rank != 0 or covered_by_launcher(out)):
        return None
    return acquire(out)


def report_plan_error(message: str, *, events_to_stdout: bool, kind: str = "plan") -> None:
    """A run refused before it could start (plan invalid, folder locked): as events when they go to stdout."""
    if events_to_stdout:
        writer = JsonlEventWriter(sys.stdout)
        writer("error", message=message, kind=kind)
        writer("end", status="failed", result={"status": "failed", "message": message}, peak_memory_gb=0.0, wall_s=0.0)
