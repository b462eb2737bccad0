"""One training run end to end: data, preflight, resume, evaluate, train, evaluate, save, report.

The three built-in training methods differ only in a :class:`MethodSpec` (which data shapes they
take, how the model is wrapped and saved); :func:`run_training` does the rest in this order:

1. settings and method config checked; data read and validated (a bad row stops here, before any
   model loads); tokenizer loaded; rows encoded, split and packed;
2. device and precision resolved; memory preflight; checkpoint folder checked (``--resume`` /
   ``--force``) with the identity of model, tokenizer, data and settings;
3. model loaded and prepared; held-out evaluation before (skipped on resume: the checkpoint has it):
   the held-out loss and, per held-out example, the base's greedy answer or its token losses;
4. the training loop; then the same evaluation after, the bake-off of the two
   (:mod:`~tunewise.methods._hf.bakeoff_run`), saved weights, model card, plots, ``metrics.json``,
   ``bakeoff.jsonl`` and ``report.md`` (the bake-off first).

Guardrails (:mod:`~tunewise.methods._hf.guardrails`) end a run early but cleanly: a budget
(``max_hours`` / ``max_usd``) or too little disk for the next checkpoint gives status ``stopped``
(resumable; earlier checkpoints intact), weights that are not finite or running out of memory give
``failed`` with the last good checkpoint named and what to change.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.methods._hf.bakeoff_run import (
    EXTRA_KEY,
    Side,
    compare,
    evaluate_side,
    generation_ids,
    no_bakeoff_reason,
    run_facts,
)
from tunewise.methods._hf.batches import PackedBatches, eval_batches
from tunewise.methods._hf.checkpoint import CheckpointStore
from tunewise.methods._hf.device import (
    Placement,
    device_description,
    peak_memory_gb,
    resolve_placement,
)
from tunewise.methods._hf.encoding import (
    SUPERVISED_SHAPES,
    EncodeReport,
    Example,
    document_text,
    encode_documents,
    encode_supervised,
)
from tunewise.methods._hf.guardrails import (
    BUDGET_KEY,
    Budget,
    BudgetedEvents,
    DiskSpaceError,
    NonFiniteWeightsError,
    check_disk_room,
    is_out_of_memory,
    oom_advice,
    refuse_non_finite,
)
from tunewise.methods._hf.identity import identity_differences, run_identity
from tunewise.methods._hf.packing import Packed, one_per_sequence, pack_documents, pack_examples
from tunewise.methods._hf.settings import TrainingSettings
from tunewise.methods._hf.split import row_key, split_indices
from tunewise.plugins.bakeoff import BakeOff, BakeOffError, RunFacts, merge_metrics
from tunewise.plugins.bakeoff_report import ExampleOutcome, bakeoff_markdown, write_bakeoff
from tunewise.plugins.data import DataError, Row, load_dataset
from tunewise.plugins.errors import MethodNotRunnable, TunewiseError
from tunewise.plugins.redaction import redact_data
from tunewise.plugins.task_detection import DetectedTask, TaskDetectionError, detect_task
from tunewise.plugins.types import EventSink, Plan, RunResult

DOCUMENT_SPLIT_MIN = 10
HELD_TEXT_CHARS = 300
"""Characters of each held-out document kept as the bake-off's evidence (the whole text is in the data)."""
"""With fewer documents than this the held-out split is taken from packed sequences instead."""
RUN_FILE = "run.json"


class PlanSettingsError(TunewiseError):
    """A plan's training settings or method config hold bad values."""


class ResumeError(TunewiseError):
    """A checkpoint cannot be resumed (or would be overwritten) as asked."""


@dataclass
class MethodSpec:
    """How one training method differs from the others."""

    id: str
    title: str
    shapes: tuple[str, ...]
    default_learning_rate: float
    kind: str
    """``full`` (every weight trains) or ``lora`` (adapters on a frozen base), for the memory estimate."""
    config: Any
    """The method's config dataclass instance (its fields go into the identity and the report)."""
    save: Callable[[Any, Any, Path], dict[str, str]]
    """``save(model, tokenizer, out_dir) -> {artifact name: path}``; the first entry gets the model card."""
    prepare: Callable[[Any, Placement, TrainingSettings], Any] | None = None
    """Wrap or freeze the loaded model (LoRA adapters); returns the model to train."""
    loss_on: str = "assistant"
    cross_document_attention: bool = False
    frozen_base: bool = False
    quantize_4bit: bool = False
    lora_rank: int = 8
    library: str = "transformers"
    card_tags: tuple[str, ...] = ()
    base_model_for_card: str = ""
    lr_range: tuple[float, float] | None = None
    """The method's usual learning rates (low, high): a rate outside them is named when a run is not better."""


@dataclass
class Corpus:
    """The encoded data: packed training and held-out sequences, plus prompts for generation."""

    shape: str
    files: list[str]
    train: list[Packed]
    held_out: list[Packed]
    generation: list[Example]
    counts: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    task: DetectedTask | None = None
    """What the held-out answers are scored by (classification, free text or language modelling)."""
    held_sequence_ids: list[str] | None = None
    """Ids of the held-out sequences when the split is made of packed sequences (few documents);
    None: held-out losses are counted per document."""
    held_texts: dict[str, str] = field(default_factory=dict)
    """The start of each held-out document (or sequence), for the bake-off's evidence."""
    truncated: int = 0
    """Training examples cut by ``seq_len``."""
    train_units: int = 0
    """Training examples (supervised) or documents / sequences (raw text)."""


def training_settings(values: Mapping[str, Any]) -> TrainingSettings:
    """The plan's ``training`` mapping as checked settings."""
    names = {f.name for f in dataclasses.fields(TrainingSettings)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise PlanSettingsError(f"unknown training setting(s): {', '.join(unknown)}")
    data = dict(values)
    if isinstance(data.get("report_to"), (list, str)):
        rt = data["report_to"]
        data["report_to"] = (rt,) if isinstance(rt, str) else tuple(rt)
    settings = TrainingSettings(**data)
    problems = settings.problems()
    if problems:
        raise PlanSettingsError("bad training settings: " + "; ".join(f"training.{k}: {m}" for k, m in problems))
    return settings


def method_config(config_class: type, values: Mapping[str, Any]) -> Any:
    """The plan's ``config`` mapping as the method's config dataclass (checked when it can say so)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise PlanSettingsError(f"unknown config field(s) for this method: {', '.join(unknown)}")
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    config = config_class(**data)
    problems = config.problems() if hasattr(config, "problems") else []
    if problems:
        raise PlanSettingsError("bad method config: " + "; ".join(f"config.{k}: {m}" for k, m in problems))
    return config


# -- data ------------------------------------------------------------------------------------------


def load_plan_data(paths: Sequence[str], shapes: Sequence[str]) -> tuple[str, list[Row], list[str]]:
    """Read and validate every data source; all must have one shape the method accepts."""
    if not paths:
        raise DataError("the plan names no data (data: path/to/file.jsonl)")
    shape: str | None = None
    rows: list[Row] = []
    files: list[str] = []
    for path in paths:
        loaded = load_dataset(path, expect=shapes)
        if shape is not None and loaded.shape != shape:
            raise DataError(f"{path}: rows have shape {loaded.shape!r} but {paths[0]} has {shape!r}; "
                            "one run trains on one shape")
        shape = loaded.shape
        rows.extend(loaded.rows)
        files.extend(loaded.files)
    assert shape is not None
    return shape, rows, files


def _pack(examples: Sequence[Example], settings: TrainingSettings) -> list[Packed]:
    return pack_examples(examples, settings.seq_len) if settings.packing else one_per_sequence(examples)


def _generation_set(examples: Sequence[Example], tokenizer: Any, settings: TrainingSettings) -> list[Example]:
    chosen = [e for e in examples if e.prompt_ids is not None and e.reference is not None]
    return chosen[: settings.generation_examples]


def build_corpus(shape: str, rows: Sequence[Row], files: Sequence[str], tokenizer: Any,
                 settings: TrainingSettings, spec: MethodSpec) -> Corpus:
    """Split rows into training and held-out parts, encode and pack them."""
    notes: list[str] = []
    counts: dict[str, Any] = {"rows": len(rows)}
    try:
        task: DetectedTask | None = detect_task(rows, shape)
    except TaskDetectionError:
        task = None  # scored as free text
    held_sequence_ids: list[str] | None = None
    held_texts: dict[str, str] = {}
    truncated = 0
    if shape in SUPERVISED_SHAPES:
        keys = [row_key(r.data) for r in rows]
        train_idx, held_idx = split_indices(keys, settings.eval_fraction, settings.eval_max_examples, settings.seed)
        train_ex, train_rep = encode_supervised([rows[i] for i in train_idx], shape, tokenizer, settings.seq_len,
                                                spec.loss_on)
        held_ex, held_rep = encode_supervised([rows[i] for i in held_idx], shape, tokenizer, settings.seq_len,
                                              spec.loss_on)
        _note_encoding(train_rep, held_rep, settings, notes)
        if not train_ex:
            raise DataError(f"{files[0]}: no training example has an answer token left (see the notes above)")
        train, held = _pack(train_ex, settings), _pack(held_ex, settings)
        counts.update(train_examples=len(train_ex), held_out_examples=len(held_ex))
        generation = _generation_set(held_ex, tokenizer, settings)
        truncated, train_units = train_rep.truncated, len(train_ex)
    else:
        docs = encode_documents(rows, tokenizer)
        if len(docs) >= DOCUMENT_SPLIT_MIN:
            keys = [row_key(r.data) for r in rows]
            train_idx, held_idx = split_indices(keys, settings.eval_fraction, settings.eval_max_examples,
                                                settings.seed)
            train = pack_documents([docs[i] for i in train_idx], settings.seq_len, spec.cross_document_attention)
            held = pack_documents([docs[i] for i in held_idx], settings.seq_len, spec.cross_document_attention)
            counts.update(train_documents=len(train_idx), held_out_documents=len(held_idx))
            held_texts = {rows[i].where: document_text(rows[i].data)[:HELD_TEXT_CHARS] for i in held_idx}
            train_units = len(train_idx)
        else:
            packed = pack_documents(docs, settings.seq_len, spec.cross_document_attention)
            keys = [json.dumps(p.input_ids) for p in packed]
            train_idx, held_idx = split_indices(keys, settings.eval_fraction, settings.eval_max_examples,
                                                settings.seed)
            train, held = [packed[i] for i in train_idx], [packed[i] for i in held_idx]
            held_sequence_ids = [f"{packed[i].sources[0]} (sequence {i + 1} of {len(packed)})" for i in held_idx]
            held_texts = {k: tokenizer.decode(packed[i].input_ids, skip_special_tokens=True)[:HELD_TEXT_CHARS]
                          for k, i in zip(held_sequence_ids, held_idx, strict=True)}
            train_units = len(train)
            notes.append(f"only {len(docs)} document(s): the held-out split is {len(held)} of the "
                         f"{len(packed)} packed {settings.seq_len}-token sequences")
            counts.update(documents=len(docs))
        generation = []
        if not train:
            raise DataError(f"{files[0]}: no training text left after the held-out split")
    counts.update(
        train_sequences=len(train), train_tokens=sum(len(p) for p in train),
        train_target_tokens=sum(p.num_targets for p in train),
        held_out_sequences=len(held), held_out_target_tokens=sum(p.num_targets for p in held),
    )
    if not held:
        notes.append("no held-out split (eval_fraction is 0 or there is too little data): no before/after metrics")
    return Corpus(shape, list(files), train, held, generation, counts, notes, task, held_sequence_ids, held_texts,
                  truncated, train_units)


def _note_encoding(train: EncodeReport, held: EncodeReport, settings: TrainingSettings, notes: list[str]) -> None:
    truncated = train.truncated + held.truncated
    if truncated:
        notes.append(f"{truncated} example(s) longer than seq_len {settings.seq_len} were truncated")
    dropped = train.dropped + held.dropped
    if dropped:
        shown = ", ".join(dropped[:5]) + (" …" if len(dropped) > 5 else "")
        notes.append(f"{len(dropped)} example(s) had no answer token within seq_len and were skipped: {shown}")


# -- the run ---------------------------------------------------------------------------------------


def _check_output(store: CheckpointStore, out: Path, plan: Plan, identity: dict[str, Any],
                  events: EventSink) -> Path | None:
    """The checkpoint to resume from (None: start fresh); refuses mismatches and silent overwrites.

    Damaged checkpoints (half written, truncated) are named and skipped for the newest complete one;
    when only damaged ones are left, starting again from step 0 needs ``--force``.
    """
    latest = store.latest()
    damaged = [(step, path, why) for step, path, why in store.damaged
               if latest is None or step > int(latest.name.split("-")[1])]
    if not plan.resume:
        earlier = _earlier_run(out)
        if latest is not None or damaged or earlier:
            if not plan.force:
                held = f"checkpoint {latest.name}" if latest is not None else \
                    f"checkpoint {damaged[-1][1].name}, damaged" if damaged else earlier
                raise ResumeError(
                    f"{out} already holds a run ({held}); pass --resume to continue it, "
                    "--force to start over (deletes its checkpoints) or --out DIR for a new folder"
                )
            store.clear()
            events("log", level="warning", message=f"--force: deleted the earlier checkpoints in {store.root}")
        return None
    for _step, path, why in damaged:
        events("log", level="warning",
               message=f"checkpoint {path} is damaged ({why}); skipped" + (
                   f" for the newest complete one, {latest.name}" if latest is not None else ""))
    if latest is None:
        if damaged:
            listed = "; ".join(f"{path.name}: {why}" for _step, path, why in damaged)
            if not plan.force:
                raise ResumeError(f"--resume: no complete checkpoint in {store.root} to resume from ({listed}). "
                                  "Pass --force to start again from step 0 (deletes them).")
            store.clear()
            events("log", level="warning", message=f"--force: no complete checkpoint ({listed}); "
                                                   "deleted them and starting from step 0")
            return None
        events("log", level="warning", message=f"--resume: no checkpoint in {store.root} yet; starting from step 0")
        return None
    saved = store.read_state(latest).get("identity", {})
    differences = identity_differences(saved, identity)
    if differences:
        listed = "\n  - ".join(differences)
        if not plan.force:
            raise ResumeError(f"cannot resume from {latest}: it was made by a different run:\n  - {listed}\n"
                              "Pass --force to resume anyway, or use another --out.")
        events("log", level="warning", message=f"--force: resuming {latest} despite differences: "
                                               + "; ".join(differences))
    return latest


def _earlier_run(out: Path) -> str | None:
    """What ``run.json`` says an earlier run in ``out`` ended as (it may have left no checkpoint), or None."""
    path = out / RUN_FILE
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    return f"a {status} run, {RUN_FILE}" if isinstance(status, str) else RUN_FILE


def run_training(plan: Plan, events: EventSink, spec: MethodSpec) -> RunResult:
    """Run ``plan`` with ``spec``; see the module docstring for the order of things."""
    wall_start = time.time()
    settings = training_settings(plan.training)
    budget = Budget.from_settings(settings, wall_start)  # an unknown budget_hardware fails here, before data
    out = Path(plan.output_dir).expanduser().resolve()

    # 1. data and tokenizer (nothing heavy yet)
    shape, rows, files = load_plan_data(plan.data, spec.shapes)
    from tunewise.plugins.models import load_tokenizer, resolve_model

    ref = resolve_model(plan.model)
    tokenizer = load_tokenizer(str(ref.path))
    corpus = build_corpus(shape, rows, files, tokenizer, settings, spec)

    # 2. placement, preflight, checkpoints
    placement = resolve_placement(settings.device, settings.precision)
    from tunewise.methods._hf.distributed import setup as setup_parallel

    parallel = setup_parallel(plan.distributed, placement, spec.kind)  # joins the group under torchrun
    placement = parallel.placement(placement)
    if spec.quantize_4bit:
        from tunewise.methods._hf.modeling import qlora_problem

        problem = qlora_problem(placement)
        if problem:
            raise MethodNotRunnable(problem)
    from tunewise.methods._hf.preflight import check_fits, estimate_memory

    estimate = estimate_memory(ref.path, placement, kind=spec.kind, seq_len=settings.seq_len,
                               micro_batch=settings.batch_size, recompute=settings.gradient_checkpointing,
                               lora_rank=spec.lora_rank, quantized_base=spec.quantize_4bit)
    check_fits(estimate, placement)
    config_values = dataclasses.asdict(spec.config)
    identity = run_identity(method=spec.id, model_name=ref.name, model_path=ref.path, data_files=corpus.files,
                            config=config_values, training={**settings.identity(), **parallel.identity()},
                            precision=placement.precision, device_type=placement.device_type)
    store = CheckpointStore(out / "checkpoints", settings.keep_checkpoints, settings.min_free_disk_gb)
    resume_from = _check_output(store, out, plan, identity, events)
    out.mkdir(parents=True, exist_ok=True)
    learning_rate = settings.learning_rate or spec.default_learning_rate
    batches = PackedBatches(corpus.train, settings.batch_size, settings.grad_accum, settings.seed,
                            _pad_id(tokenizer))
    batches = parallel.shard(batches)
    from tunewise.methods._hf.loop import total_steps

    steps = total_steps(settings, batches.steps_per_epoch)
    if placement.note:
        events("log", level="warning" if "slower" in placement.note else "info", message=placement.note)
    for note in corpus.notes:
        events("log", level="warning", message=note)
    events("start", method=spec.id, total_steps=steps, plan=plan.to_dict(), device=placement.describe(),
           model=ref.name, data_shape=corpus.shape, counts=corpus.counts, learning_rate=learning_rate,
           memory_estimate_gb=round(estimate.total_gb, 3), memory_available_gb=estimate.available_gb,
           resume_from=str(resume_from) if resume_from else None)

    sink: Any = events
    if settings.report_to:
        from tunewise.methods._hf.trackers import TrackingSink

        sink = TrackingSink(events, settings.report_to, out, {**config_values, **settings.identity()})
    try:
        return _train_and_report(plan, sink, spec, settings, placement, ref, tokenizer, corpus, batches,
                                 store, identity, resume_from, learning_rate, out, wall_start, budget)
    except DiskSpaceError as exc:
        message = f"stopped: disk space: {exc}{_last_good(store)}"
        events("error", message=message, kind="disk_space", folder=str(exc.folder), needed_bytes=exc.needed,
               free_bytes=exc.free)
        _write_run_file(out, {"status": "stopped", "reason": "disk_space", "message": message, "identity": identity})
        return RunResult(spec.id, "stopped", message=message, output_dir=str(out),
                         wall_s=round(time.time() - wall_start, 2))
    except NonFiniteWeightsError as exc:
        message = (f"{exc}: training diverged although the loss looked finite; stopped without saving these "
                   f"weights.{_last_good(store)} Try a lower learning rate (now {learning_rate:g}; try "
                   f"{learning_rate / 4:g}) and keep max_grad_norm at 1.0 or lower.")
        events("error", message=message, kind="non_finite_weights")
        _write_run_file(out, {"status": "failed", "message": message, "identity": identity})
        return RunResult(spec.id, "failed", message=message, output_dir=str(out),
                         wall_s=round(time.time() - wall_start, 2))
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        advice = oom_advice(settings, method=spec.id, lora=spec.kind == "lora", quantized=spec.quantize_4bit,
                            is_cuda=placement.is_cuda)
        message = (f"out of memory on {placement.device} ({str(exc).splitlines()[0][:300]}).{_last_good(store)} "
                   "Try: " + "; ".join(advice) + ". These settings are part of the run's identity: continue "
                   "with --resume --force, or start again in a new --out.")
        events("error", message=message, kind="oom")
        _write_run_file(out, {"status": "failed", "reason": "oom", "message": message, "identity": identity})
        return RunResult(spec.id, "failed", message=message, output_dir=str(out),
                         wall_s=round(time.time() - wall_start, 2))
    finally:
        if isinstance(sink, object) and hasattr(sink, "close") and sink is not events:
            sink.close()


def _last_good(store: CheckpointStore) -> str:
    latest = store.latest()
    return f" Last complete checkpoint: {latest} (--resume continues from it)." if latest else \
        " No checkpoint had been written yet."


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad if pad is not None else 0)


def _train_and_report(plan: Plan, events: Any, spec: MethodSpec, settings: TrainingSettings, placement: Placement,
                      ref: Any, tokenizer: Any, corpus: Corpus, batches: PackedBatches, store: CheckpointStore,
                      identity: dict[str, Any], resume_from: Path | None, learning_rate: float, out: Path,
                      wall_start: float, budget: Budget) -> RunResult:
    import torch
    from tunewise.methods._hf.loop import LoopState, TrainLoop, trainable_summary
    from tunewise.methods._hf.loss import causal_lm_loss
    from tunewise.methods._hf.modeling import load_for_training

    if placement.is_cuda and settings.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    # 3. model
    torch.manual_seed(settings.seed)  # adapter initialisation is part of the run's identity
    model = load_for_training(ref.path, placement, frozen_base=spec.frozen_base, quantize_4bit=spec.quantize_4bit,
                              gradient_checkpointing=settings.gradient_checkpointing)
    if spec.prepare is not None:
        model = spec.prepare(model, placement, settings)
    from tunewise.methods._hf.distributed import current

    parallel = current()
    model = parallel.prepare_model(model)
    trainable, total = trainable_summary(model)
    events("log", level="info", message=f"training {trainable:,} of {total:,} parameters "
                                        f"({100 * trainable / max(1, total):.2f}%) on {device_description(placement)}")
    held = eval_batches(corpus.held_out, settings.batch_size, _pad_id(tokenizer))

    def evaluate_during() -> dict[str, float]:
        from tunewise.methods._hf.evaluation import held_out_loss

        return held_out_loss(model, held, causal_lm_loss, placement)

    # The loop reads ``stop_requested`` after every step: the budget rides on it (see guardrails).
    guarded = BudgetedEvents(events, budget, LoopState())
    loop = TrainLoop(model=model, settings=settings, placement=placement, batches=batches, loss_fn=causal_lm_loss,
                     learning_rate=learning_rate, events=guarded if budget.active else events, store=store,
                     identity=identity, evaluate=evaluate_during if held else None,
                     eval_sequences=len(corpus.held_out))  # caps the default cadence at +25% time
    state: LoopState | None = None
    if resume_from is not None:
        try:
            state = loop.restore(CheckpointStore.load(resume_from))
        except ValueError as exc:
            raise ResumeError(str(exc)) from None
        base_side = Side.from_extra(state.extra, corpus)
        events("log", level="info", message=f"resumed from {resume_from} at step {state.step}/{loop.total_steps}")
    else:
        base_side = evaluate_side(model, tokenizer, corpus, placement, settings, held, events, "evaluating before")
        if base_side.metrics:
            events("eval", phase="before", step=0, metrics=base_side.metrics)
        # The base's per-example evidence rides in every checkpoint: a resumed run compares the same.
        state = LoopState(extra={"metrics_before": base_side.metrics, EXTRA_KEY: base_side.to_json()})
        # Seed here too, so that evaluation work before training cannot shift the training RNG streams.
        torch.manual_seed(settings.seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(settings.seed)
    budget.spent_before_s = float(state.extra.get(BUDGET_KEY, 0.0))
    guarded.state = state
    spent = budget.exceeded() if budget.active and resume_from is not None else None
    if spent:  # resumed with the limit that stopped it: say so instead of training one more step
        return _budget_stop(spec, events, out, identity, state.step, spent, str(resume_from or ""),
                            "nothing more was trained", wall_start)
    before = base_side.metrics
    events("phase", phase="training", done=state.step, total=loop.total_steps, unit="steps")
    outcome = loop.run(state)
    if outcome.status == "stopped" and guarded.reason:
        return _budget_stop(spec, events, out, identity, outcome.state.step, guarded.reason,
                            outcome.checkpoint or "", "a checkpoint was written", wall_start)

    base = {"output_dir": str(out), "steps": outcome.state.step, "metrics_before": before,
            "train_seconds": round(outcome.state.train_seconds, 2)}
    if outcome.status == "cancelled":
        return RunResult(spec.id, "cancelled", metrics_before=before, message=outcome.message,
                         artifacts={"checkpoint": outcome.checkpoint or ""}, output_dir=str(out),
                         steps=outcome.state.step, peak_memory_gb=round(peak_memory_gb(placement), 3),
                         wall_s=round(time.time() - wall_start, 2))
    if outcome.status == "non_finite":
        _write_run_file(out, {"status": "failed", "message": outcome.message, **base, "identity": identity})
        return RunResult(spec.id, "failed", metrics_before=before, message=outcome.message,
                         artifacts={"checkpoint": outcome.checkpoint} if outcome.checkpoint else {},
                         output_dir=str(out), steps=outcome.state.step,
                         peak_memory_gb=round(peak_memory_gb(placement), 3), wall_s=round(time.time() - wall_start, 2))

    # 4. after: evaluate, save, report
    result_side = evaluate_side(model, tokenizer, corpus, placement, settings, held, events, "evaluating after")
    after = result_side.metrics
    if after:
        events("eval", phase="after", step=outcome.state.step, metrics=after)
    events("phase", phase="saving")

    def rebuild() -> Any:
        plain = load_for_training(ref.path, placement, frozen_base=spec.frozen_base, quantize_4bit=spec.quantize_4bit)
        return spec.prepare(plain, placement, settings) if spec.prepare is not None else plain

    to_save = parallel.saveable(model, rebuild)  # FSDP: gathered into an unsharded copy on rank 0
    if parallel.is_main:
        final = {n: p for n, p in to_save.named_parameters() if p.requires_grad or not spec.frozen_base}
        refuse_non_finite(final, out)
        check_disk_room(out, sum(p.numel() * p.element_size() for p in final.values()) + 10_000_000,
                        settings.min_free_disk_gb, "the trained model")
    if not parallel.is_main:
        return RunResult(spec.id, "completed", metrics_before=before, metrics_after=after, output_dir=str(out),
                         message=f"rank {parallel.rank} of {parallel.world}: done (rank 0 saves and reports)",
                         steps=outcome.state.step, peak_memory_gb=round(peak_memory_gb(placement), 3))
    artifacts = spec.save(to_save, tokenizer, out)
    generations = [
        {"where": e.where, "prompt": tokenizer.decode(e.prompt_ids or [], skip_special_tokens=False),
         "reference": e.reference or "", "before": base_side.answers.get(k, ""), "after": result_side.answers[k]}
        for k, e in zip(generation_ids(corpus), corpus.generation, strict=True) if k in result_side.answers
    ]
    if generations:
        with open(out / "generations.jsonl", "w", encoding="utf-8") as fh:
            for g in generations:
                fh.write(json.dumps(redact_data(g), ensure_ascii=False) + "\n")
        artifacts["generations"] = str(out / "generations.jsonl")
    peak = round(peak_memory_gb(placement), 3)
    from tunewise.methods._hf.report import RunSummary, write_model_card, write_plots, write_report

    notes = list(corpus.notes)
    early_stopped = getattr(outcome, "early_stopped", None)
    if outcome.status == "stopped" or (outcome.message and outcome.message != early_stopped):
        notes.append(outcome.message)
    if early_stopped:
        notes.append(early_stopped)
    facts = run_facts(corpus, steps=outcome.state.step, steps_per_epoch=batches.steps_per_epoch,
                      learning_rate=learning_rate, lr_range=spec.lr_range, model_params=total, before=base_side,
                      after=result_side, eval_history=outcome.state.eval_history,
                      best_step=getattr(outcome, "best_step", None), early_stopped=early_stopped)
    bake, examples, why_not, bake_notes = _bake_off(corpus, settings, tokenizer, spec.title, base_side, result_side,
                                                    facts)
    notes += [why_not] if why_not else bake_notes
    metrics: dict[str, Any] = {"before": before, "after": after}
    if bake is not None:
        events("bakeoff", **bake.to_dict())
        artifacts["bakeoff"] = str(write_bakeoff(out, bake, examples))
        metrics = merge_metrics(metrics, bake)  # the main metric joins before/after: tables, card, plots
    summary = RunSummary(
        method=spec.id, title=spec.title, model=ref.name, data_files=corpus.files, data_shape=corpus.shape,
        counts=corpus.counts, settings={**settings.identity(), "learning_rate": learning_rate},
        config=dataclasses.asdict(spec.config), device=device_description(placement),
        before=metrics["before"], after=metrics["after"], steps=outcome.state.step, train_seconds=outcome.state.train_seconds, wall_seconds=time.time() - wall_start,
        tokens_seen=outcome.state.tokens_seen, peak_memory_gb=peak, history=outcome.state.history,
        eval_history=outcome.state.eval_history, generations=generations, artifacts=artifacts, notes=notes,
    )
    first = next(iter(artifacts.values()))
    write_model_card(Path(first), summary, base_model=spec.base_model_for_card or ref.name, library=spec.library,
                     extra_tags=spec.card_tags)
    plots = write_plots(out / "plots", summary)
    first_section = bakeoff_markdown(bake, examples) if bake is not None else no_bakeoff_markdown(why_not)
    report = write_report(out, summary, plots, first_section)
    metrics_file = out / "metrics.json"
    metrics_file.write_text(json.dumps(redact_data(metrics), indent=2))
    artifacts.update(report=str(report), metrics=str(metrics_file), events=str(out / "events.jsonl"))
    summary.wall_seconds = time.time() - wall_start
    headline = _headline(before, after, outcome.state.step)
    verdict = bake.sentence if bake is not None else (why_not or "no bake-off")
    result = RunResult(
        spec.id, "completed", metrics_before=metrics["before"], metrics_after=metrics["after"], artifacts=artifacts,
        report=str(report), message=f"{verdict.rstrip('.')}. {headline}", output_dir=str(out),
        steps=outcome.state.step, peak_memory_gb=peak, wall_s=round(summary.wall_seconds, 2),
        bakeoff=bake.to_dict() if bake is not None else None,
    )
    _write_run_file(out, {"status": "completed", **base, "metrics_after": after, "identity": identity,
                          "artifacts": artifacts})
    return result


def _bake_off(corpus: Corpus, settings: TrainingSettings, tokenizer: Any, title: str, base: Side, result: Side,
              facts: RunFacts) -> tuple[BakeOff | None, list[ExampleOutcome], str | None, list[str]]:
    """The bake-off, its evidence and notes; or None and the sentence saying why there is none."""
    why = no_bakeoff_reason(corpus, settings)
    if why is not None:
        return None, [], why, []
    try:
        bake, examples, notes = compare(corpus, tokenizer, title, base, result, facts)
    except BakeOffError as exc:
        return None, [], f"no bake-off: {exc}", []
    answered, held = len(corpus.generation), corpus.counts.get("held_out_examples")
    if corpus.shape in SUPERVISED_SHAPES and isinstance(held, int) and answered < held:
        notes.append(f"the bake-off answers {answered} of the {held} held-out examples "
                     f"(training.generation_examples: {settings.generation_examples}); remove that setting to "
                     "answer them all")
    return bake, examples, None, notes


def no_bakeoff_markdown(why: str | None) -> str:
    """report.md's first section when there is no bake-off: what is missing and the setting to change."""
    return f"## Bake-off: base vs result on the held-out split\n\n**{why or 'no bake-off'}**\n"


def _headline(before: Mapping[str, float], after: Mapping[str, float], steps: int) -> str:
    if "loss" in before and "loss" in after:
        b, a = before["loss"], after["loss"]
        return (f"{steps} steps; held-out loss {b:.4f} -> {a:.4f} "
                f"(perplexity {math.exp(min(b, 50)):.2f} -> {math.exp(min(a, 50)):.2f})")
    return f"{steps} steps"


def _budget_stop(spec: MethodSpec, events: Any, out: Path, identity: dict[str, Any], step: int, reason: str,
                 checkpoint: str, what: str, wall_start: float) -> RunResult:
    """End a run whose time or money budget is spent: status ``stopped``, resumable."""
    message = (f"stopped: budget: {reason} at step {step}; {what}"
               + (f" ({checkpoint})" if checkpoint else "")
               + ". Raise training.max_hours / training.max_usd in the plan and continue with --resume. "
               "No bake-off yet: base and result are compared on the held-out split when training finishes.")
    events("log", level="warning", message=message, kind="budget", step=step)
    _write_run_file(out, {"status": "stopped", "reason": "budget", "message": message, "steps": step,
                          "checkpoint": checkpoint, "identity": identity})
    return RunResult(spec.id, "stopped", message=message, output_dir=str(out), steps=step,
                     artifacts={"checkpoint": checkpoint} if checkpoint else {},
                     wall_s=round(time.time() - wall_start, 2))


def _write_run_file(out: Path, data: Mapping[str, Any]) -> None:
    (out / RUN_FILE).write_text(json.dumps(redact_data(data), indent=1, default=str), encoding="utf-8")
