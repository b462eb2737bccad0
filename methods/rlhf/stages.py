"""What the RLHF stages share: a folder per stage, trl/transformers Trainer settings, events, guards.

Each stage (``sft``, ``reward_model``, ``policy``) trains with a trl trainer in
``<output_dir>/stages/<name>/``:

- ``checkpoints/checkpoint-N``: the Trainer's own checkpoints (weights, optimizer, scheduler, RNG
  states, ``trainer_state.json`` written last). A folder whose ``trainer_state.json`` is missing or
  torn (a kill mid-save) is incomplete and is deleted, never resumed from.
- ``model/``: the stage's final weights, written to a temporary folder and renamed into place.
- ``stage.json``: written last; its presence means the stage is done, so a resumed run skips it.

A stage resumes from its newest complete checkpoint (``resume_from_checkpoint``): the Trainer
restores weights, optimizer, scheduler and RNGs and skips the batches already seen. SIGTERM/SIGINT
write a checkpoint at the end of the current step and stop the run (resumable); a non-finite loss or
gradient norm stops the stage before anything of that step is saved.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.methods._hf.device import Placement, peak_memory_gb
from tunewise.methods._hf.settings import TrainingSettings
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.redaction import seal_data
from tunewise.plugins.types import EventSink

STAGE_FILE = "stage.json"
TRAINER_STATE = "trainer_state.json"


class StageStopped(TunewiseError):
    """A stage ended early: cancelled by a signal (resumable) or stopped by a non-finite loss."""

    def __init__(self, message: str, kind: str, stage: str, step: int) -> None:
        super().__init__(message)
        self.kind = kind
        """``cancelled`` or ``non_finite``."""
        self.stage = stage
        self.step = step


@dataclass
class Stage:
    """One stage's folder and the settings its trainer runs with."""

    name: str
    root: Path
    settings: TrainingSettings
    placement: Placement
    events: EventSink
    step_offset: int = 0
    """Steps of the stages before this one: progress events count steps across the whole run."""
    run_total: int = 0
    """Planned steps of the whole run (0: this stage's own count)."""

    @property
    def folder(self) -> Path:
        return self.root / "stages" / self.name

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.folder / "model"

    def done(self) -> dict[str, Any] | None:
        """The stage's recorded result when it finished earlier, else None."""
        path = self.folder / STAGE_FILE
        if not path.is_file():
            return None
        try:
            result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
        return result if result.get("status") == "completed" else None

    def mark_done(self, result: Mapping[str, Any]) -> None:
        """Record the stage as finished (written atomically) and drop its now-needless checkpoints."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{STAGE_FILE}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(seal_data({"status": "completed", **result}), indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.folder / STAGE_FILE)
        clear_checkpoints(self.checkpoints)

    def resume_checkpoint(self) -> str | None:
        """The newest complete Trainer checkpoint of this stage; incomplete ones are deleted."""
        return latest_complete_checkpoint(self.checkpoints)

    def log(self, message: str, level: str = "info") -> None:
        self.events("log", level=level, message=f"{self.name}: {message}", stage=self.name)


def clear_checkpoints(folder: Path) -> None:
    """Delete the Trainer's ``checkpoint-N`` folders (and ``folder`` once empty); anything else stays."""
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.name.startswith("checkpoint-") and child.name[11:].isdigit() and child.is_dir() \
                and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
    with contextlib.suppress(OSError):  # the user's files keep it
        folder.rmdir()


def forget_stages(root: Path) -> None:
    """What ``--force`` removes of an earlier run's stages: their records, checkpoints and saved models only."""
    from tunewise.methods._hf.saving import remove_saved

    stages = root / "stages"
    if not stages.is_dir():
        return
    for folder in stages.iterdir():
        if not folder.is_dir() or folder.is_symlink():
            continue
        (folder / STAGE_FILE).unlink(missing_ok=True)
        clear_checkpoints(folder / "checkpoints")
        remove_saved(folder / "model")
        with contextlib.suppress(OSError):
            folder.rmdir()
    with contextlib.suppress(OSError):
        stages.rmdir()


def latest_complete_checkpoint(folder: Path) -> str | None:
    """Path of the highest ``checkpoint-N`` whose ``trainer_state.json`` parses; others without it go."""
    if not folder.is_dir():
        return None
    complete: list[tuple[int, Path]] = []
    for child in folder.iterdir():
        if not (child.is_dir() and child.name.startswith("checkpoint-")):
            continue
        try:
            step = int(child.name.split("-", 1)[1])
        except ValueError:
            continue
        try:
            json.loads((child / TRAINER_STATE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            shutil.rmtree(child, ignore_errors=True)  # killed mid-save: never resume from it
            continue
        complete.append((step, child))
    return str(max(complete)[1]) if complete else None


def seed_new_weights(stage: Stage) -> None:
    """Seed torch before a trainer builds new weights (LoRA adapters, a score head).

    trl's trainers load the model and add adapters before the Trainer seeds itself, so without this
    those start from whatever the process's random state is and two runs of one plan differ.
    """
    import torch

    torch.manual_seed(stage.settings.seed)


def trainer_kwargs(stage: Stage, *, learning_rate: float, batch_size: int, grad_accum: int = 1,
                   max_steps: int | None = None, epochs: int = 1) -> dict[str, Any]:
    """TrainingArguments fields every stage shares (trl's configs subclass TrainingArguments)."""
    settings, placement = stage.settings, stage.placement
    kwargs: dict[str, Any] = {
        "output_dir": str(stage.checkpoints),
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "num_train_epochs": epochs,
        "max_steps": max_steps if max_steps else -1,
        "lr_scheduler_type": settings.lr_schedule,
        "warmup_steps": settings.warmup_ratio,  # a float below 1 is a fraction of the steps
        "weight_decay": settings.weight_decay,
        "max_grad_norm": settings.max_grad_norm if settings.max_grad_norm > 0 else 0.0,
        "seed": settings.seed,
        "data_seed": settings.seed,
        # trl turns recomputation on by default; tunewise leaves it to the plan (it costs ~30% speed).
        "gradient_checkpointing": settings.gradient_checkpointing,
        "bf16": placement.precision == "bf16",
        "fp16": placement.precision == "fp16",
        "use_cpu": not placement.is_cuda,
        # Every step is logged so the non-finite guard sees each step's loss before anything is saved;
        # events still follow training.logging_steps.
        "logging_steps": 1,
        "logging_nan_inf_filter": False,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": settings.keep_checkpoints,
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_pin_memory": placement.is_cuda,
        "dataloader_num_workers": 0,
    }
    if placement.is_cuda and settings.deterministic:
        kwargs["full_determinism"] = True
    return kwargs


@dataclass
class StageLog:
    """What a stage's trainer logged: per-step history for the report and plots."""

    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    steps: int = 0


def make_callbacks(stage: Stage, log: StageLog, watched: tuple[str, ...] = ()) -> list[Any]:
    """Trainer callbacks: progress/checkpoint events, the non-finite guard and stop-on-signal."""
    from transformers import TrainerCallback

    settings = stage.settings
    events = stage.events

    class StageEvents(TrainerCallback):
        """Turns Trainer logs into tunewise progress events; stops on signals and non-finite values."""

        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.first_step = 0
            self.last_tokens: float | None = None
            self.last_time = self.started
            self.stop: StageStopped | None = None
            self.signals: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            from tunewise.methods._hf.loop import _StopSignals

            self.first_step = state.global_step
            self.started = self.last_time = time.perf_counter()
            self.signals = _StopSignals().__enter__()
            what = f"resuming at step {state.global_step}/{state.max_steps}" if state.global_step else \
                f"{state.max_steps} steps"
            stage.log(what)
            return control

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self.signals is not None:
                self.signals.__exit__(None, None, None)
                self.signals = None
            log.train_seconds += time.perf_counter() - self.started
            log.steps = state.global_step
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            received = self.signals.received if self.signals is not None else None
            if received or getattr(events, "stop_requested", False):
                why = received or "a stop request"
                control.should_save = True
                control.should_training_stop = True
                self.stop = StageStopped(
                    f"{stage.name}: stopped by {why} at step {state.global_step}/{state.max_steps}; "
                    "a checkpoint was written; run the plan again with --resume to continue",
                    "cancelled", stage.name, state.global_step)
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> Any:
            if not logs or "loss" not in logs:
                return control
            loss = float(logs["loss"])
            norm = logs.get("grad_norm")
            bad = [f"loss {loss}"] if not math.isfinite(loss) else []
            if norm is not None and not math.isfinite(float(norm)):
                bad.append(f"gradient norm {norm}")
            if bad:
                control.should_save = False
                control.should_training_stop = True
                last_good = latest_complete_checkpoint(stage.checkpoints)
                message = (f"{stage.name}: the {' and '.join(bad)} became non-finite at step {state.global_step} "
                           f"(lr {logs.get('learning_rate', 0):.3g}); stopped without saving these weights. "
                           + (f"Last good checkpoint: {last_good}. " if last_good else "")
                           + "Try a lower learning rate (a quarter of this one), max_grad_norm 1.0, or fp32 "
                             "precision.")
                self.stop = StageStopped(message, "non_finite", stage.name, state.global_step)
                events("error", message=message, kind="non_finite_loss", step=state.global_step, stage=stage.name)
                return control
            now = time.perf_counter()
            tokens = logs.get("num_tokens")
            tokens_per_s = 0.0
            if tokens is not None:
                if self.last_tokens is not None and now > self.last_time:
                    tokens_per_s = (float(tokens) - self.last_tokens) / (now - self.last_time)
                self.last_tokens = float(tokens)
            self.last_time = now
            entry = {"step": float(state.global_step), "loss": loss}
            entry.update({k: float(v) for k, v in logs.items()
                          if k in watched and isinstance(v, (int, float)) and math.isfinite(float(v))})
            log.history.append(entry)
            step = state.global_step
            if step % settings.logging_steps == 0 or step == state.max_steps:
                elapsed = now - self.started
                done = max(1, step - self.first_step)
                eta = elapsed / done * (state.max_steps - step)
                total = max(stage.run_total, stage.step_offset + state.max_steps)
                events("progress", step=stage.step_offset + step, total_steps=total, loss=loss,
                       stage_step=step, stage_steps=state.max_steps,
                       lr=float(logs.get("learning_rate", 0.0)), tokens_per_s=round(tokens_per_s, 2),
                       elapsed_s=round(elapsed, 2), eta_s=round(eta, 1), epoch=float(logs.get("epoch", 0.0)),
                       grad_norm=float(norm) if norm is not None else None, stage=stage.name,
                       metrics={k: v for k, v in entry.items() if k not in ("step", "loss")},
                       peak_memory_gb=round(peak_memory_gb(stage.placement), 3))
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            events("checkpoint", step=state.global_step, path=str(path), stage=stage.name)
            return control

    return [StageEvents()]


def run_trainer(stage: Stage, trainer: Any, callbacks: list[Any]) -> None:
    """Train, resuming from the stage's newest complete checkpoint; raises :class:`StageStopped`."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # The Trainer's printer and progress bar write to stdout, where run events may go; events replace them.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    resume = stage.resume_checkpoint()
    if resume:
        stage.log(f"resuming from {resume}")
    trainer.train(resume_from_checkpoint=resume)
    for callback in callbacks:
        stop = getattr(callback, "stop", None)
        if stop is not None:
            raise stop

