"""Training throughput, tunewise vs trl's SFTTrainer: same model, data, sequence length, batch and steps.

Each run trains the embedded model (SmolLM2-135M-Instruct) on ``examples/data/support_chat.jsonl``
for ``--steps`` optimizer steps, in a fresh subprocess, alternating engines, ``--repeats`` times.
The rate of a run is the non-padding tokens of its timed steps (the steps after ``--warmup``) over
their wall time (collation, forward, backward, clipping and optimizer step included); the figure
of an engine is the median over repeats. Printed last: the ratio tunewise / trl per method.

Both engines get the same precision (``--precision auto`` resolves as tunewise does: bf16 autocast
on CPUs with AMX/AVX512-BF16 and on GPUs, fp32 on CPUs without, where bf16 matmuls are emulated),
the same LoRA settings through peft (r 8, alpha 32, dropout 0.1, q_proj/v_proj), the same learning
rate and schedule. trl runs at its SFTTrainer defaults otherwise (no packing, gradient
checkpointing on, loss on the whole conversation); ``--trl packed`` also runs it with packing
(best-fit decreasing, padding-free) and without gradient checkpointing, i.e. trl at its fastest.
tunewise runs at its defaults (packing, loss on assistant tokens only). Both get the same
``OMP_WAIT_POLICY`` (``--omp-wait-policy``, default PASSIVE, what tunewise picks when the cores are
busy; ``inherit`` keeps libgomp's default, which is faster on idle cores).

    python bench/train_throughput.py                          # LoRA and full, 6 steps, 2 repeats
    python bench/train_throughput.py --steps 10 --repeats 3 --trl defaults,packed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "support_chat.jsonl"
LORA = {"r": 8, "alpha": 32, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
LEARNING_RATE = {"lora": 2e-4, "full_finetune": 2e-5}


def timed_rate(marks: list[tuple[float, int]], warmup: int) -> tuple[float, int, float]:
    """(tokens/s, tokens, seconds) over the steps after ``warmup`` from cumulative (seconds, tokens) marks.

    ``marks[i]`` is the cumulative training time and tokens after step ``i`` (``marks[0]``: before step 1).
    """
    if len(marks) <= warmup + 1:
        raise SystemExit(f"only {len(marks) - 1} steps were recorded; raise --steps above --warmup {warmup}")
    t0, n0 = marks[warmup]
    t1, n1 = marks[-1]
    return (n1 - n0) / (t1 - t0), n1 - n0, t1 - t0


# -- workers (each runs in its own process) ---------------------------------------------------------


def run_tunewise(method: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from tunewise.advisor.runner import run_plan
    from tunewise.plugins.types import Plan

    config = dict(LORA) if method == "lora" else {}
    plan = Plan(
        method=method, model=None, data=(str(args.data),), config=config,
        training={"max_steps": args.steps, "batch_size": args.batch, "seq_len": args.seq_len,
                  "learning_rate": LEARNING_RATE[method], "precision": args.precision, "eval_fraction": 0.0,
                  "generation_examples": 0, "save_steps": 10_000, "logging_steps": 1, "device": "cpu"
                  if args.device == "cpu" else "auto"},
        output_dir=str(out),
    )
    result, code = run_plan(plan, show_progress=False)
    if code != 0:
        raise SystemExit(f"tunewise {method} failed: {result.message}")
    marks = [(0.0, 0)]
    device = ""
    for line in (out / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "progress":
            marks.append((float(event["elapsed_s"]), int(event["tokens_seen"])))
        elif event["event"] == "start":
            device = str(event.get("device", ""))  # e.g. "cpu (fp32)"
    rate, tokens, seconds = timed_rate(marks, args.warmup)
    return {"tokens_per_s": rate, "tokens": tokens, "seconds": seconds,
            "precision": device.partition("(")[2].rstrip(")") or args.precision}


def run_trl(method: str, variant: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer
    from tunewise.methods._hf.device import resolve_placement
    from tunewise.plugins.models import resolve_model

    placement = resolve_placement("cpu" if args.device == "cpu" else "auto", args.precision)
    model_path = resolve_model(None).path
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{"messages": r["messages"]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
    packed = variant == "packed"
    config = SFTConfig(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch,
        max_length=args.seq_len, learning_rate=LEARNING_RATE[method], lr_scheduler_type="cosine",
        # warmup_steps below 1 is a fraction of the steps (transformers 5 has no warmup_ratio)
        warmup_steps=0.05, max_grad_norm=1.0, seed=42, logging_steps=1, save_strategy="no", report_to=[],
        bf16=placement.precision == "bf16", fp16=placement.precision == "fp16",
        use_cpu=not placement.is_cuda, dataloader_num_workers=0, disable_tqdm=True,
        **({"packing": True, "gradient_checkpointing": False} if packed else {}),
    )
    peft_config = None
    if method == "lora":
        peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                 target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    counted: list[int] = []

    class CountingTrainer(SFTTrainer):  # type: ignore[misc]
        """Counts the non-padding tokens each micro-batch trains on (host-side: the tensors are on CPU)."""

        def training_step(self, model: Any, inputs: dict[str, Any], *rest: Any, **kw: Any) -> Any:
            mask = inputs.get("attention_mask")
            # padding-free batches carry no mask: every token of the flattened row is real
            counted.append(int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel()))
            return super().training_step(model, inputs, *rest, **kw)

    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            marks.append((time.perf_counter(), 0))

        def on_step_end(self, *a: Any, **k: Any) -> None:
            marks.append((time.perf_counter(), sum(counted)))

    trainer = CountingTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                              peft_config=peft_config, callbacks=[Clock()])
    trainer.train()
    start = marks[0][0]
    rate, tokens, seconds = timed_rate([(t - start, n) for t, n in marks], args.warmup)
    return {"tokens_per_s": rate, "tokens": tokens, "seconds": seconds, "precision": placement.precision,
            "gradient_checkpointing": bool(config.gradient_checkpointing), "packing": bool(config.packing)}


def worker(args: argparse.Namespace) -> int:
    out = Path(tempfile.mkdtemp(prefix=f"tunewise-tp-{args.worker}-"))
    engine, _, variant = args.worker.partition(":")
    if engine == "tunewise":
        result = run_tunewise(args.method, args, out)
    else:
        result = run_trl(args.method, variant, args, out)
    print("WORKER " + json.dumps(result), flush=True)
    return 0


# -- the comparison ---------------------------------------------------------------------------------


def spawn(engine: str, method: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", engine, "--method", method, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--seq-len", str(args.seq_len),
               "--precision", args.precision, "--device", args.device, "--data", str(args.data)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    # Both engines run under the same OpenMP wait policy (tunewise sets PASSIVE for its own runs; the
    # trl worker imports torch first, so it only gets one this way): the ratio compares training code.
    if args.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WORKER "):
            return dict(json.loads(line[len("WORKER "):]))
    raise SystemExit(f"{engine} {method} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="lora,full_finetune")
    parser.add_argument("--trl", default="defaults", help="trl variants: defaults, packed (comma-separated)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1, help="steps excluded from the rate")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE", "inherit"),
                        help="OMP_WAIT_POLICY for both engines (inherit: this shell's environment)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    methods = args.methods.split(",")
    engines = ["tunewise", *[f"trl:{v}" for v in args.trl.split(",")]]
    print(f"train throughput: embedded model, {args.data.name}, seq_len {args.seq_len}, batch {args.batch}, "
          f"{args.steps} steps ({args.warmup} warm-up), {args.repeats} repeats, precision {args.precision}, "
          f"OMP_WAIT_POLICY {args.omp_wait_policy}")
    rates: dict[tuple[str, str], list[float]] = {}
    details: dict[tuple[str, str], dict[str, Any]] = {}
    for repeat in range(args.repeats):
        for method in methods:
            # alternate the order so neither engine always runs on a warmer (or busier) machine
            order = engines if repeat % 2 == 0 else engines[::-1]
            for engine in order:
                result = spawn(engine, method, args)
                rates.setdefault((method, engine), []).append(result["tokens_per_s"])
                details[(method, engine)] = result
                print(f"  repeat {repeat + 1}  {method:13s} {engine:13s} {result['tokens_per_s']:9.1f} tokens/s "
                      f"({result['tokens']} tokens in {result['seconds']:.1f} s, {result['precision']})", flush=True)
    summary: dict[str, Any] = {"seq_len": args.seq_len, "batch": args.batch, "steps": args.steps,
                               "repeats": args.repeats, "precision": details[(methods[0], "tunewise")]["precision"],
                               "methods": {}}
    print()
    for method in methods:
        ours = statistics.median(rates[(method, "tunewise")])
        entry: dict[str, Any] = {"tunewise_tokens_per_s": round(ours, 2)}
        for engine in engines[1:]:
            theirs = statistics.median(rates[(method, engine)])
            variant = engine.split(":")[1]
            entry[f"trl_{variant}_tokens_per_s"] = round(theirs, 2)
            entry[f"ratio_vs_trl_{variant}"] = round(ours / theirs, 3)
            print(f"{method:13s} tunewise {ours:9.1f} tokens/s   trl ({variant}) {theirs:9.1f} tokens/s   "
                  f"ratio tunewise/trl {ours / theirs:5.2f}x")
        summary["methods"][method] = entry
    print("RESULT " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
