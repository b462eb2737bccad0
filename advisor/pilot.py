"""Pilot-backed advice: run the top candidates on a sample of the user's data, measure, re-rank (no widgets).

:func:`run_pilot` draws one deterministic sample of the user's data and one held-out split of it,
writes a plan per candidate with the code ``tunewise plan`` uses (:mod:`~tunewise.advisor.plan_sizing`,
:mod:`~tunewise.advisor.tui.config_form`), shrunk to the pilot's time budget, runs each plan as a real
``tunewise run`` subprocess, and reads back what each run measured: its bake-off (``RunResult.bakeoff``
/ ``bakeoff.jsonl``), else its before/after metrics. A run that fails is evidence too, never a crash.

Every candidate evaluates on the same held-out examples: the split is chosen once with the training
methods' own content-hash split (:func:`tunewise.methods._hf.split.split_indices`), training methods get
the whole sample with that split's seed and size, and in-context learning gets the training rows as its
example pool and the held-out rows as ``eval_data``. Examples are compared by their row in the user's
data (``file:line``), whichever pilot file a run read them from.

The re-rank rule (:data:`RULE`), applied in this order:

1. a candidate that ran and was measured comes before one that failed or could not be measured;
2. then, among candidates measured on the same metric and the same held-out examples, one that beats
   another in a paired head-to-head (:func:`tunewise.plugins.bakeoff.bake_off`: the 95% interval of the
   difference excludes 0 and the sign test agrees) comes first (net wins count): the direct comparison
   of the results a user would deploy outranks each one's comparison with its own base;
3. then by its own bake-off against its base on the data's main metric (accuracy for labels …):
   ``better`` before ``not_better`` (or unknown) before ``worse``; a verdict on another metric (RAG's
   containment on labeled rows) counts as unknown, since it does not measure the task. This decides
   between candidates that could not be compared head-to-head, or tied;
4. otherwise the advisor's order stands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.plugins.errors import TunewiseError

if TYPE_CHECKING:
    from tunewise.advisor.ranking import Ranking, Recommendation
    from tunewise.plugins.types import Profile

RULE = ("a candidate that was measured comes before one that failed; then, on the same metric and the same held-out "
        "examples, the winner of a significant head-to-head (95% interval of the difference excludes 0 and the sign "
        "test agrees); then its own bake-off against its base on the data's main metric (better, then not better or "
        "unknown, then worse; another metric counts as unknown); "
        "otherwise the advisor's order stands")
"""The re-rank rule, as the CLI, the app and the decision log state it."""
DEFAULT_MINUTES = 10.0
MAX_MINUTES = 7 * 24 * 60.0
SAMPLE_MAX = 400
"""Most rows a pilot trains and evaluates on: enough to see a method learn, small enough for minutes."""
HELD_OUT_TARGET = 60
HELD_OUT_MIN = 2
HELD_OUT_MAX_SHARE = 0.25
SEED = 42
TRAIN_SHARE = 0.5
"""Share of a training candidate's minutes its optimizer steps may use (loading and evaluation take the rest)."""
FINISH_AT = 0.75
"""A training candidate still training at this share of its minutes is stopped and evaluated from its checkpoint."""
OVERRUN = 1.5
"""A candidate still running at this multiple of its minutes (plus :data:`GRACE_S`) is stopped."""
GRACE_S = 60.0
RESAMPLES = 2000
SUPERVISED = ("instruction", "prompt_completion", "messages")
COMPARABLE_SHAPES: dict[str, tuple[str, ...]] = {
    "lora": SUPERVISED, "full_finetune": SUPERVISED, "in_context": SUPERVISED, "rag": SUPERVISED,
    "continual_pretraining": ("text", "documents"), "rlhf": ("preference",),
}
"""Data shapes on which the built-in methods can evaluate on the pilot's held-out rows."""

Progress = Callable[["PilotProgress"], None]


class PilotError(TunewiseError):
    """A pilot that cannot start: unknown or inapplicable method, no data, a bad budget or output folder."""


@dataclass(frozen=True)
class PilotProgress:
    """Where a pilot is: the candidate (1-based ``index`` of ``count``), its phase and training step."""

    phase: str
    method: str = ""
    index: int = 0
    count: int = 0
    step: int = 0
    total_steps: int = 0
    message: str = ""

    def describe(self) -> str:
        where = f"{self.index}/{self.count} {self.method}: " if self.method else ""
        steps = f" ({self.step}/{self.total_steps})" if self.total_steps else ""
        return f"{where}{self.phase}{steps}" + (f" · {self.message}" if self.message else "")


@dataclass(frozen=True)
class PilotSample:
    """The rows every candidate sees: the sample, its split, and where each pilot file line came from."""

    source: str
    shape: str
    rows: int
    total_rows: int
    train_ids: tuple[str, ...]
    held_ids: tuple[str, ...]
    """``file:line`` of each held-out row in the user's data."""
    files: Mapping[str, str]
    """``sample`` (all rows), ``pool`` (training rows), ``held_out`` (+ ``corpus``/``questions`` for RAG)."""
    lines: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Pilot file (resolved) -> the user's ``file:line`` of each of its lines, in order."""
    task: str = ""
    main_metric: str = ""
    unit: str = "held-out examples"
    labels: tuple[str, ...] = ()
    held_count: int = 0
    """The held-out size asked of the split (duplicates of a held-out row may add to ``held_ids``)."""

    def original(self, example_id: str) -> str:
        """The user's ``file:line`` for a run's example id (a pilot file's ``file:line``, maybe with the
        ``#2`` a run gives a repeated row; else unchanged)."""
        head, hash_, copy = example_id.rpartition("#")
        if hash_ and copy.isdigit():
            return self.original(head) + f"#{copy}"
        path, _, line = example_id.rpartition(":")
        if not path or not line.isdigit():
            return example_id
        by_name = {Path(k).name: v for k, v in self.lines.items()}  # a run may name its files relatively
        for lines in (self.lines.get(path), self.lines.get(str(Path(path).resolve())), by_name.get(Path(path).name)):
            if lines is not None and 1 <= int(line) <= len(lines):
                return lines[int(line) - 1]
        return example_id

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "shape": self.shape, "rows": self.rows, "total_rows": self.total_rows,
                "train_rows": len(self.train_ids), "held_out_ids": list(self.held_ids), "files": dict(self.files),
                "task": self.task, "main_metric": self.main_metric, "seed": SEED}


@dataclass(frozen=True)
class Candidate:
    """One method in the pilot: its place in the advice, its quote and the plan it runs."""

    method: str
    title: str
    rank: int
    score: float
    quote: Mapping[str, Any] | None
    plan_path: str = ""
    run_dir: str = ""
    minutes: float = 0.0
    notes: tuple[str, ...] = ()
    """How the pilot's plan differs from a full plan (fewer steps, one selection strategy …)."""
    plan_text: str = ""
    trains: bool = False
    """The plan has a ``training:`` block (a run that can be stopped at a checkpoint and evaluated)."""

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "title": self.title, "rank": self.rank, "score": self.score,
                "quote": dict(self.quote) if self.quote else None, "plan": self.plan_path, "run_dir": self.run_dir,
                "minutes": round(self.minutes, 3), "notes": list(self.notes), "plan_text": self.plan_text}


@dataclass(frozen=True)
class Measurement:
    """What one candidate's pilot run measured (or why it measured nothing)."""

    method: str
    status: str
    """``completed``, ``failed``, ``stopped``, ``cancelled`` or ``not_run``."""
    message: str = ""
    metric: str | None = None
    metric_name: str = ""
    higher_is_better: bool = True
    before: float | None = None
    after: float | None = None
    after_interval: tuple[float, float] | None = None
    """95% bootstrap interval of the after-metric over the held-out examples."""
    difference_interval: tuple[float, float] | None = None
    """The bake-off's 95% interval of after - before."""
    verdict: str | None = None
    """The run's own bake-off verdict against its base: better, not_better, worse (None: none)."""
    sentence: str = ""
    examples: int = 0
    wall_s: float = 0.0
    usd: float = 0.0
    device: str = ""
    train_s: float | None = None
    """Seconds in training phases (the run's ``spend.json``; None when it does not train or did not say)."""
    spend: str = ""
    """The run's spent-vs-quoted sentence (``spend.json``)."""
    source: str = ""
    """Where the figures come from: ``bakeoff``, ``bakeoff.jsonl``, ``predictions``, ``generations``, ``metrics``."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """The result's score per held-out example, by the user's ``file:line``."""

    @property
    def measured(self) -> bool:
        return self.status == "completed" and self.metric is not None and self.after is not None

    def figure(self) -> str:
        """``accuracy 0.87 [0.80, 0.93]`` (or why there is no figure)."""
        if not self.measured:
            return f"{self.status}: {self.message}" if self.message else self.status
        text = f"{self.metric_name or self.metric} {_fmt(self.after)}"
        if self.after_interval is not None:
            text += f" [{_fmt(self.after_interval[0])}, {_fmt(self.after_interval[1])}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("method", "status", "message", "metric", "metric_name",
                                             "higher_is_better", "before", "after", "verdict", "sentence",
                                             "examples", "wall_s", "train_s", "usd", "device", "spend",
                                             "source")}
        out["after_interval_95"] = list(self.after_interval) if self.after_interval else None
        out["difference_interval_95"] = list(self.difference_interval) if self.difference_interval else None
        out["example_ids"] = sorted(self.scores)
        return out


@dataclass(frozen=True)
class HeadToHead:
    """Two candidates' results on the held-out examples both evaluated (paired)."""

    first: str
    second: str
    metric: str
    examples: int
    verdict: str
    """``better``: ``second`` beats ``first``; ``worse``: ``first`` beats ``second``; ``not_better``: no clear winner."""
    sentence: str
    interval: tuple[float, float]

    @property
    def winner(self) -> str | None:
        return self.second if self.verdict == "better" else self.first if self.verdict == "worse" else None

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first, "second": self.second, "metric": self.metric, "examples": self.examples,
                "verdict": self.verdict, "winner": self.winner, "sentence": self.sentence,
                "interval_95": list(self.interval)}


@dataclass(frozen=True)
class PilotResult:
    """The whole pilot: candidates, sample, measurements, head-to-heads and the re-rank."""

    candidates: tuple[Candidate, ...]
    sample: PilotSample | None
    measurements: tuple[Measurement, ...]
    head_to_head: tuple[HeadToHead, ...]
    order_before: tuple[str, ...]
    order_after: tuple[str, ...]
    changes: tuple[str, ...]
    minutes: float
    wall_s: float
    out_dir: str
    cancelled: bool = False
    rule: str = RULE

    def measurement(self, method: str) -> Measurement | None:
        return next((m for m in self.measurements if m.method == method), None)

    def to_dict(self) -> dict[str, Any]:
        return {"candidates": [c.to_dict() for c in self.candidates],
                "sample": self.sample.to_dict() if self.sample else None,
                "measurements": [m.to_dict() for m in self.measurements],
                "head_to_head": [h.to_dict() for h in self.head_to_head],
                "order_before": list(self.order_before), "order_after": list(self.order_after),
                "changes": list(self.changes), "rule": self.rule, "minutes": self.minutes,
                "wall_s": round(self.wall_s, 2), "out_dir": self.out_dir, "cancelled": self.cancelled}


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    size = abs(value)
    return f"{value:.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"


# -- candidates ---------------------------------------------------------------------------------


def check_minutes(minutes: float) -> float:
    """``minutes`` as a float within (0, one week]; PilotError otherwise."""
    from tunewise.advisor.limits import Range

    try:
        return float(Range(0, MAX_MINUTES, above_low=True).check(minutes))
    except ValueError as exc:
        raise PilotError(f"--minutes {minutes!r}: {exc}") from None


def choose_candidates(ranking: Ranking, methods: Sequence[str] | None = None, count: int = 2
                      ) -> list[Recommendation]:
    """The methods to pilot: ``methods`` as named (each known and applicable), else the top ``count``
    runnable ones (no blockers, assessed without error)."""
    known = {r.method: r for r in ranking.recommendations}
    if methods:
        chosen = []
        for name in methods:
            if name not in known:
                raise PilotError(f"--methods: unknown method {name!r}; registered: {', '.join(sorted(known))}")
            rec = known[name]
            if rec.error:
                raise PilotError(f"--methods: {name} could not be assessed for these answers: {rec.error}")
            if rec.blockers:
                raise PilotError(f"--methods: {name} does not apply to these answers: {rec.blockers[0]}")
            if rec not in chosen:
                chosen.append(rec)
        if not chosen:
            raise PilotError("--methods: name at least one method")
        return sorted(chosen, key=lambda r: r.rank)  # "before" is the advisor's order, whatever order they were named in
    runnable = [r for r in ranking.recommendations if not r.blockers and not r.error]
    if not runnable:
        raise PilotError("no method applies to these answers without a blocker: nothing to pilot "
                         "(`tunewise recommend` says why for each)")
    return runnable[:count]


# -- the sample ---------------------------------------------------------------------------------


def _sample_rank(data: Mapping[str, Any]) -> str:
    from tunewise.methods._hf.split import row_key

    return hashlib.sha256(f"pilot-sample\x00{SEED}\x00{row_key(data)}".encode()).hexdigest()


def _prompt_answer(data: Mapping[str, Any], shape: str) -> tuple[str, str | None]:
    """The prompt text and reference answer of a supervised row (for RAG's corpus and questions)."""
    from tunewise.plugins.task_detection import reference_answer

    answer = reference_answer(data, shape)
    if shape == "instruction":
        prompt = "\n\n".join(str(data.get(k) or "").strip() for k in ("instruction", "input") if data.get(k))
    elif shape == "prompt_completion":
        prompt = str(data.get("prompt") or "")
    else:
        turns = [t for t in data.get("messages") or [] if isinstance(t, Mapping)]
        prompt = "\n".join(str(t.get("content", "")) for t in turns[:-1] if t.get("role") == "user")
    return prompt.strip(), answer


def draw_sample(data: str, folder: Path, *, rag: bool = False, max_rows: int = SAMPLE_MAX) -> PilotSample:
    """Write the pilot's sample of ``data`` into ``folder``: ``sample.jsonl`` (every sampled row),
    ``pool.jsonl`` (training rows) and ``held_out.jsonl``; with ``rag`` also ``corpus.jsonl`` (training
    rows as documents) and ``questions.jsonl`` (held-out rows as questions with their answers).

    The sample is the ``max_rows`` rows with the lowest seeded content hash (order kept); the held-out
    rows are the ones the training methods' own split picks with the pilot's seed and size.
    """
    from tunewise.methods._hf.split import row_key, split_indices
    from tunewise.plugins.data import load_dataset
    from tunewise.plugins.redaction import redact_data

    loaded = load_dataset(data)
    rows = list(loaded.rows)
    total = len(rows)
    if total > max_rows:
        keep = set(sorted(range(total), key=lambda i: (_sample_rank(rows[i].data), i))[:max_rows])
        rows = [r for i, r in enumerate(rows) if i in keep]
    n = len(rows)
    if n < 2:
        raise PilotError(f"{loaded.source}: {n} row(s): a pilot needs at least 2 (some to learn from, some to "
                         "evaluate on)")
    held_count = max(HELD_OUT_MIN, min(HELD_OUT_TARGET, math.floor(n * HELD_OUT_MAX_SHARE)))
    held_count = min(held_count, n - 1)
    # The split is made on the rows as written (secrets redacted, JSON round-tripped): exactly what the
    # training methods will read back and hash.
    records = [json.loads(json.dumps(redact_data(dict(r.data)), ensure_ascii=False)) for r in rows]
    keys = [row_key(record) for record in records]
    train_idx, held_idx = split_indices(keys, held_count / n, held_count, SEED)
    folder.mkdir(parents=True, exist_ok=True)
    lines: dict[str, tuple[str, ...]] = {}

    def write(name: str, records: Sequence[Mapping[str, Any]], origins: Sequence[str]) -> str:
        path = (folder / name).resolve()
        text = "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records)
        path.write_text(text, encoding="utf-8")
        lines[str(path)] = tuple(origins)
        return str(path)

    files = {
        "sample": write("sample.jsonl", records, [r.where for r in rows]),
        "pool": write("pool.jsonl", [records[i] for i in train_idx], [rows[i].where for i in train_idx]),
        "held_out": write("held_out.jsonl", [records[i] for i in held_idx], [rows[i].where for i in held_idx]),
    }
    task, metric, labels = "", "", ()
    if loaded.shape in SUPERVISED or loaded.shape in ("text", "documents", "preference"):
        from tunewise.plugins.task_detection import TaskDetectionError, detect_task

        try:
            detected = detect_task(rows, loaded.shape)
            task, metric, labels = detected.task, detected.main_metric, detected.labels
        except TaskDetectionError:
            pass
    if rag and loaded.shape in SUPERVISED:
        corpus, questions, origins = [], [], []
        for i in train_idx:
            prompt, answer = _prompt_answer(records[i], loaded.shape)
            corpus.append({"text": f"{prompt}\nAnswer: {answer or ''}"})
        for i in held_idx:
            prompt, answer = _prompt_answer(records[i], loaded.shape)
            # Every training row is a possible source: the question is answered well when the retrieved
            # rows carry its label (the RAG bake-off scores containment of the reference answer).
            questions.append({"question": prompt or "(empty)", "source": "corpus.jsonl", "answer": answer})
            origins.append(rows[i].where)
        files["corpus"] = write("corpus.jsonl", corpus, [rows[i].where for i in train_idx])
        files["questions"] = write("questions.jsonl", questions, origins)
    unit = {"classification": "held-out messages"}.get(task, "held-out examples")
    return PilotSample(str(loaded.source), loaded.shape, n, total, tuple(rows[i].where for i in train_idx),
                       tuple(rows[i].where for i in held_idx), files, lines, task, metric, unit, tuple(labels), held_count)


# -- plans --------------------------------------------------------------------------------------


def _answer_tokens(sample: PilotSample) -> int:
    """Generated tokens enough for the longest held-out answer (about 3 characters a token, + 8)."""
    longest = 0
    for line in Path(sample.files["held_out"]).read_text(encoding="utf-8").splitlines():
        from tunewise.plugins.task_detection import reference_answer

        answer = reference_answer(json.loads(line), sample.shape) or ""
        longest = max(longest, len(answer))
    return max(16, min(128, longest // 3 + 8))


def _steps(settings: Mapping[str, Any], rows: int) -> int:
    """Optimizer steps the sized settings run on ``rows`` training rows (an estimate when packing)."""
    if settings.get("max_steps"):
        return int(settings["max_steps"])
    per = max(1, int(settings.get("batch_size") or 4)) * max(1, int(settings.get("grad_accum") or 1))
    return max(1, int(settings.get("epochs") or 1) * math.ceil(max(1, rows) / per))


def write_plan(candidate: Candidate, profile: Profile, sample: PilotSample, out: Path, *,
               model: str | None, minutes: float) -> Candidate:
    """Write ``candidate``'s pilot plan into ``out`` (``<method>.plan.yaml``, run folder ``<method>/``).

    Settings come from :func:`~tunewise.advisor.plan_sizing.size_for` on the sample's audit, like
    ``tunewise plan``; then the pilot fixes the held-out split, caps the steps to its minutes and
    gives each method the shared sample files. Returns the candidate with its plan, run folder and notes.
    """
    from tunewise.advisor.audit import audit
    from tunewise.advisor.plan_sizing import TRAINED_METHODS, size_for
    from tunewise.advisor.plans import parse_plan
    from tunewise.advisor.tui.config_form import (
        TRAINING_PREFIX,
        plan_document,
        plan_sections,
        plan_yaml,
        with_defaults,
    )
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.redaction import redact

    method = candidate.method
    cls = get_host().methods.get(method)
    config_class = getattr(cls, "config_class", None)
    run_dir = (out / method).resolve()
    notes: list[str] = []
    held = len(sample.held_ids)
    data = sample.files["sample"]
    config: dict[str, Any] = {}
    training: dict[str, Any] = {}
    if method == "in_context":
        data = sample.files["pool"]
        config = {"eval_data": sample.files["held_out"], "max_eval": held, "compare_selections": False}
        notes.append("one selection strategy (compare_selections off) to fit the budget")
    elif method == "rag":
        if "corpus" in sample.files:
            data = sample.files["corpus"]
            config = {"questions": sample.files["questions"], "answer_questions": held}
            notes.append("the training rows are the corpus, the held-out rows the questions")
        else:
            data = sample.source
            notes.append("no question file: retrieval only, no answers to compare")
    sized_settings: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    if method in TRAINED_METHODS or getattr(config_class, "training_settings", None) is not None:
        report = audit(sample.files["sample"], model=model or profile.model.name)
        sized = size_for(method, profile, report, model=model, hardware="cpu")
        sized_settings, reasons = dict(sized.settings), dict(sized.reasons)
        steps = _steps(sized_settings, len(sample.train_ids))
        share_h = minutes * TRAIN_SHARE / 60
        if sized.estimated_hours and sized.estimated_hours > share_h:
            fitting = max(1, int(steps * share_h / sized.estimated_hours))
            if fitting < steps:
                training["max_steps"] = fitting
                why = (f"{fitting} of the {steps} sized steps, to train within {minutes * TRAIN_SHARE:.1f} of its "
                       f"{minutes:.1f} minutes (by the quote for this machine)")
                notes.append(why)
                reasons["max_steps"] = why
                from tunewise.advisor.hardware import find_hardware

                if method not in (find_hardware("cpu").calibration or {}):
                    notes.append(f"quotes for {method} on this machine are not calibrated: `tunewise probe --method {method}` "
                                 "measures a few real steps, and a later pilot fits its steps to them")
        asked = sample.held_count or held
        training.update({"seed": SEED, "eval_fraction": asked / sample.rows, "eval_max_examples": asked,
                         "generation_examples": None, "max_new_tokens": _answer_tokens(sample),
                         "max_hours": round(minutes * OVERRUN / 60, 4), "save_steps": 10**6})
        reasons.update({"max_hours": f"the run's own guard: {OVERRUN:g}x the pilot's {minutes:.1f} minutes for this "
                                     f"candidate (at {FINISH_AT:.0%} of them the pilot stops training at a "
                                     "checkpoint and evaluates it)",
                        "eval_fraction": f"the pilot's shared held-out split: {held} of {sample.rows} rows"})
    sections = plan_sections(method, config_class, model=model or profile.model.name, data=data,
                             output_dir=str(run_dir))
    defaults = {TRAINING_PREFIX + k: v for k, v in {**sized_settings, **training}.items()}
    defaults.update({f"config.{k}": v for k, v in config.items()})
    sections = with_defaults(sections, defaults)
    values = {q.id: q.default for s in sections for q in s.questions}
    document, errors = plan_document(method, sections, values)
    if errors:
        where, message = next(iter(errors.items()))
        raise PilotError(f"{method}: the pilot plan is invalid: {where}: {message}")
    plan_path = out / f"{method}.plan.yaml"
    text = plan_yaml(document, sections, f"tunewise run {plan_path}", writer="`tunewise pilot`",
                     reasons={TRAINING_PREFIX + k: v for k, v in reasons.items()})
    parse_plan(text, source=str(plan_path), base_dir=out.resolve())
    plan_path.write_text(redact(text), encoding="utf-8")
    return replace(candidate, plan_path=str(plan_path), run_dir=str(run_dir), minutes=minutes, notes=tuple(notes),
                   plan_text=redact(text), trains=bool(training))


# -- running ------------------------------------------------------------------------------------


def _read_events(path: Path) -> list[dict[str, Any]]:
    from tunewise.plugins.events import parse_event_line

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [e for e in (parse_event_line(line) for line in text.split("\n")[:-1]) if e is not None]


def run_candidate(candidate: Candidate, out: Path, *, cancel: threading.Event | None = None,
                  progress: Progress | None = None, index: int = 1, count: int = 1,
                  deadline: float | None = None) -> dict[str, Any]:
    """Run the candidate's plan as ``tunewise run`` in a subprocess; its ``end`` event (or what happened).

    A training run still training at :data:`FINISH_AT` of its minutes is asked to stop (SIGTERM: it
    checkpoints and ends ``cancelled``) and is then resumed from that checkpoint with ``--max-steps``
    at the checkpoint's step, so it trains no further but evaluates its result: the pilot measures
    what fits in its time instead of nothing. The run is stopped for good (SIGTERM, then SIGKILL) when
    ``cancel`` is set or it overruns (:data:`OVERRUN` x minutes + :data:`GRACE_S`, and never past the
    whole pilot's ``deadline``, a ``time.monotonic()`` value). Returns
    ``{"status", "result", "wall_s", "device", "message", "finished_early_at"}``.
    """
    events_path = out / f"{candidate.method}.events.jsonl"
    log_path = out / f"{candidate.method}.log"
    argv = [sys.executable, "-m", "tunewise.advisor.cli", "run", candidate.plan_path, "--out", candidate.run_dir,
            "--events", "-", "--quiet", "--allow-outside-paths"]
    started = time.monotonic()
    limit = candidate.minutes * 60 * OVERRUN + GRACE_S
    if deadline is not None:
        limit = max(0.0, min(limit, deadline - started))
    # Leave time to evaluate: stop training at FINISH_AT of the minutes, and early enough in a cut-short limit.
    finish_at = min(candidate.minutes * 60 * FINISH_AT, limit * FINISH_AT / OVERRUN) if candidate.trains else None
    finished_early_at: int | None = None
    stopped_why = ""
    for attempt in range(2):
        with open(events_path, "ab" if attempt else "wb") as stdout, open(log_path, "ab") as stderr:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                       start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            stopped_why = _follow(process, candidate, events_path, started, limit, cancel, progress, index, count,
                                  finish_at=None if attempt else finish_at)
        finally:  # Ctrl-C or an error here must not leave the run going in its own session
            if process.poll() is None:
                _stop(process)
        process.wait()
        if stopped_why != FINISH:
            break
        checkpoints = [e for e in _read_events(events_path) if e.get("event") == "checkpoint"]
        if not checkpoints:
            stopped_why = "over its time share before its first checkpoint"
            break
        finished_early_at = int(checkpoints[-1].get("step") or 0)
        # Resume at the checkpoint with no steps left: training ends there, evaluation and the bake-off run.
        argv = [*argv, "--resume", "--force", "--max-steps", str(max(1, finished_early_at))]
        stopped_why = ""
    wall = time.monotonic() - started
    events = _read_events(events_path)
    start = next((e for e in events if e.get("event") == "start"), {})
    end = next((e for e in reversed(events) if e.get("event") == "end"), None)
    errors = [str(e.get("message")) for e in events if e.get("event") == "error"]
    result = end.get("result") if end and isinstance(end.get("result"), dict) else {}
    status = str(end.get("status")) if end else "failed"
    message = str(result.get("message") or "") or (errors[-1] if errors else "")
    if stopped_why:
        status = "cancelled"
        message = f"stopped: {stopped_why}"
    elif end is None:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] \
            if log_path.exists() else []
        message = f"the run ended without a result (exit code {process.returncode})" + (
            f": {tail[0][:300]}" if tail else "")
    return {"status": status, "result": result, "wall_s": wall, "device": str(start.get("device") or ""),
            "message": message, "finished_early_at": finished_early_at,
            "total_steps": int(start.get("total_steps") or 0)}


FINISH = "finish"


def _follow(process: subprocess.Popen[bytes], candidate: Candidate, events_path: Path, started: float,
            limit: float, cancel: threading.Event | None, progress: Progress | None, index: int, count: int, *,
            finish_at: float | None = None) -> str:
    """Wait for the run, reporting its progress; stop it when cancelled or over ``limit`` s (returns why),
    or, once ``finish_at`` s have passed while it trains, ask it to checkpoint and end (returns :data:`FINISH`)."""
    stopped_why = ""
    seen = 0
    start: dict[str, Any] = {}
    training = False
    while process.poll() is None:
        if cancel is not None and cancel.wait(0.25):
            stopped_why = "cancelled"
        elif cancel is None:
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        if not stopped_why and elapsed > limit:
            stopped_why = (f"over its time share ({candidate.minutes:.1f} min × {OVERRUN:g} + {GRACE_S:.0f} s, "
                           f"within the pilot's whole budget): {limit:.0f} s")
        events = _read_events(events_path)
        for event in events[seen:]:
            kind = event.get("event")
            if kind == "start":
                start = event
            elif kind == "progress":
                training = True
            elif kind == "phase" and str(event.get("phase", "")).startswith(("evaluating after", "saving")):
                training = False
            if progress is not None and kind in ("start", "progress", "phase"):
                done = event.get("done") if kind == "phase" else event.get("step")
                total = event.get("total") if kind == "phase" else event.get("total_steps") or start.get("total_steps")
                progress(PilotProgress("running", candidate.method, index, count, _whole(done), _whole(total),
                                       str(event.get("phase") or "")))
        seen = len(events)
        if stopped_why:
            _stop(process)
            break
        if finish_at is not None and training and elapsed > finish_at:
            # The loop checkpoints at its next step and ends "cancelled"; the caller resumes it to evaluate.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=max(30.0, limit - elapsed))
            except subprocess.TimeoutExpired:
                _stop(process)
                return "it did not stop at its checkpoint in time"
            return FINISH
    return stopped_why


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the run's process group (the run checkpoints and ends), SIGKILL it if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


# -- measuring ----------------------------------------------------------------------------------


def _mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """Seeded percentile-bootstrap 95% interval of the mean (None for fewer than 2 values)."""
    if len(values) < 2:
        return None
    rng = random.Random(SEED)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(RESAMPLES))
    return means[int(0.025 * (RESAMPLES - 1))], means[math.ceil(0.975 * (RESAMPLES - 1))]


def _per_example(run_dir: Path, sample: PilotSample, method: str) -> tuple[str, dict[str, float], dict[str, float]]:
    """(metric, result scores, base scores) by the user's ``file:line``, from the run's files.

    ``bakeoff.jsonl`` when the run wrote one; before it, in-context ``predictions.jsonl`` (accuracy of
    the chosen strategy vs zero-shot) and training ``generations.jsonl`` (accuracy or exact match).
    """
    from tunewise.plugins.task_detection import normalise_label

    bake = run_dir / "bakeoff.jsonl"
    if bake.exists():
        lines = [json.loads(line) for line in bake.read_text(encoding="utf-8").splitlines() if line.strip()]
        header = lines[0].get("bakeoff", {}) if lines else {}
        result = {sample.original(str(r["id"])): float(r["result_score"]) for r in lines[1:] if "id" in r}
        base = {sample.original(str(r["id"])): float(r["base_score"]) for r in lines[1:] if "id" in r}
        return str(header.get("metric") or ""), result, base
    metric = "accuracy" if sample.task == "classification" else "exact_match"

    def score(answer: str, reference: str) -> float:
        return float(normalise_label(answer) == normalise_label(reference))

    predictions = run_dir / "predictions.jsonl"
    if predictions.exists():
        result, base = {}, {}
        for line in predictions.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            key = sample.original(str(row.get("where")))
            value = score(str(row.get("prediction") or ""), str(row.get("reference") or ""))
            (base if row.get("condition") == "zero-shot" else result)[key] = value
        return metric, result, base
    generations = run_dir / "generations.jsonl"
    if generations.exists():
        result, base = {}, {}
        for line in generations.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            key = sample.original(str(row.get("where")))
            reference = str(row.get("reference") or "")
            result[key] = score(str(row.get("after") or ""), reference)
            base[key] = score(str(row.get("before") or ""), reference)
        return metric, result, base
    return "", {}, {}


def measure(candidate: Candidate, outcome: Mapping[str, Any], sample: PilotSample, *,
            usd_per_hour: float = 0.0) -> Measurement:
    """What ``candidate``'s run measured: its bake-off when it reported one, else its per-example files."""
    from tunewise.advisor.spend import read_spend
    from tunewise.plugins.bakeoff import BakeOffError, bake_off, metric_spec

    status = str(outcome.get("status") or "failed")
    wall = float(outcome.get("wall_s") or 0.0)
    usd = round(wall / 3600 * usd_per_hour, 4)
    train_s, spend_sentence = None, ""
    # What the run itself says it spent (advisor/spend.py: sessions summed, resumes included) is the one
    # definition the Results screen uses too; the pilot's own clock is the fallback.
    spend = (read_spend(Path(candidate.run_dir)) or {}) if candidate.run_dir else {}
    spent = spend.get("spent") if isinstance(spend.get("spent"), Mapping) else None
    if spent is not None:
        wall = float(_number(spent.get("wall_s")) or wall)
        train_s = _number(spent.get("train_s"))
        high = _number(spent.get("usd_high"))
        usd = round(high, 4) if high is not None else usd
        spend_sentence = str(spend.get("sentence") or "")
    base = Measurement(candidate.method, status, str(outcome.get("message") or ""), wall_s=wall, usd=usd,
                       device=str(outcome.get("device") or ""), train_s=train_s, spend=spend_sentence)
    if status != "completed":
        return base
    result = outcome.get("result") or {}
    run_dir = Path(candidate.run_dir)
    metric, scores, base_scores = _per_example(run_dir, sample, candidate.method)
    bake = result.get("bakeoff") if isinstance(result.get("bakeoff"), Mapping) else None
    if bake is None:
        metrics_json = run_dir / "metrics.json"
        try:
            saved = json.loads(metrics_json.read_text(encoding="utf-8")) if metrics_json.exists() else {}
        except ValueError:
            saved = {}
        bake = saved.get("bakeoff") if isinstance(saved.get("bakeoff"), Mapping) else None
    if bake is not None:
        key = str(bake.get("metric"))
        spec = metric_spec(key, bool(bake.get("higher_is_better", True)))
        interval = bake.get("interval_95")
        after_values = [scores[k] for k in sorted(scores)] if metric == key else []
        return replace(base, metric=key, metric_name=spec.name, higher_is_better=spec.higher_is_better,
                       before=_number((bake.get("before") or {}).get(key)),
                       after=_number((bake.get("after") or {}).get(key)),
                       after_interval=_mean_interval(after_values) if spec.kind == "mean" else None,
                       difference_interval=(float(interval[0]), float(interval[1]))
                       if isinstance(interval, list) and len(interval) == 2 else None,
                       verdict=str(bake.get("verdict")) if bake.get("verdict") else None,
                       sentence=str(bake.get("sentence") or ""), examples=int(bake.get("examples") or len(scores)),
                       source="bakeoff", scores=dict(scores) if metric == key else {})
    if metric and scores:
        spec = metric_spec(metric)
        values = [scores[k] for k in sorted(scores)]
        verdict, sentence, interval = None, "", None
        common = sorted(set(scores) & set(base_scores))
        if common:
            try:
                own = bake_off({k: base_scores[k] for k in common}, {k: scores[k] for k in common}, metric,
                               method=candidate.title, unit=sample.unit)
                verdict, sentence, interval = own.verdict, own.sentence, own.interval
            except BakeOffError:
                pass
        return replace(base, metric=metric, metric_name=spec.name, higher_is_better=spec.higher_is_better,
                       before=sum(base_scores[k] for k in common) / len(common) if common else None,
                       after=sum(values) / len(values), after_interval=_mean_interval(values),
                       difference_interval=interval, verdict=verdict, sentence=sentence, examples=len(values),
                       source="per-example files", scores=dict(scores))
    after = result.get("metrics_after") or {}
    for key in ("accuracy", "exact_match", "rouge_l", "containment", "citation_rate", "win_rate", "perplexity"):
        if isinstance(after.get(key), (int, float)):
            spec = metric_spec(key)
            before = (result.get("metrics_before") or {}).get(key)
            return replace(base, metric=key, metric_name=spec.name, higher_is_better=spec.higher_is_better,
                           before=_number(before), after=float(after[key]), source="metrics_after")
    return replace(base, message=(base.message + "; " if base.message else "") + "the run reported no metric "
                   "the pilot can compare")


def _coverage(m: Measurement, sample: PilotSample) -> str:
    """A note when a measured run did not evaluate exactly the shared held-out rows ('' when it did)."""
    if not m.measured:
        return ""
    if not m.scores:
        return "no per-example scores: it cannot be compared head-to-head, only by its own bake-off"
    held = set(sample.held_ids)
    got = {key.split("#")[0] for key in m.scores}
    if got == held:
        return ""
    note = f"evaluated {len(got & held)} of the {len(held)} shared held-out rows"
    return note + (f" and {len(got - held)} others (its own split)" if got - held else
                   " (the rest were dropped by the run, e.g. too long for seq_len)")


def _whole(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# -- re-ranking ---------------------------------------------------------------------------------


def head_to_heads(measurements: Sequence[Measurement], titles: Mapping[str, str], unit: str) -> list[HeadToHead]:
    """Paired comparisons of every two measured candidates on the same metric and held-out examples."""
    from tunewise.plugins.bakeoff import BakeOffError, bake_off

    out = []
    measured = [m for m in measurements if m.measured and m.scores]
    for i, first in enumerate(measured):
        for second in measured[i + 1:]:
            if first.metric != second.metric:
                continue
            common = sorted(set(first.scores) & set(second.scores))
            if not common:
                continue
            try:
                bake = bake_off({k: first.scores[k] for k in common}, {k: second.scores[k] for k in common},
                                str(first.metric), higher_is_better=first.higher_is_better,
                                method=titles.get(second.method, second.method), unit=unit)
            except BakeOffError:
                continue
            sentence = bake.sentence.replace("the base", titles.get(first.method, first.method))
            out.append(HeadToHead(first.method, second.method, str(first.metric), len(common), bake.verdict,
                                  sentence, bake.interval))
    return out


VERDICT_ORDER = {"better": 0, None: 1, "not_better": 1, "worse": 2}


def rerank(order: Sequence[str], measurements: Mapping[str, Measurement], duels: Sequence[HeadToHead],
           main_metric: str = "") -> list[str]:
    """``order`` (the advisor's) re-ranked by :data:`RULE` (``main_metric``: the data's; '' = any)."""
    def key(method: str) -> tuple[int, int, int, int]:
        m = measurements.get(method)
        measured = 0 if m is not None and m.measured else 1
        verdict = VERDICT_ORDER.get(m.verdict if m is not None else None, 1)
        if measured or (main_metric and m is not None and m.metric != main_metric):
            verdict = 1
        wins = sum(1 for d in duels if d.winner == method)
        losses = sum(1 for d in duels if d.winner is not None and d.winner != method and method in (d.first, d.second))
        return measured, losses - wins, verdict, order.index(method)

    return sorted(order, key=key)


def explain(before: Sequence[str], after: Sequence[str], measurements: Mapping[str, Measurement],
            duels: Sequence[HeadToHead], titles: Mapping[str, str], unit: str, main_metric: str = "") -> list[str]:
    """Sentences on what changed in the order and why, most important first: the order, the head-to-heads,
    other moves, metrics that cannot be compared, then each candidate's own bake-off (or failure)."""
    lines = []

    def name(method: str) -> str:
        return titles.get(method, method)

    def move(method: str) -> str:
        old, new = before.index(method), after.index(method)
        return f"moves {'up' if new < old else 'down'} to {_ordinal(new + 1)} (was {_ordinal(old + 1)})"

    if list(before) == list(after):
        lines.append("the advisor's order stands: the evidence does not contradict it")
    announced: set[str] = set()
    for duel in duels:
        a, b = measurements[duel.first], measurements[duel.second]
        line = f"{name(b.method)} measured {b.figure()} vs {name(a.method)} {a.figure()} on the same " \
               f"{duel.examples} {unit}"
        if duel.winner is None:
            line += f": no clear winner (difference interval [{_fmt(duel.interval[0])}, {_fmt(duel.interval[1])}] " \
                    "includes 0 or the sign test disagrees)"
        else:
            line += f": {name(duel.winner)} wins the head-to-head"
            if before.index(duel.winner) != after.index(duel.winner):
                line += f" and {move(duel.winner)}"
                announced.add(duel.winner)
        lines.append(line)
    for method in after:
        if before.index(method) != after.index(method) and method not in announced:
            lines.append(f"{name(method)} {move(method)}" + _why(method, measurements, duels, name))
    measured = [m for m in measurements.values() if m.measured]
    if len({m.metric for m in measured}) > 1:
        lines.append("not comparable on one metric: " + ", ".join(f"{name(m.method)} reports {m.metric_name}"
                                                                  for m in measured)
                     + "; each is judged by its own bake-off against its base")
    for m in measured:
        if main_metric and m.metric != main_metric:
            lines.append(f"{name(m.method)} measured {m.metric_name}, not the data's {main_metric.replace('_', ' ')}"
                         ": shown, not used to re-rank")
    for m in measurements.values():
        if m.verdict and m.sentence:
            lines.append(m.sentence)
        elif not m.measured:
            lines.append(f"{name(m.method)}: {m.figure()}")
    return lines


def _why(method: str, measurements: Mapping[str, Measurement], duels: Sequence[HeadToHead],
         name: Callable[[str], str]) -> str:
    m = measurements.get(method)
    if m is None or not m.measured:
        return f": its pilot {m.status.replace('_', ' ') if m else 'did not run'}"
    won = [d for d in duels if d.winner == method]
    lost = [d for d in duels if d.winner is not None and d.winner != method and method in (d.first, d.second)]
    if won:
        other = won[0].first if won[0].second == method else won[0].second
        return f": it beat {name(other)} on the held-out examples"
    if lost:
        return f": {name(lost[0].winner or '')} beat it on the held-out examples"
    return f": its own bake-off says {m.verdict or 'nothing'}"


def _ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(n, f"{n}th")


# -- the pilot ----------------------------------------------------------------------------------


def run_pilot(profile: Profile, ranking: Ranking, *, methods: Sequence[str] | None = None,
              minutes: float = DEFAULT_MINUTES, out: Path, model: str | None = None,
              data: str | None = None, progress: Progress | None = None,
              cancel: threading.Event | None = None) -> PilotResult:
    """Pilot ``methods`` (default: the top two runnable) for ``minutes`` in all on a sample of the data."""
    from tunewise.advisor.hardware import find_hardware

    started = time.monotonic()
    minutes = check_minutes(minutes)
    chosen = choose_candidates(ranking, methods)
    data = data or profile.data.path
    if not data:
        raise PilotError("no data to pilot on: set data.path in the answers (or pass --data PATH)")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PilotError(f"--out {out}: already exists and is not an empty folder; choose a new one")
    out.mkdir(parents=True, exist_ok=True)

    def tell(update: PilotProgress) -> None:
        if progress is not None:
            progress(update)

    tell(PilotProgress("sampling the data", message=str(data)))
    sample = draw_sample(str(data), out / "sample", rag=any(r.method == "rag" for r in chosen))
    candidates: list[Candidate] = []
    measurements: list[Measurement] = []
    price = find_hardware("cpu").usd_per_hour_high
    cancelled = False
    deadline = started + minutes * 60 * OVERRUN + GRACE_S  # no candidate runs past it, whatever its share
    for index, rec in enumerate(chosen, start=1):
        quote = rec.quote.to_dict() if rec.quote is not None else None
        candidate = Candidate(rec.method, rec.title, rec.rank, rec.score, quote)
        if cancel is not None and cancel.is_set():
            cancelled = True
            candidates.append(candidate)
            measurements.append(Measurement(rec.method, "not_run", "the pilot was cancelled first"))
            continue
        # Time a candidate left unused goes to the ones after it; each keeps at least a quarter of an even share.
        spent = (time.monotonic() - started) / 60
        share = max((minutes - spent) / (len(chosen) - index + 1), minutes / len(chosen) / 4)
        if time.monotonic() >= deadline:
            candidates.append(candidate)
            measurements.append(Measurement(rec.method, "not_run", f"the pilot's {minutes:g} minutes "
                                            f"(× {OVERRUN:g} + {GRACE_S:.0f} s) were spent before its turn"))
            continue
        tell(PilotProgress("writing its plan", rec.method, index, len(chosen)))
        accepted = COMPARABLE_SHAPES.get(rec.method)
        try:
            candidate = write_plan(candidate, profile, sample, out, model=model, minutes=share)
        except TunewiseError as exc:
            candidates.append(candidate)
            measurements.append(Measurement(rec.method, "failed", f"its pilot plan could not be written: {exc}"))
            continue
        if accepted is not None and sample.shape not in accepted:
            candidate = replace(candidate, notes=(*candidate.notes, f"{sample.shape} rows: it cannot evaluate on "
                                                  "the shared held-out rows"))
        candidates.append(candidate)
        tell(PilotProgress("running", rec.method, index, len(chosen)))
        outcome = run_candidate(candidate, out, cancel=cancel, progress=progress, index=index, count=len(chosen),
                                deadline=deadline)
        if cancel is not None and cancel.is_set():
            cancelled = True
        tell(PilotProgress("measuring", rec.method, index, len(chosen)))
        hourly = price if not str(outcome.get("device", "")).startswith("cuda") else \
            find_hardware(profile.hardware.gpu).usd_per_hour_high
        if outcome.get("finished_early_at") is not None:
            candidate = replace(candidate, notes=(*candidate.notes, (
                f"trained {outcome['finished_early_at']} of {outcome.get('total_steps') or '?'} steps: stopped at "
                f"{FINISH_AT:.0%} of its {share:.1f} minutes and evaluated from that checkpoint")))
            candidates[-1] = candidate
        measured = measure(candidate, outcome, sample, usd_per_hour=hourly)
        measurements.append(measured)
        coverage = _coverage(measured, sample)
        if coverage:
            candidates[-1] = replace(candidate, notes=(*candidate.notes, coverage))
    titles = {c.method: c.title for c in candidates}
    by_method = {m.method: m for m in measurements}
    before = [c.method for c in candidates]
    duels = head_to_heads(measurements, titles, sample.unit)
    if cancelled:
        after = list(before)
        changes = ["the pilot was cancelled: the advisor's order stands",
                   *(f"{titles[m.method]}: {m.figure()}" for m in measurements)]
    else:
        after = rerank(before, by_method, duels, sample.main_metric)
        changes = explain(before, after, by_method, duels, titles, sample.unit, sample.main_metric)
    result = PilotResult(tuple(candidates), sample, tuple(measurements), tuple(duels), tuple(before), tuple(after),
                         tuple(changes), minutes, time.monotonic() - started, str(out.resolve()), cancelled)
    (out / "pilot.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    tell(PilotProgress("done", message="cancelled" if cancelled else "finished"))
    return result


def default_out(workdir: Path) -> Path:
    """``runs/pilot-<UTC time>`` under ``workdir`` (``-2``, ``-3`` … when taken: a new folder for every pilot)."""
    base = workdir / "runs" / ("pilot-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate
