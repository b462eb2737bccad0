"""After a probe, how well do quotes predict a fresh run of the probed setup? (goal: within ±20 %)

1. runs ``tunewise probe`` (stores the calibration for this hardware + method);
2. predicts step time and peak memory for the probed setup from the stored calibration, the way
   quotes do (:func:`tunewise.advisor.probe.predict_step`);
3. measures the same setup again in a fresh process (peak memory readings are per process);
4. with ``--transfer``, also predicts and measures a second setup (twice the sequence length) to
   show how the calibration carries over to a setup it was not measured on.

Prints predicted vs measured side by side, the ratios, and whether each is within ±20 %.

    python bench/probe_accuracy.py --method lora [--model X] [--steps 20] [--seq-len 256] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TOLERANCE = 0.20


def _measure_in_subprocess(args: argparse.Namespace, seq_len: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--measure-only", "--method", args.method, "--steps", str(args.steps),
           "--seq-len", str(seq_len), "--batch-size", str(args.batch_size)]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"fresh measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _probe(args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tunewise.advisor.cli", "probe", "--method", args.method, "--steps", str(args.steps),
           "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size), "--format", "json"]
    if args.model:
        cmd += ["--model", args.model]
    if args.gpu:
        cmd += ["--gpu", args.gpu]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"probe failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def _row(label: str, predicted: float, measured: float, unit: str) -> bool:
    ratio = predicted / measured if measured else float("inf")
    ok = abs(ratio - 1) <= TOLERANCE
    print(f"  {label:<16} predicted {predicted:10.4f} {unit:<3} measured {measured:10.4f} {unit:<3} "
          f"ratio {ratio:6.3f}  {'OK' if ok else 'OFF'} (±{TOLERANCE:.0%})")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="lora", choices=("lora", "full_finetune", "continual_pretraining"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--gpu", default=None)
    parser.add_argument("--transfer", action="store_true", help="also check a setup with twice the sequence length")
    parser.add_argument("--repeat", type=int, default=1,
                        help="fresh measurements of the probed setup (more show how noisy this machine is)")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from tunewise.advisor.probe import measure

    if args.measure_only:
        m = measure(args.method, model=args.model, steps=args.steps, seq_len=args.seq_len, batch_size=args.batch_size)
        print(json.dumps({"step_time_s": m.step_time_s, "peak_memory_gb": m.peak_memory_gb,
                          "tokens_per_s": m.tokens_per_s}))
        return 0

    from tunewise.advisor.hardware import find_hardware
    from tunewise.advisor.probe import predict_step
    from tunewise.plugins import costs
    from tunewise.plugins.models import resolve_model

    print(f"data dir: {os.environ.get('TUNEWISE_DATA_DIR', '(platform default)')}")
    probe = _probe(args)
    cal = probe["calibration"]
    print(f"probe: {args.method} on {cal['hardware']} with {cal['model']}: {cal['tokens_per_s']:,.1f} tokens/s, "
          f"MFU {cal['mfu']:.4f}, peak {cal['peak_memory_gb']:.3f} GB (formula {cal['predicted_memory_gb']:.3f} GB)")
    hardware = find_hardware(cal["hardware"])
    shape = costs.resolve_shape(str(resolve_model(args.model).path), 0.1)
    setups = [args.seq_len] + ([args.seq_len * 2] if args.transfer else [])
    all_ok = True
    for seq_len in setups:
        step_s, memory, _ = predict_step(args.method, shape, hardware, seq_len, args.batch_size)
        probed = seq_len == args.seq_len
        for i in range(args.repeat if probed else 1):
            fresh = _measure_in_subprocess(args, seq_len)
            tag = "probed setup" if probed else "transfer"
            print(f"{tag}: seq_len {seq_len}, batch {args.batch_size}" + (f" (fresh run {i + 1})" if probed else ""))
            ok_time = _row("step time", step_s, fresh["step_time_s"], "s")
            ok_mem = _row("peak memory", memory, fresh["peak_memory_gb"], "GB")
            if probed:
                all_ok = all_ok and ok_time and ok_mem
    print(f"probed setup within ±{TOLERANCE:.0%}: {'yes' if all_ok else 'no'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
