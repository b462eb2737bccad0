"""How close are tunewise's estimates to published training figures? (goal: median absolute error ≤ 20 %)

Each figure is a public number with its source: GPU-hours of published pretraining runs, throughput
and peak memory of published fine-tuning benchmarks. The estimate uses the same functions a quote
uses (:mod:`tunewise.plugins.costs`) with the default MFU (nothing fitted to these figures) and the
model's real shape. Prints one line per figure (estimate, published, signed error), then the median
absolute error overall and per kind.

    python bench/estimator_accuracy.py
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from typing import Literal

from tunewise.plugins import costs
from tunewise.plugins.costs import ModelShape, TrainSetup
from tunewise.plugins.types import Hardware

GIB = 2**30 / 1e9

A100_80 = Hardware("A100-80GB", 312, 80, 1.2, 2.5, memory_bandwidth_gbps=2039)
A100_40 = Hardware("A100-40GB", 312, 40, 1.2, 2.5, memory_bandwidth_gbps=1555)
H100 = Hardware("H100-SXM", 989, 80, 2.0, 3.5, memory_bandwidth_gbps=3350)
RTX4090 = Hardware("RTX4090", 165, 24, 0.34, 0.6, memory_bandwidth_gbps=1008)


def llama(params_b: float, layers: int, hidden: int, heads: int, kv: int, ff: int, vocab: int, ctx: int,
          name: str) -> ModelShape:
    return ModelShape(params=params_b * 1e9, layers=layers, hidden=hidden, heads=heads, kv_heads=kv,
                      intermediate=ff, vocab=vocab, tied_embeddings=False, context=ctx, source=name)


LLAMA1_7B = llama(6.7, 32, 4096, 32, 32, 11008, 32000, 2048, "LLaMA-7B")
LLAMA1_13B = llama(13.0, 40, 5120, 40, 40, 13824, 32000, 2048, "LLaMA-13B")
LLAMA1_33B = llama(32.5, 60, 6656, 52, 52, 17920, 32000, 2048, "LLaMA-33B")
LLAMA1_65B = llama(65.2, 80, 8192, 64, 64, 22016, 32000, 2048, "LLaMA-65B")
LLAMA2_7B = llama(6.74, 32, 4096, 32, 32, 11008, 32000, 4096, "Llama-2-7B")
LLAMA2_13B = llama(13.0, 40, 5120, 40, 40, 13824, 32000, 4096, "Llama-2-13B")
LLAMA2_70B = llama(69.0, 80, 8192, 64, 8, 28672, 32000, 4096, "Llama-2-70B")
LLAMA31_8B = llama(8.03, 32, 4096, 32, 8, 14336, 128256, 8192, "Llama-3.1-8B")
LLAMA31_70B = llama(70.6, 80, 8192, 64, 8, 28672, 128256, 8192, "Llama-3.1-70B")
LLAMA31_405B = llama(405.0, 126, 16384, 128, 8, 53248, 128256, 8192, "Llama-3.1-405B")
BLOOM_176B = ModelShape(176.2e9, 70, 14336, 112, 112, 57344, 250880, True, 2048, "BLOOM-176B")
MPT_7B = ModelShape(6.7e9, 32, 4096, 32, 32, 16384, 50432, True, 2048, "MPT-7B")
TINYLLAMA = llama(1.1, 22, 2048, 32, 4, 5632, 32000, 2048, "TinyLlama-1.1B")
GPT3_175B = ModelShape(175e9, 96, 12288, 96, 96, 49152, 50257, True, 2048, "GPT-3 175B")


@dataclass(frozen=True)
class Figure:
    name: str
    kind: Literal["pretraining GPU-hours", "fine-tuning throughput", "fine-tuning memory"]
    published: float
    unit: str
    source: str


def pretraining_hours(shape: ModelShape, tokens: float, hardware: Hardware, seq_len: int) -> float:
    """GPU-hours a quote gives for training ``shape`` on ``tokens`` (default MFU for a run of that size)."""
    quote = costs.training_quote("pretraining", shape, tokens, hardware, TrainSetup(seq_len=seq_len, gpus=8),
                                 auto_fit=False)
    return quote.gpu_hours


def finetune_tokens_per_s(shape: ModelShape, hardware: Hardware, seq_len: int, qlora: bool) -> float:
    """Throughput a LoRA/QLoRA quote implies for a fine-tuning-sized run (10M tokens); the quote turns on
    recompute only if the setup would not fit otherwise, as it does for users."""
    tokens = 1e7
    quote = costs.training_quote("lora", shape, tokens, hardware,
                                 TrainSetup(seq_len=seq_len, micro_batch=2, quantized_base=qlora, lora_rank=8),
                                 kind="lora")
    return tokens / (quote.wall_hours * 3600)


def finetune_memory_gb(shape: ModelShape, hardware: Hardware, kind: costs.TrainKind, *, qlora: bool = False,
                       seq_len: int = 2048, micro_batch: int = 2, recompute: bool = True, gpus: int = 1) -> float:
    setup = TrainSetup(seq_len=seq_len, micro_batch=micro_batch, recompute=recompute, quantized_base=qlora,
                       lora_rank=8, gpus=gpus, shard_states=gpus > 1)
    return costs.total_gb(costs.training_memory(shape, setup, hardware, kind))


def figures() -> list[tuple[Figure, float]]:
    """(published figure, tunewise's estimate of it)."""
    llama1 = "Touvron et al. 2023, LLaMA, Table 15 (A100-80GB GPU-hours)"
    llama2 = "Touvron et al. 2023, Llama 2, Table 2 (A100-80GB GPU-hours, 2T tokens, 4k context)"
    llama31 = "Meta Llama 3.1 model card (H100-80GB GPU-hours, ~15T tokens, 8k context)"
    torchtune = "torchtune README memory/speed table, Llama-3.1-8B on one RTX 4090 (via ESTIMATION.md)"
    # torchtune's single-device recipes train on Alpaca (unpacked; most examples < 512 tokens), batch 2:
    # quoted as sequences of 512 tokens, micro-batch 2.
    alpaca_seq = 512
    out = [
        (Figure("LLaMA-7B, 1.0T tokens", "pretraining GPU-hours", 82_432, "h", llama1),
         pretraining_hours(LLAMA1_7B, 1.0e12, A100_80, 2048)),
        (Figure("LLaMA-13B, 1.0T tokens", "pretraining GPU-hours", 135_168, "h", llama1),
         pretraining_hours(LLAMA1_13B, 1.0e12, A100_80, 2048)),
        (Figure("LLaMA-33B, 1.4T tokens", "pretraining GPU-hours", 530_432, "h", llama1),
         pretraining_hours(LLAMA1_33B, 1.4e12, A100_80, 2048)),
        (Figure("LLaMA-65B, 1.4T tokens", "pretraining GPU-hours", 1_022_362, "h", llama1),
         pretraining_hours(LLAMA1_65B, 1.4e12, A100_80, 2048)),
        (Figure("Llama-2-7B", "pretraining GPU-hours", 184_320, "h", llama2),
         pretraining_hours(LLAMA2_7B, 2e12, A100_80, 4096)),
        (Figure("Llama-2-13B", "pretraining GPU-hours", 368_640, "h", llama2),
         pretraining_hours(LLAMA2_13B, 2e12, A100_80, 4096)),
        (Figure("Llama-2-70B", "pretraining GPU-hours", 1_720_320, "h", llama2),
         pretraining_hours(LLAMA2_70B, 2e12, A100_80, 4096)),
        (Figure("Llama-3.1-8B", "pretraining GPU-hours", 1_460_000, "h", llama31),
         pretraining_hours(LLAMA31_8B, 15e12, H100, 8192)),
        (Figure("Llama-3.1-70B", "pretraining GPU-hours", 7_000_000, "h", llama31),
         pretraining_hours(LLAMA31_70B, 15e12, H100, 8192)),
        (Figure("Llama-3.1-405B", "pretraining GPU-hours", 30_840_000, "h", llama31),
         pretraining_hours(LLAMA31_405B, 15e12, H100, 8192)),
        (Figure("BLOOM-176B, 366B tokens", "pretraining GPU-hours", 1_082_990, "h",
                "BigScience BLOOM model card (1,082,990 A100-80GB compute hours)"),
         pretraining_hours(BLOOM_176B, 366e9, A100_80, 2048)),
        (Figure("MPT-7B, 1T tokens", "pretraining GPU-hours", 440 * 9.5 * 24, "h",
                "MosaicML, Introducing MPT-7B (440 A100-40GB for 9.5 days)"),
         pretraining_hours(MPT_7B, 1e12, A100_40, 2048)),
        (Figure("TinyLlama-1.1B, 3T tokens", "pretraining GPU-hours", 16 * 90 * 24, "h",
                "Zhang et al. 2024, TinyLlama (16 A100-40GB for 90 days)"),
         pretraining_hours(TINYLLAMA, 3e12, A100_40, 2048)),
        (Figure("Llama-3.1-8B LoRA tokens/s", "fine-tuning throughput", 3083, "tok/s", torchtune),
         finetune_tokens_per_s(LLAMA31_8B, RTX4090, alpaca_seq, qlora=False)),
        (Figure("Llama-3.1-8B QLoRA tokens/s", "fine-tuning throughput", 2413, "tok/s", torchtune),
         finetune_tokens_per_s(LLAMA31_8B, RTX4090, alpaca_seq, qlora=True)),
        (Figure("Llama-3.1-8B LoRA peak memory", "fine-tuning memory", 16.2 * GIB, "GB", torchtune),
         finetune_memory_gb(LLAMA31_8B, RTX4090, "lora", seq_len=alpaca_seq)),
        (Figure("Llama-3.1-8B QLoRA peak memory", "fine-tuning memory", 7.4 * GIB, "GB", torchtune),
         finetune_memory_gb(LLAMA31_8B, RTX4090, "lora", qlora=True, seq_len=alpaca_seq)),
        (Figure("GPT-3 175B LoRA training memory", "fine-tuning memory", 350, "GB",
                "Hu et al. 2021, LoRA, section 4.2 (VRAM 1.2 TB full -> 350 GB with LoRA)"),
         finetune_memory_gb(GPT3_175B, A100_80, "lora", micro_batch=1, recompute=True)),
        (Figure("GPT-3 175B full fine-tune memory", "fine-tuning memory", 1200, "GB",
                "Hu et al. 2021, LoRA, section 4.2 (1.2 TB during full fine-tuning with Adam)"),
         finetune_memory_gb(GPT3_175B, A100_80, "full", micro_batch=1, recompute=True)),
    ]
    return out


def main() -> int:
    rows = figures()
    errors: dict[str, list[float]] = {}
    print(f"{'figure':<36} {'estimate':>14} {'published':>14} {'error':>8}  source")
    for fig, estimate in rows:
        error = (estimate - fig.published) / fig.published
        errors.setdefault(fig.kind, []).append(abs(error))
        print(f"{fig.name:<36} {estimate:>12,.1f} {fig.unit:<2}{fig.published:>12,.1f} {fig.unit:<2}"
              f"{error:>+7.0%}  {fig.source}")
    print()
    for kind, errs in errors.items():
        print(f"median absolute error, {kind} ({len(errs)} figures): {statistics.median(errs):.1%}")
    every = [e for errs in errors.values() for e in errs]
    print(f"median absolute error, all {len(every)} figures: {statistics.median(every):.1%} (goal ≤ 20%)")
    qlora_65b = finetune_memory_gb(llama(65.2, 80, 8192, 64, 64, 22016, 32000, 2048, "LLaMA-65B"), A100_80, "lora",
                                   qlora=True, micro_batch=1, seq_len=512)
    print(f"check: QLoRA LLaMA-65B (seq 512, micro-batch 1) needs {qlora_65b:.1f} GB: "
          f"{'fits' if qlora_65b <= 48 else 'does NOT fit'} one 48 GB GPU (Dettmers et al. 2023, QLoRA)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
