"""Model FLOPs utilisation: this device's bf16 matmul peak and tunewise's training throughput, one run.

MFU = flops_per_token × tokens/s ÷ peak, with flops_per_token = 6·N for full fine-tuning and 4·N for
LoRA (frozen weights need no weight gradients), N = the model's parameters (ESTIMATION.md). Goals:
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

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "support_chat.jsonl"

SIZES = {
    # name: (hidden, layers, intermediate, heads, kv_heads)
    "0.5b": (1280, 24, 3584, 20, 4),
    "1b": (2048, 16, 5632, 32, 8),
}


def matmul_peak_tflops(device: str, seconds: float = 3.0) -> float:
    """Best sustained bf16 matmul rate on ``device`` (square matrices, several sizes)."""
    import torch

    best = 0.0
    sizes = (4096, 8192) if device.startswith("cuda") else (1024, 2048)
    for n in sizes:
        a = torch.randn(n, n, dtype=torch.bfloat16, device=device)
        b = torch.randn(n, n, dtype=torch.bfloat16, device=device)
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
    """Median tokens/s over the steps after warm-up, and the run's peak memory (GB)."""
    from tunewise.advisor.runner import run_plan
    from tunewise.plugins.types import Plan

    config = {"target_modules": "all-linear"} if method == "lora" else {}
    plan = Plan(
        method=method, model=model, data=(str(args.data),), config=config,
        training={"max_steps": args.steps, "batch_size": args.batch, "seq_len": args.seq_len,
                  "eval_fraction": 0.05, "eval_max_examples": 8, "generation_examples": 0,
                  "save_steps": 10_000, "device": args.device, "gradient_checkpointing": args.recompute},
        output_dir=str(out),
    )
    result, code = run_plan(plan, show_progress=False)
    if code != 0:
        raise SystemExit(f"{method} run failed: {result.message}")
    rates = []
    peak = 0.0
    for line in (out / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "progress" and event["step"] > args.warmup:
            rates.append(event["tokens_per_s"])
        peak = max(peak, float(event.get("peak_memory_gb") or 0.0))
    if not rates:
        raise SystemExit(f"{method}: no progress events after warm-up step {args.warmup}; raise --steps")
    return statistics.median(rates), peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="local model folder (default: the embedded model)")
    parser.add_argument("--build", choices=sorted(SIZES), help="train a random model of this size instead")
    parser.add_argument("--methods", default="lora,full_finetune")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="steps excluded from the rate")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--recompute", action="store_true", help="gradient checkpointing")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()

    import torch
    from tunewise.plugins.models import model_info, resolve_model

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    args.device = device
    work = Path(tempfile.mkdtemp(prefix="tunewise-mfu-"))
    model = args.model
    if args.build:
        model = str(build_model(args.build, work / f"llama-{args.build}", resolve_model(None).path))
    info = model_info(model)
    params = info.parameters
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    peak = matmul_peak_tflops(device)
    print(f"device            {name}")
    print(f"bf16 matmul peak  {peak:8.2f} TFLOP/s (measured now)")
    print(f"model             {info.name}: {params / 1e6:.1f} M parameters, seq_len {args.seq_len}, batch {args.batch}")
    for method in args.methods.split(","):
        rate, mem = train_tokens_per_s(method, model, args, work / method)
        per_token = (4 if method == "lora" else 6) * params
        mfu = per_token * rate / (peak * 1e12)
        print(f"{method:17s} {rate:10.1f} tokens/s   {per_token / 1e9:.2f} GFLOP/token   MFU {mfu:6.1%}   "
              f"peak memory {mem:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
