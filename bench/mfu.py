"""Model FLOPs utilisation: this device's matmul peak and tunewise's training throughput, in one run.

MFU = flops_per_token × tokens/s ÷ peak, with flops_per_token = 6·N for full fine-tuning and 4·N for
LoRA (frozen weights need no weight gradients), N = the model's parameters (ESTIMATION.md), and the
peak measured in the precision the run computes in (bf16 on GPUs and AMX CPUs, fp32 on CPUs without
fast bf16), right before and after each run (the higher of the two). Rates count the steps after ``--warmup``. Goals:
≥30 % on this CPU for the embedded model, ≥40 % on an H100 for a 0.5–1B model.

    python bench/mfu.py                               # embedded model, LoRA and full, on this CPU
    python bench/mfu.py --build 0.5b --seq-len 2048 --batch 8 --steps 30   # a random 0.5B model (GPU)

``--build`` makes a randomly initialised Llama of the named size with the embedded model's tokenizer
(no hub needed: throughput does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Before torch loads: tunewise's device module sets the OpenMP wait policy the training runs use, so
# that the matmul peak below is measured under the same runtime settings as the training.
import tunewise.methods._hf.device  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "support_chat.jsonl"

SIZES = {
    # name: (hidden, layers, intermediate, heads, kv_heads)
    "0.5b": (1280, 24, 3584, 20, 4),
    "1b": (2048, 16, 5632, 32, 8),
}


def matmul_peak_tflops(device: str, dtype_name: str, seconds: float = 3.0) -> float:
    """Best sustained matmul rate on ``device`` in the dtype the run computes in (square matrices).

    The dtype matters: on a CPU without AMX/AVX512-BF16, bf16 matmuls are emulated at a few GFLOP/s,
    so a bf16 peak would make an fp32 run look many times faster than the hardware.
    """
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype_name, torch.float32)
    best = 0.0
    sizes = (4096, 8192) if device.startswith("cuda") else (1024, 2048)
    for n in sizes:
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        for _ in range(3):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / len(sizes):
            a @ b
            count += 1
            if device.startswith("cuda") and count % 10 == 0:
                torch.cuda.synchronize()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        best = max(best, 2 * n**3 * count / elapsed / 1e12)
    return best


def build_model(size: str, out: Path, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    hidden, layers, inter, heads, kv = SIZES[size]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, intermediate_size=inter,
        num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=8192, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def train_tokens_per_s(method: str, model: str | None, args: argparse.Namespace, out: Path) -> tuple[float, float]:
    """Tokens/s over the steps after warm-up (their tokens over their time), and the run's peak memory (GB)."""
    from tunewise.advisor.runner import run_plan
    from tunewise.plugins.types import Plan

    config = {"target_modules": "all-linear"} if method == "lora" else {}
    plan = Plan(
        method=method, model=model, data=(str(args.data),), config=config,
        training={"max_steps": args.steps, "batch_size": args.batch, "seq_len": args.seq_len,
                  "eval_fraction": 0.0, "generation_examples": 0, "precision": args.precision,
                  "save_steps": 10_000, "device": args.device, "gradient_checkpointing": args.recompute},
        output_dir=str(out),
    )
    result, code = run_plan(plan, show_progress=False)
    if code != 0:
        raise SystemExit(f"{method} run failed: {result.message}")
    marks: list[tuple[float, int]] = [(0.0, 0)]
    peak = 0.0
    for line in (out / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "progress":
            marks.append((float(event["elapsed_s"]), int(event["tokens_seen"])))
        peak = max(peak, float(event.get("peak_memory_gb") or 0.0))
    if len(marks) <= args.warmup + 1:
        raise SystemExit(f"{method}: no progress events after warm-up step {args.warmup}; raise --steps")
    (t0, n0), (t1, n1) = marks[args.warmup], marks[-1]
    return (n1 - n0) / (t1 - t0), peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="local model folder (default: the embedded model)")
    parser.add_argument("--build", choices=sorted(SIZES), help="train a random model of this size instead")
    parser.add_argument("--methods", default="lora,full_finetune")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="steps excluded from the rate")
    parser.add_argument("--repeats", type=int, default=2, help="runs per method (the median is reported)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--recompute", action="store_true", help="gradient checkpointing")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()

    import torch
    from tunewise.methods._hf.device import resolve_placement
    from tunewise.plugins.models import model_info, resolve_model

    placement = resolve_placement(args.device, args.precision)
    device = args.device = placement.device
    work = Path(tempfile.mkdtemp(prefix="tunewise-mfu-"))
    model = args.model
    if args.build:
        model = str(build_model(args.build, work / f"llama-{args.build}", resolve_model(None).path))
    info = model_info(model)
    params = info.parameters
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device            {name}, {placement.precision} compute")
    print(f"model             {info.name}: {params / 1e6:.1f} M parameters, seq_len {args.seq_len}, batch {args.batch}")
    summary: dict[str, object] = {"device": name, "precision": placement.precision, "parameters": params,
                                  "seq_len": args.seq_len, "batch": args.batch, "steps": args.steps, "methods": {}}
    peaks: list[float] = []
    for method in args.methods.split(","):
        per_token = (4 if method == "lora" else 6) * params
        rates, mfus, mems = [], [], []
        for repeat in range(args.repeats):
            # The peak is measured right before and right after each run and the higher one is used: on a
            # shared machine both see about the run's load, and a dip during one 3-second sample
            # would otherwise inflate the MFU.
            before = matmul_peak_tflops(device, placement.precision)
            rate, mem = train_tokens_per_s(method, model, args, work / f"{method}-{repeat}")
            peak = max(before, matmul_peak_tflops(device, placement.precision))
            peaks.append(peak)
            rates.append(rate)
            mfus.append(per_token * rate / (peak * 1e12))
            mems.append(mem)
            print(f"  {method:15s} run {repeat + 1}: peak {peak * 1e3:7.1f} GFLOP/s, {rate:8.1f} tokens/s, "
                  f"MFU {mfus[-1]:6.1%}", flush=True)
        rate, mfu = statistics.median(rates), statistics.median(mfus)
        print(f"{method:17s} {rate:10.1f} tokens/s   {per_token / 1e9:.2f} GFLOP/token   MFU {mfu:6.1%}   "
              f"peak memory {max(mems):.2f} GB")
        summary["methods"][method] = {"tokens_per_s": round(rate, 2), "mfu": round(mfu, 4),  # type: ignore[index]
                                      "peak_memory_gb": round(max(mems), 3), "gflop_per_token": per_token / 1e9}
    summary["matmul_peak_tflops"] = round(statistics.median(peaks), 5)
    print(f"{placement.precision} matmul peak  {statistics.median(peaks) * 1e3:8.1f} GFLOP/s (median of the "
          f"{len(peaks)} runs' peaks, each the higher of before and after the run)")
    print("RESULT " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
