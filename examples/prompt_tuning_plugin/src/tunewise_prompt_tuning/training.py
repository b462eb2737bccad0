"""Running a prompt-tuning plan: evaluate the base, train the virtual tokens, evaluate, save.

Only tunewise's public API is used (model loading, data reading, the event stream); the training
loop is this plugin's own, short because only the prompt embedding trains:

1. read the data and hold out examples by content hash;
2. evaluate the plain base model (held-out loss on the answers, greedy exact match);
3. wrap it with peft's ``PromptTuningConfig`` and train the virtual tokens with AdamW;
4. evaluate again with the learned prompt, save it with ``save_pretrained`` (safetensors), write a
   report. Events follow :mod:`tunewise.plugins.events`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tunewise.plugins import EventSink, Plan, RunResult
from tunewise.plugins.models import load_model, load_tokenizer, resolve_model

from tunewise_prompt_tuning.examples import IGNORE, Example, Examples, load_examples
from tunewise_prompt_tuning.settings import PromptTuningSettings, RunSettings, read_settings

METHOD = "prompt_tuning"
ADAPTER_DIR = "adapter"


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak rate at 0-based ``step``: linear warmup, then the decay schedule to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, max(0.0, (step - warmup + 1) / max(1, total - warmup)))
    return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))


def _device(settings: RunSettings) -> Any:
    import torch

    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)


def _autocast_dtype(settings: RunSettings, device: Any) -> Any:
    """bf16 autocast when asked, or on ``auto`` with a GPU that supports it; None means fp32."""
    import torch

    if settings.precision == "bf16":
        return torch.bfloat16
    if settings.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _batch(examples: Sequence[Example], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    import torch

    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        mask[row, : len(e.ids)] = 1
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
    return ids.to(device), mask.to(device), labels.to(device)


def summed_loss(model: Any, examples: Sequence[Example], pad_id: int, virtual_tokens: int, device: Any,
                dtype: Any) -> Any:
    """Summed next-token cross-entropy over the answer tokens (the virtual positions are not scored)."""
    import torch
    import torch.nn.functional as F

    ids, mask, labels = _batch(examples, pad_id, device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        logits = model(input_ids=ids, attention_mask=mask).logits
    logits = logits[:, virtual_tokens:, :].float()
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def held_out_metrics(model: Any, tokenizer: Any, held: Sequence[Example], settings: RunSettings, pad_id: int,
                     virtual_tokens: int, device: Any, dtype: Any) -> dict[str, float]:
    """Loss per answer token and perplexity on the held-out examples, and greedy exact match on a few."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(held), settings.batch_size):
            chunk = held[start:start + settings.batch_size]
            total += float(summed_loss(model, chunk, pad_id, virtual_tokens, device, dtype))
            count += sum(e.targets for e in chunk)
        loss = total / max(1, count)
        metrics = {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 4),
                   "eval_examples": float(len(held))}
        answered = held[: settings.generation_examples]
        if answered:
            hits = sum(_answers_right(model, tokenizer, e, pad_id, device, dtype) for e in answered)
            metrics["exact_match"] = round(hits / len(answered), 4)
    model.train()
    return metrics


def _answers_right(model: Any, tokenizer: Any, example: Example, pad_id: int, device: Any, dtype: Any) -> bool:
    """Whether greedy decoding reproduces the reference answer (special tokens and spaces ignored)."""
    import torch

    prompt = [t for t, label in zip(example.ids, example.labels, strict=True) if label == IGNORE]
    answer = [t for t, label in zip(example.ids, example.labels, strict=True) if label != IGNORE]
    ids = torch.tensor([prompt], device=device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=len(answer) + 2,
                             do_sample=False, pad_token_id=pad_id)
    produced = tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True).strip()
    reference = tokenizer.decode(answer, skip_special_tokens=True).strip()
    return produced == reference


def _peft_config(config: PromptTuningSettings, model_path: str) -> Any:
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    init = {"text": PromptTuningInit.TEXT, "sample_vocab": PromptTuningInit.SAMPLE_VOCAB,
            "random": PromptTuningInit.RANDOM}[config.init]
    text_init = init == PromptTuningInit.TEXT
    return PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens, prompt_tuning_init=init,
        prompt_tuning_init_text=config.init_text if text_init else None,
        tokenizer_name_or_path=model_path if text_init else None,
    )


def _peak_memory_gb(device: Any) -> float:
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports kB


def run(plan: Plan, events: EventSink) -> RunResult:
    """Run ``plan`` end to end; see the module docstring for the steps."""
    import torch

    wall_start = time.time()
    settings, config, ignored = read_settings(plan)
    out = Path(plan.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref = resolve_model(plan.model)
    tokenizer = load_tokenizer(plan.model)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    data = load_examples(plan.data, tokenizer, settings.seq_len - config.num_virtual_tokens,
                         settings.eval_fraction, settings.eval_max_examples)
    per_step = settings.batch_size * settings.grad_accum
    steps_per_epoch = math.ceil(len(data.train) / per_step)
    total_steps = settings.max_steps or settings.epochs * steps_per_epoch
    device = _device(settings)
    dtype = _autocast_dtype(settings, device)

    if ignored:
        events("log", level="info", message=f"prompt_tuning ignores training.{', training.'.join(ignored)}")
    for note in data.notes:
        events("log", level="warning", message=note)
    events("start", method=METHOD, total_steps=total_steps, plan=plan.to_dict(), device=str(device),
           model=ref.name, data_shape=data.shape, counts={"train": len(data.train), "held_out": len(data.held_out)},
           learning_rate=settings.peak_learning_rate)

    torch.manual_seed(settings.seed)
    model = load_model(plan.model, dtype="float32", device=str(device))
    before = held_out_metrics(model, tokenizer, data.held_out, settings, pad_id, 0, device, dtype)
    events("eval", phase="before", step=0, metrics=before)

    from peft import get_peft_model

    torch.manual_seed(settings.seed)
    peft_model = get_peft_model(model, _peft_config(config, str(ref.path)))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    n_total = sum(p.numel() for p in peft_model.parameters())
    events("log", level="info", message=f"training {n_trainable:,} of {n_total:,} parameters "
                                        f"({config.num_virtual_tokens} virtual tokens) on {device}")
    status, message, steps_done = _train(peft_model, data, settings, config, pad_id, device, dtype, total_steps,
                                         steps_per_epoch, events)
    if status == "failed":
        return RunResult(METHOD, "failed", metrics_before=before, message=message, output_dir=str(out),
                         steps=steps_done, peak_memory_gb=round(_peak_memory_gb(device), 3),
                         wall_s=round(time.time() - wall_start, 2))

    after = held_out_metrics(peft_model, tokenizer, data.held_out, settings, pad_id, config.num_virtual_tokens,
                             device, dtype)
    events("eval", phase="after", step=steps_done, metrics=after)
    adapter = out / ADAPTER_DIR
    peft_model.save_pretrained(str(adapter), safe_serialization=True)
    events("checkpoint", step=steps_done, path=str(adapter))
    metrics_file = out / "metrics.json"
    metrics_file.write_text(json.dumps({"before": before, "after": after}, indent=2) + "\n")
    report = _write_report(out, plan, ref.name, data, settings, config, before, after, steps_done,
                           time.time() - wall_start, n_trainable)
    return RunResult(
        METHOD, status, metrics_before=before, metrics_after=after,
        artifacts={"adapter": str(adapter), "report": str(report), "metrics": str(metrics_file)},
        report=str(report), message=message, output_dir=str(out), steps=steps_done,
        peak_memory_gb=round(_peak_memory_gb(device), 3), wall_s=round(time.time() - wall_start, 2),
    )


def _train(model: Any, data: Examples, settings: RunSettings, config: PromptTuningSettings, pad_id: int,
           device: Any, dtype: Any, total_steps: int, steps_per_epoch: int, events: EventSink,
           ) -> tuple[str, str, int]:
    """The loop: (status, message, steps done).

    Ctrl-C (and SIGTERM under ``tunewise run``) stops it and keeps the prompt learned so far; so does
    a training callback asking to stop (the sink's ``stop_requested``).
    """
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.peak_learning_rate, weight_decay=0.0)
    warmup = round(settings.warmup_ratio * total_steps)
    per_step = settings.batch_size * settings.grad_accum
    order: list[int] = []
    started = time.perf_counter()
    tokens = 0
    model.train()
    step = 0
    try:
        for step in range(total_steps):
            epoch, index = divmod(step, steps_per_epoch)
            if index == 0:
                generator = torch.Generator().manual_seed(settings.seed + epoch)
                order = torch.randperm(len(data.train), generator=generator).tolist()
            picked = [data.train[i] for i in order[index * per_step:(index + 1) * per_step]]
            targets = sum(e.targets for e in picked)
            lr = settings.peak_learning_rate * lr_factor(step, total_steps, warmup, settings.lr_schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = 0.0
            for start in range(0, len(picked), settings.batch_size):
                chunk = picked[start:start + settings.batch_size]
                loss = summed_loss(model, chunk, pad_id, config.num_virtual_tokens, device, dtype) / max(1, targets)
                loss.backward()
                step_loss += float(loss.detach())
                tokens += sum(len(e.ids) + config.num_virtual_tokens for e in chunk)
            if not math.isfinite(step_loss):
                message = (f"the loss became {step_loss} at step {step + 1}; try a lower training.learning_rate "
                           f"(now {lr:.3g}) or training.precision: fp32")
                events("error", message=message, kind="non_finite_loss")
                return "failed", message, step
            if settings.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if (step + 1) % settings.logging_steps == 0 or step + 1 == total_steps:
                elapsed = time.perf_counter() - started
                events("progress", step=step + 1, total_steps=total_steps, loss=round(step_loss, 6), lr=lr,
                       tokens_per_s=round(tokens / max(elapsed, 1e-9), 1), elapsed_s=round(elapsed, 2),
                       eta_s=round(elapsed / (step + 1) * (total_steps - step - 1), 2),
                       epoch=round(epoch + (index + 1) / steps_per_epoch, 3))
            if getattr(events, "stop_requested", False):  # a training callback asked to stop (tunewise run)
                events("log", level="info", message=f"stopped early at step {step + 1} by a training callback")
                return "completed", f"stopped early at step {step + 1} of {total_steps} by a training callback", \
                    step + 1
    except KeyboardInterrupt:
        events("log", level="warning", message=f"interrupted at step {step}: keeping the prompt learned so far")
        return "cancelled", f"cancelled at step {step} of {total_steps}", step
    return "completed", "", total_steps


def _write_report(out: Path, plan: Plan, model: str, data: Examples, settings: RunSettings,
                  config: PromptTuningSettings, before: dict[str, float], after: dict[str, float], steps: int,
                  seconds: float, trainable: int) -> Path:
    rows = [f"| {name} | {before.get(name, float('nan')):.4f} | {after.get(name, float('nan')):.4f} |"
            for name in ("loss", "perplexity", "exact_match") if name in before or name in after]
    lines = [
        f"# Prompt tuning of {model}",
        "",
        f"{steps} steps in {seconds:.0f} s on {len(data.train)} examples ({data.shape}; "
        f"{', '.join(data.files)}), {len(data.held_out)} held out. "
        f"Trained {trainable:,} values: {config.num_virtual_tokens} virtual tokens.",
        "",
        "| held-out metric | before | after |",
        "|---|---|---|",
        *rows,
        "",
        f"Settings: {json.dumps({**asdict(settings), **asdict(config)}, default=str)}",
        "",
        "Load the result with peft:",
        "",
        "```python",
        "from peft import AutoPeftModelForCausalLM",
        f'model = AutoPeftModelForCausalLM.from_pretrained("{out / ADAPTER_DIR}")',
        "```",
        "",
    ]
    if data.notes:
        lines += ["Notes:", "", *(f"- {n}" for n in data.notes), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
