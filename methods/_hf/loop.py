"""The training loop: mixed precision, accumulation, clipping, schedule, checkpoints, exact resume.

:class:`TrainLoop` is reusable: it takes any batch source (``steps_per_epoch`` and
``step_batches(epoch, index) -> list[MicroBatch]``) and any loss function
``loss_fn(model, micro_batch) -> summed loss`` whose sum is divided by the step's
``num_targets`` (tokens for language modelling, pairs for preference losses). A resumed run
restores weights, optimizer, gradient scaler, random number generators and the step, and the data
order is a function of the step, so it ends with exactly the weights of an uninterrupted run.

Host-device syncs happen only when logging (every ``logging_steps``) and before checkpoints; the
non-finite check rides on those, and weights are never written unless the check passed.

Early stopping (``early_stopping_patience``, on by default when there is a held-out split) watches
the held-out loss of each evaluation during training and of one at the last step. The trainable
weights of the lowest loss are kept as a CPU copy (for LoRA a few MB; for full fine-tuning one copy
of the weights in host memory, cheaper than writing the whole model to disk at every improvement);
a checkpoint carries them (``best.safetensors``) when they differ from its own weights, with the best
loss, its step and the evaluations since the last improvement in :class:`LoopState`, so a resumed run
decides exactly as an uninterrupted one. After ``patience`` evaluations without an improvement of
``early_stopping_min_delta`` (a share of the best loss), or at the end when the last weights are worse
than the best, the loop puts the best weights back before returning: what is evaluated and saved
afterwards is the best evaluated step.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tunewise.methods._hf.batches import MicroBatch
from tunewise.methods._hf.checkpoint import CheckpointStore, optimizer_tensors, restore_optimizer
from tunewise.methods._hf.device import Placement, autocast, peak_memory_gb
from tunewise.methods._hf.settings import TrainingSettings, evaluation_cadence


class BatchSource(Protocol):
    steps_per_epoch: int

    def step_batches(self, epoch: int, index: int) -> list[MicroBatch]: ...


LossFn = Callable[[Any, MicroBatch], Any]
Evaluate = Callable[[], dict[str, float]]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier for the update at 0-based ``step``: linear warmup, then decay to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup + 1) / max(1, total - warmup)
    progress = min(1.0, max(0.0, progress))
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def total_steps(settings: TrainingSettings, steps_per_epoch: int) -> int:
    return settings.max_steps if settings.max_steps else settings.epochs * steps_per_epoch


def eval_interval(settings: TrainingSettings, total: int, steps_per_epoch: int,
                  eval_sequences: int | None = None) -> int | None:
    """Steps between held-out evaluations during training (None: only before and after).

    ``eval_steps`` when set; else, while early stopping is on, :func:`evaluation_cadence` (about 10
    per run, at least one per epoch, at most +25% time when ``eval_sequences`` is known).
    """
    if settings.eval_steps:
        return settings.eval_steps
    if not settings.early_stopping_patience:
        return None
    return evaluation_cadence(total, steps_per_epoch, eval_sequences, settings.batch_size * settings.grad_accum)


@dataclass
class LoopState:
    """What a checkpoint carries besides tensors (JSON-ready)."""

    step: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    """One entry per logged step: step, loss, lr, tokens_per_s, grad_norm."""
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Method data that must survive a resume (e.g. the metrics before training)."""
    best_loss: float | None = None
    """Early stopping: the lowest held-out loss evaluated during training so far."""
    best_step: int | None = None
    """The step of :attr:`best_loss` (whose weights the loop keeps)."""
    stale_evaluations: int = 0
    """Evaluations since the last one that improved on the best loss by ``early_stopping_min_delta``."""

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "tokens_seen": self.tokens_seen, "train_seconds": self.train_seconds,
                "history": self.history, "eval_history": self.eval_history, "extra": self.extra,
                "best_loss": self.best_loss, "best_step": self.best_step,
                "stale_evaluations": self.stale_evaluations}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        best_loss, best_step = data.get("best_loss"), data.get("best_step")
        return cls(int(data["step"]), int(data.get("tokens_seen", 0)), float(data.get("train_seconds", 0.0)),
                   list(data.get("history", [])), list(data.get("eval_history", [])), dict(data.get("extra", {})),
                   float(best_loss) if best_loss is not None else None,
                   int(best_step) if best_step is not None else None, int(data.get("stale_evaluations", 0)))


@dataclass
class LoopOutcome:
    status: str
    """``completed``, ``cancelled`` (signal; checkpoint written), ``stopped`` (a callback asked) or
    ``non_finite`` (loss or gradient not finite; nothing written)."""
    state: LoopState
    message: str = ""
    checkpoint: str | None = None
    early_stopped: str | None = None
    """One sentence when early stopping ended the run before its last step (status stays ``completed``):
    the step, why, and which step's weights were kept."""
    best_step: int | None = None
    """The step whose weights the model holds on return when early stopping watched the run (the best
    evaluated step, or the last step when it was best); None when it did not watch."""


class _StopSignals:
    """SIGTERM/SIGINT set a flag (the loop checkpoints and ends); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainLoop:
    """Runs optimizer steps over a batch source; see the module docstring."""

    def __init__(
        self,
        *,
        model: Any,
        settings: TrainingSettings,
        placement: Placement,
        batches: BatchSource,
        loss_fn: LossFn,
        learning_rate: float,
        events: Callable[..., Any],
        store: CheckpointStore,
        identity: dict[str, Any],
        evaluate: Evaluate | None = None,
        on_checkpoint: Callable[[str], None] | None = None,
        parallel: Any = None,
        eval_sequences: int | None = None,
    ) -> None:
        """``eval_sequences``: held-out sequences one ``evaluate`` call runs; when given, the default
        evaluation cadence keeps their cost within 25% of the training time."""
        import torch
        from tunewise.methods._hf.distributed import current

        self.model = model
        self.settings = settings
        self.placement = placement
        self.batches = batches
        self.loss_fn = loss_fn
        self.learning_rate = learning_rate
        self.events = events
        self.store = store
        self.identity = identity
        self.evaluate = evaluate
        self.on_checkpoint = on_checkpoint
        self.total_steps = total_steps(settings, batches.steps_per_epoch)
        self.eval_every = eval_interval(settings, self.total_steps, batches.steps_per_epoch, eval_sequences)
        self.early_stopping = bool(settings.early_stopping_patience) and evaluate is not None \
            and self.eval_every is not None
        self.eval_sequences = eval_sequences
        self._best: dict[str, Any] | None = None
        """CPU copy of the trainable weights of ``state.best_step`` (early stopping)."""
        self.warmup_steps = math.ceil(settings.warmup_ratio * self.total_steps)
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not self.named:
            raise ValueError("the model has no trainable parameters")
        self.params = [p for _, p in self.named]
        self.parallel = parallel or current()
        """Data-parallel hooks (:mod:`~tunewise.methods._hf.distributed`); identities in a single process."""
        self.step_loss = self.parallel.step_loss(model, loss_fn)
        self.optimizer = self._optimizer()
        self.names = {i: n for i, (n, _) in enumerate(self._ordered_named())}
        self.scaler = (torch.amp.GradScaler("cuda") if placement.is_cuda and placement.precision == "fp16" else None)

    # -- setup ---------------------------------------------------------------------------------

    def _ordered_named(self) -> list[tuple[str, Any]]:
        decay = [(n, p) for n, p in self.named if p.ndim >= 2]
        no_decay = [(n, p) for n, p in self.named if p.ndim < 2]
        return decay + no_decay

    def _optimizer(self) -> Any:
        import torch

        decay = [p for n, p in self.named if p.ndim >= 2]
        no_decay = [p for n, p in self.named if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": self.settings.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        floating = all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in self.params)
        same_device = len({p.device for p in self.params}) == 1
        sharded = any(hasattr(p, "device_mesh") for p in self.params)  # FSDP DTensors: foreach only
        # The fused kernel (CUDA, and CPU since torch 2.4) is the fastest AdamW; foreach otherwise.
        kwargs: dict[str, Any] = {"fused": True} if floating and same_device and not sharded else {"foreach": True}
        try:
            return torch.optim.AdamW(groups, lr=self.learning_rate, betas=(0.9, 0.999), eps=1e-8, **kwargs)
        except (RuntimeError, TypeError):
            return torch.optim.AdamW(groups, lr=self.learning_rate, betas=(0.9, 0.999), eps=1e-8)

    # -- state ---------------------------------------------------------------------------------

    def _rng_tensors(self) -> dict[str, Any]:
        import torch

        out = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                out[f"cuda.{i}"] = state
        return out

    def _restore_rng(self, tensors: dict[str, Any]) -> None:
        import torch

        torch.set_rng_state(tensors["cpu"])
        if torch.cuda.is_available():
            states = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
            if states:
                torch.cuda.set_rng_state_all(states)

    def save_checkpoint(self, state: LoopState) -> str:
        # Under FSDP the gathers are collectives: every rank takes part, rank 0 writes.
        weights = self.parallel.full_tensors({n: p for n, p in self.named})
        opt_tensors, groups = optimizer_tensors(self.optimizer, self.names)
        opt_tensors = self.parallel.full_tensors(opt_tensors)
        rng = self.parallel.rng_tensors(self._rng_tensors())
        if not self.parallel.is_main:
            self.parallel.barrier()
            return str(self.store.root / f"step-{state.step:08d}")
        # The best weights travel with the checkpoint unless they are this step's own.
        best = self._best if self._best is not None and state.best_step != state.step else None
        path = self.store.save(
            state.step, weights, opt_tensors, rng,
            {"identity": self.identity, "loop": state.to_json(), "optimizer_groups": groups,
             "scaler": self.scaler.state_dict() if self.scaler else None, "total_steps": self.total_steps},
            best=best,
        )
        self.events("checkpoint", step=state.step, path=str(path))
        if self.on_checkpoint:
            self.on_checkpoint(str(path))
        self.parallel.barrier()
        return str(path)

    def restore(self, checkpoint: Any) -> LoopState:
        """Load a :class:`~tunewise.methods._hf.checkpoint.Checkpoint` into model, optimizer and RNGs."""
        import torch

        names = {n for n, _ in self.named}
        missing = names - set(checkpoint.weights)
        unknown = set(checkpoint.weights) - names
        if missing or unknown:
            raise ValueError(f"checkpoint {checkpoint.path} holds other parameters (missing {sorted(missing)[:3]}, "
                             f"unknown {sorted(unknown)[:3]})")
        wrong = [f"{n} {tuple(checkpoint.weights[n].shape)} vs {tuple(p.shape)}" for n, p in self.named
                 if tuple(checkpoint.weights[n].shape) != tuple(p.shape)]
        if wrong:
            raise ValueError(f"checkpoint {checkpoint.path} holds tensors of other shapes than this model "
                             f"(checkpoint vs now: {'; '.join(wrong[:3])}); a resume cannot change the shape "
                             "of the model or adapter, even with --force")
        with torch.no_grad():
            for n, p in self.named:
                p.copy_(self.parallel.like_param(checkpoint.weights[n], p))
        restore_optimizer(self.optimizer, self.names,
                          self.parallel.optimizer_state_like_params(checkpoint.optimizer, dict(self.named)),
                          checkpoint.state["optimizer_groups"])
        if self.scaler and checkpoint.state.get("scaler"):
            self.scaler.load_state_dict(checkpoint.state["scaler"])
        self._restore_rng(self.parallel.own_rng(checkpoint.rng))
        state = LoopState.from_json(checkpoint.state["loop"])
        self._best = None
        if state.best_step is not None:
            kept = checkpoint.weights if state.best_step == checkpoint.step else checkpoint.best
            if kept is None:
                raise ValueError(f"checkpoint {checkpoint.path} names step {state.best_step} as early stopping's "
                                 "best but does not hold its weights")
            self._best = {n: kept[n].detach().to("cpu", copy=True) for n, _ in self.named}
        return state

    # -- the loop ------------------------------------------------------------------------------

    def _set_lr(self, step: int) -> float:
        lr = self.learning_rate * lr_factor(step, self.total_steps, self.warmup_steps, self.settings.lr_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _evaluate_isolated(self) -> dict[str, float]:
        """Evaluate without disturbing the training RNG streams or train mode."""
        import torch

        assert self.evaluate is not None
        devices = [self.placement.device] if self.placement.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            metrics = self.evaluate()
        self.model.train()
        return metrics

    # -- early stopping ------------------------------------------------------------------------

    def _keep_best(self) -> None:
        """Copy the trainable weights to the CPU (under FSDP gathered: every rank takes part)."""
        full = self.parallel.full_tensors({n: p.detach() for n, p in self.named})
        self._best = {n: t.to("cpu", copy=True) for n, t in full.items()}

    def _put_back_best(self) -> None:
        import torch

        assert self._best is not None
        with torch.no_grad():
            for n, p in self.named:
                p.copy_(self.parallel.like_param(self._best[n], p))

    def _watch(self, state: LoopState, metrics: dict[str, float]) -> bool:
        """Record one evaluation; True when the patience is used up."""
        loss = metrics.get("loss")
        if loss is None:
            return False
        loss = float(loss)
        best = state.best_loss
        finite = math.isfinite(loss)  # a non-finite evaluation is never the best, nor an improvement
        lower = self.parallel.agree(finite and (best is None or loss < best))  # every rank keeps (gathers) or none
        counted = finite and (best is None or loss < best * (1 - self.settings.early_stopping_min_delta))
        if lower:
            self._keep_best()
            state.best_loss, state.best_step = loss, state.step
        state.stale_evaluations = 0 if counted else state.stale_evaluations + 1
        return self.parallel.agree(state.stale_evaluations >= int(self.settings.early_stopping_patience or 0))

    def _finish(self, state: LoopState, patience_used_up: bool) -> LoopOutcome:
        """End a run early stopping watched: put the best weights back when the last ones are worse."""
        if state.best_step is None or self._best is None:
            return LoopOutcome("completed", state)
        final = state.eval_history[-1].get("loss") if state.eval_history else None
        restore = state.best_step != state.step
        best = f"step {state.best_step} (held-out loss {state.best_loss:.4g})"
        if restore:
            self._put_back_best()
        kept = f"kept the weights of {best}" if restore else f"kept these weights, the best: {best}"
        if patience_used_up:
            patience = int(self.settings.early_stopping_patience or 0)
            delta = self.settings.early_stopping_min_delta
            by = f" by {delta:.2%}" if delta else ""
            sentence = (f"stopped early at step {state.step} of {self.total_steps}: held-out loss had not "
                        f"improved{by} for {patience} evaluation{'s' if patience != 1 else ''}; {kept}")
            self.events("log", level="info", message=sentence, kind="early_stopping", step=state.step,
                        best_step=state.best_step, best_loss=state.best_loss)
            return LoopOutcome("completed", state, sentence, early_stopped=sentence, best_step=state.best_step)
        message = ""
        if restore:
            shown = f"{final:.4g}" if isinstance(final, (int, float)) else "not finite"
            message = f"the last step's held-out loss ({shown}) was not below the best; {kept}"
            self.events("log", level="info", message=message, kind="early_stopping", step=state.step,
                        best_step=state.best_step, best_loss=state.best_loss)
        return LoopOutcome("completed", state, message, best_step=state.best_step)

    def _progress(self, state: LoopState, lr: float, loss: float, grad_norm: float | None,
                  window_tokens: int, window_seconds: float) -> None:
        tokens_per_s = window_tokens / window_seconds if window_seconds > 0 else 0.0
        done = state.step - self._start_step
        per_step = (state.train_seconds - self._start_seconds) / done if done > 0 else 0.0
        eta = per_step * (self.total_steps - state.step)
        entry = {"step": state.step, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s}
        if grad_norm is not None:
            entry["grad_norm"] = grad_norm
        state.history.append(entry)
        self.events(
            "progress", step=state.step, total_steps=self.total_steps, loss=loss, lr=lr,
            tokens_per_s=round(tokens_per_s, 2), elapsed_s=round(state.train_seconds, 2), eta_s=round(eta, 1),
            epoch=round(state.step / self.batches.steps_per_epoch, 4), grad_norm=grad_norm,
            peak_memory_gb=round(peak_memory_gb(self.placement), 3), tokens_seen=state.tokens_seen,
        )

    def run(self, state: LoopState | None = None) -> LoopOutcome:
        """Train from ``state`` (None: from scratch, seeding the RNGs) to the last step."""
        import torch

        if state is None:
            state = LoopState()
            torch.manual_seed(self.settings.seed)
            if torch.cuda.is_available():
                torch.cuda.manual_seed_all(self.settings.seed)
        self._start_step = state.step
        self._start_seconds = state.train_seconds
        if self.settings.early_stopping_patience and not self.early_stopping and state.step < self.total_steps:
            why = ("there is no held-out split to watch (eval_fraction is 0 or the data too small)"
                   if self.evaluate is None else
                   f"evaluating the {self.eval_sequences:,} held-out sequences even twice would add over 25% to "
                   f"{self.total_steps:,} training steps (set eval_steps to evaluate anyway)")
            self.events("log", level="info", message=f"early stopping is off: {why}", kind="early_stopping")
        model = self.model
        model.train()
        settings = self.settings
        device = self.placement.device
        window_loss = torch.zeros((), dtype=torch.float32, device=device)
        window_targets = 0
        window_tokens = 0
        window_seconds = 0.0
        grad_norm: Any = None
        stop_requested = False
        with _StopSignals() as signals:
            while state.step < self.total_steps:
                started = time.perf_counter()
                step = state.step
                epoch, index = divmod(step, self.batches.steps_per_epoch)
                micro = self.batches.step_batches(epoch, index)
                # Whole-step counts (all ranks'), from the host: normalising needs no communication.
                step_targets, step_tokens = self.parallel.step_counts(self.batches, micro)
                lr = self._set_lr(step)
                for i, mb in enumerate(micro):
                    mb = mb.to(device)
                    with self.parallel.gradient_sync(i == len(micro) - 1):
                        with autocast(self.placement):
                            loss_sum = self.step_loss(mb)
                        # Data-parallel engines average gradients over ranks; the scale makes it a sum.
                        scaled = loss_sum * self.parallel.loss_scale / max(1, step_targets)
                        if self.scaler is not None:
                            self.scaler.scale(scaled).backward()
                        else:
                            scaled.backward()
                    window_loss += loss_sum.detach().float()
                window_tokens += step_tokens
                window_targets += step_targets
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                if settings.max_grad_norm > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.params, settings.max_grad_norm, foreach=True)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                state.step += 1
                state.tokens_seen += step_tokens
                elapsed = time.perf_counter() - started
                state.train_seconds += elapsed
                window_seconds += elapsed

                stop_requested = stop_requested or bool(getattr(self.events, "stop_requested", False))
                if self.parallel.world > 1:  # all ranks must stop at the same step
                    stop_requested, signals.received = self.parallel.agree_stop(stop_requested, signals.received)
                last = state.step == self.total_steps
                wants_save = (state.step % settings.save_steps == 0 and not last) or signals.received
                if state.step % settings.logging_steps == 0 or last or wants_save or stop_requested:
                    # the one sync per logged step
                    loss = self.parallel.sum(window_loss).item() / max(1, window_targets)
                    norm = self.parallel.scalar(grad_norm) if grad_norm is not None else None
                    finite = math.isfinite(loss) and (norm is None or math.isfinite(norm) or self.scaler is not None)
                    if not finite:
                        return self._non_finite(state, loss, norm, lr)
                    self._progress(state, lr, loss, norm, window_tokens, window_seconds)
                    window_loss.zero_()
                    window_targets = window_tokens = 0
                    window_seconds = 0.0
                due = bool(self.eval_every) and state.step % (self.eval_every or 1) == 0 and not last
                # Early stopping also needs the last step's loss, to keep whichever weights are best.
                if self.evaluate and (due or (last and self.early_stopping)):
                    metrics = self._evaluate_isolated()
                    state.eval_history.append({"step": state.step, **metrics})
                    self.events("eval", phase="during", step=state.step, metrics=metrics)
                    if self.early_stopping and self._watch(state, metrics) and not last:
                        return self._finish(state, patience_used_up=True)
                if wants_save:
                    path = self.save_checkpoint(state)
                    if signals.received:
                        return LoopOutcome("cancelled", state,
                                           f"stopped by {signals.received} at step {state.step}/{self.total_steps}; "
                                           "resume with --resume", path)
                if stop_requested:
                    path = self.save_checkpoint(state)
                    return LoopOutcome("stopped", state, f"a training callback stopped the run at step {state.step}",
                                       path)
        if self.early_stopping:
            return self._finish(state, patience_used_up=False)
        return LoopOutcome("completed", state)

    def _non_finite(self, state: LoopState, loss: float, norm: float | None, lr: float) -> LoopOutcome:
        last_good = self.store.latest()
        what = "loss" if not math.isfinite(loss) else "gradient norm"
        hints = [f"lower the learning rate (now {self.learning_rate:g}; try {self.learning_rate / 4:g})",
                 "keep max_grad_norm at 1.0 or lower"]
        if self.placement.precision == "fp16":
            hints.append("use precision bf16 or fp32 (fp16 overflows more easily)")
        hints.append("check the data for extremely long or repeated sequences")
        message = (f"the {what} became non-finite ({loss if what == 'loss' else norm}) by step {state.step} "
                   f"(lr {lr:.3g}); stopped without saving these weights. "
                   + (f"Last good checkpoint: {last_good}. " if last_good else "No checkpoint was written yet. ")
                   + "Try: " + "; ".join(hints) + ".")
        self.events("error", message=message, kind="non_finite_loss", step=state.step)
        return LoopOutcome("non_finite", state, message, str(last_good) if last_good else None)


def trainable_summary(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts (shared tensors counted once)."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def named_trainable(model: Any) -> Sequence[tuple[str, Any]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
