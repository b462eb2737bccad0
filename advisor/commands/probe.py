"""``tunewise probe --method M``: train a few real steps here and calibrate later quotes on this hardware."""

from __future__ import annotations

import argparse
import json

from tunewise.advisor import limits


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, choices=("lora", "full_finetune", "continual_pretraining"),
                        help="training method to probe")
    parser.add_argument("--model", default=None, help="model to probe with (default: the embedded SmolLM2-135M)")
    parser.add_argument("--steps", type=limits.flag(limits.STEPS),
                        default=20, help="optimizer steps to run (default 20)")
    parser.add_argument("--seq-len", type=limits.flag(limits.SEQ_LEN),
                        default=256, help="tokens per sequence (default 256)")
    parser.add_argument("--batch-size", type=limits.flag(limits.BATCH),
                        default=4, help="sequences per step (default 4)")
    parser.add_argument("--gpu", default=None, help="catalogue name of this machine's accelerator (default: detected)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def main(args: argparse.Namespace) -> int:
    from tunewise.advisor import calibration
    from tunewise.advisor.probe import run_probe

    def show(kind: str, fields: dict) -> None:
        if args.format == "table" and kind == "progress":
            print(f"  step {fields['step']}/{fields['total_steps']}: {fields['tokens_per_s']:,.0f} tokens/s, "
                  f"loss {fields['loss']:.3f}", flush=True)

    cal, measured = run_probe(args.method, model=args.model, steps=args.steps, seq_len=args.seq_len,
                              batch_size=args.batch_size, gpu=args.gpu, on_event=show)
    if args.format == "json":
        print(json.dumps({"calibration": cal.to_dict(), "store": str(calibration.store_path()),
                          "per_step_tokens_per_s": measured.per_step_tokens_per_s}, indent=2))
        return 0
    print(f"probed {cal.method} with {cal.model} on {cal.hardware} ({cal.peak_tflops:.2f} TFLOP/s peak): "
          f"{cal.tokens_per_s:,.0f} tokens/s, {cal.step_time_s:.3f} s/step, MFU {cal.mfu:.3f}, "
          f"peak memory {cal.peak_memory_gb:.2f} GB (formula {cal.predicted_memory_gb:.2f} GB, "
          f"overhead {cal.memory_offset_gb:+.2f} GB)")
    print(f"stored in {calibration.store_path()}; quotes for {cal.method} on {cal.hardware} now use it")
    return 0
