"""Estimator vs reality: calibrate with ``tunewise probe``, then predict and measure other sizes and lengths.

1. ``tunewise probe`` for LoRA and for full fine-tuning on the probe model (the embedded SmolLM2-135M
   unless ``--probe-model``), stored in a private calibration store (``TUNEWISE_DATA_DIR`` is set to a
   temporary folder unless ``--data-dir``), exactly as a user would calibrate;
2. for every row of the grid (model size × sequence length × method) predicts seconds per optimizer
   step and peak memory with the functions quotes use (:func:`tunewise.advisor.probe.predict_step`,
   i.e. :func:`tunewise.plugins.costs.training_quote` with the stored calibration);
3. trains the row for real through the method plugin (the same :func:`tunewise.advisor.probe.measure`
   the probe uses) in a fresh process, so its peak-memory reading is its own.

Definitions (the ones the probe calibrates and the quotes predict): step time = tokens per step ÷ the
median tokens/s of the steps after the first three; peak memory = the training process's peak
resident set size (``ru_maxrss``) on a CPU, ``torch.cuda.max_memory_allocated`` on a GPU.

Known gap (measured here on 2 shared CPU cores): memory transfers across sizes (fp32 runs are now
predicted as fp32), step time does not: the calibrated MFU folds in the optimizer step, a per-step
cost that does not grow with tokens (≈1 s for full fine-tuning of a 30–60M model here, from the
128- vs 256-token rows), so quotes for more tokens per step or shallower models come out too slow.
Probe the model and setup you will train for a time figure (bench/probe_accuracy.py: within ±20 %).

Models other than the embedded one are randomly initialised Llamas built here with the embedded
tokenizer (step time and memory do not depend on the weights' values).

    python bench/estimate_vs_measured.py            # quick grid (~10 min on an idle 2-core CPU)
    python bench/estimate_vs_measured.py --full     # 30M/60M/135M/250M × 128/256/512 × LoRA/full
    python bench/estimate_vs_measured.py --models 30m --seq-lens 128 --methods lora --steps 5   # smallest

Ends with one ``RESULT {json}`` line.
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

TOLERANCE = 0.20
EMBEDDED = "135m"
SIZES = {
    # name: (hidden, layers, intermediate, heads, kv_heads); tied embeddings, the embedded 49,152 vocabulary
    "30m": (384, 6, 1024, 6, 2),
    "60m": (512, 10, 1408, 8, 4),
    "250m": (1024, 18, 2816, 16, 4),
}
QUICK = [("30m", 128), ("30m", 256), ("30m", 512), ("60m", 256)]
METHODS = {"lora": "lora", "full": "full_finetune"}


def build_model(size: str, out: Path) -> Path:
    """A random Llama of ``size`` with the embedded model's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from tunewise.plugins.models import resolve_model

    hidden, layers, inter, heads, kv = SIZES[size]
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(None).path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, intermediate_size=inter,
        num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def model_path(size: str, work: Path) -> str:
    from tunewise.plugins.models import resolve_model

    if size == EMBEDDED:
        return str(resolve_model(None).path)
    folder = work / f"llama-{size}"
    if not (folder / "config.json").exists():
        build_model(size, folder)
    return str(folder)


def _tunewise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunewise.advisor.cli", *args], capture_output=True, text=True,
                          check=False)


def probe(method: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = ["probe", "--method", method, "--steps", str(args.probe_steps), "--seq-len", str(args.probe_seq_len),
           "--batch-size", str(args.batch_size), "--format", "json"]
    if args.probe_model:
        cmd += ["--model", args.probe_model_path]
    proc = _tunewise(*cmd)
    if proc.returncode != 0:
        sys.exit(f"tunewise {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout)["calibration"])


def measure_fresh(method: str, model: str, seq_len: int, args: argparse.Namespace) -> dict[str, Any]:
    """One real short training in its own process (peak RSS is per process)."""
    cmd = [sys.executable, __file__, "--measure-only", "--method", method, "--model", model,
           "--seq-lens", str(seq_len), "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"measurement {method} {model} seq {seq_len} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def error(predicted: float, measured: float) -> float:
    """Signed error of the prediction, as a fraction of the measurement."""
    return (predicted - measured) / measured if measured else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--full", action="store_true", help="the whole grid: 30m,60m,135m,250m × 128,256,512")
    parser.add_argument("--models", default=None, help=f"sizes to run, from {', '.join([*SIZES, EMBEDDED])}")
    parser.add_argument("--seq-lens", default=None, help="sequence lengths (comma-separated)")
    parser.add_argument("--methods", default="lora,full", help="lora,full")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per row (the first 3 are warm-up)")
    parser.add_argument("--batch-size", type=int, default=2, help="sequences per step")
    parser.add_argument("--probe-steps", type=int, default=6)
    parser.add_argument("--probe-seq-len", type=int, default=128)
    parser.add_argument("--probe-model", default=None,
                        help="model the probe calibrates with: a folder or one of the sizes (default: embedded)")
    parser.add_argument("--data-dir", default=None,
                        help="calibration store folder (default: a temporary one; your own store is not touched)")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from tunewise.advisor.probe import measure

    if args.measure_only:
        m = measure(args.method, model=args.model, steps=args.steps, seq_len=int(args.seq_lens),
                    batch_size=args.batch_size)
        print(json.dumps({"step_time_s": m.step_time_s, "peak_memory_gb": m.peak_memory_gb,
                          "tokens_per_s": m.tokens_per_s, "per_step_tokens_per_s": m.per_step_tokens_per_s}))
        return 0

    if args.models or args.seq_lens:
        models = (args.models or "30m").split(",")
        lens = [int(s) for s in (args.seq_lens or "256").split(",")]
        grid = [(m, s) for m in models for s in lens]
    elif args.full:
        grid = [(m, s) for m in ("30m", "60m", EMBEDDED, "250m") for s in (128, 256, 512)]
        args.steps = max(args.steps, 8)
        args.probe_steps = max(args.probe_steps, 10)
        args.probe_seq_len = max(args.probe_seq_len, 256)
    else:
        grid = list(QUICK)
    for size, _ in grid:
        if size not in SIZES and size != EMBEDDED:
            sys.exit(f"--models: unknown size {size!r}; choose from {', '.join([*SIZES, EMBEDDED])}")
    methods = [m.strip() for m in args.methods.split(",")]
    for m in methods:
        if m not in METHODS:
            sys.exit(f"--methods: unknown method {m!r}; choose from lora, full")

    store = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="tunewise-evm-store-"))
    os.environ["TUNEWISE_DATA_DIR"] = str(store)
    work = Path(tempfile.mkdtemp(prefix="tunewise-evm-models-"))
    started = time.perf_counter()

    from tunewise.advisor.hardware import find_hardware
    from tunewise.advisor.probe import detect_hardware, predict_step
    from tunewise.plugins import costs

    if args.probe_model:
        args.probe_model_path = model_path(args.probe_model, work) if args.probe_model in SIZES else args.probe_model
    print(f"calibration store: {store}")
    cals = {}
    for m in methods:
        cal = probe(METHODS[m], args)
        cals[m] = cal
        print(f"probe {METHODS[m]:<13} {cal['model']} seq {cal['seq_len']} batch {cal['micro_batch']}: "
              f"{cal['tokens_per_s']:.1f} tokens/s, MFU {cal['mfu']:.4f} of {cal['peak_tflops']:.4f} TFLOP/s, "
              f"peak {cal['peak_memory_gb']:.3f} GB (formula {cal['predicted_memory_gb']:.3f} GB)")
    hardware = find_hardware(detect_hardware().name)  # now carries the calibrations just stored

    header = (f"{'model':<6} {'params':>7} {'method':<5} {'seq':>4} {'batch':>5} | {'step s pred':>11} "
              f"{'meas':>8} {'err':>7} | {'peak GB pred':>12} {'meas':>6} {'err':>7}")
    print(header)
    print("-" * len(header))
    rows: list[dict[str, Any]] = []
    for size, seq_len in grid:
        path = model_path(size, work)
        shape = costs.resolve_shape(path, 0.1)
        for m in methods:
            step_pred, mem_pred, _ = predict_step(METHODS[m], shape, hardware, seq_len, args.batch_size)
            fresh = measure_fresh(METHODS[m], path, seq_len, args)
            t_err = error(step_pred, fresh["step_time_s"])
            m_err = error(mem_pred, fresh["peak_memory_gb"])
            row = {"model": size, "params": int(shape.params), "method": m, "seq_len": seq_len,
                   "batch": args.batch_size, "step_s_pred": round(step_pred, 4),
                   "step_s_meas": round(fresh["step_time_s"], 4), "step_err": round(t_err, 4),
                   "mem_gb_pred": round(mem_pred, 3), "mem_gb_meas": round(fresh["peak_memory_gb"], 3),
                   "mem_err": round(m_err, 4), "per_step_tokens_per_s": fresh["per_step_tokens_per_s"]}
            rows.append(row)
            print(f"{size:<6} {shape.params / 1e6:6.1f}M {m:<5} {seq_len:>4} {args.batch_size:>5} | "
                  f"{step_pred:11.3f} {fresh['step_time_s']:8.3f} {t_err:+7.1%} | "
                  f"{mem_pred:12.3f} {fresh['peak_memory_gb']:6.3f} {m_err:+7.1%}", flush=True)

    within_t = sum(abs(r["step_err"]) <= TOLERANCE for r in rows) / len(rows)
    within_m = sum(abs(r["mem_err"]) <= TOLERANCE for r in rows) / len(rows)
    med_t = statistics.median(abs(r["step_err"]) for r in rows)
    med_m = statistics.median(abs(r["mem_err"]) for r in rows)
    print(f"step time within ±{TOLERANCE:.0%}: {within_t:.0%} of {len(rows)} rows (median |error| {med_t:.1%})")
    print(f"peak memory within ±{TOLERANCE:.0%}: {within_m:.0%} of {len(rows)} rows (median |error| {med_m:.1%})")
    print("memory = process peak RSS (CPU) / CUDA max allocated (GPU), as the probe calibrates it")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"bench": "estimate_vs_measured", "device": hardware.name, "rows": len(rows),
              "step_within_20pct": round(within_t, 3), "memory_within_20pct": round(within_m, 3),
              "step_median_abs_err": round(med_t, 4), "memory_median_abs_err": round(med_m, 4),
              "probe": {m: {k: c[k] for k in ("mfu", "tokens_per_s", "peak_memory_gb", "predicted_memory_gb",
                                                "peak_tflops", "seq_len", "micro_batch")} for m, c in cals.items()},
              "load_avg_1m": load, "wall_s": round(time.perf_counter() - started, 1),
              "table": [{k: v for k, v in r.items() if k != "per_step_tokens_per_s"} for r in rows]}
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
