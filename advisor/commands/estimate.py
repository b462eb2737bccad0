"""``tunewise estimate``: quote one method for a model size, token count and hardware."""

from __future__ import annotations

import argparse
import json

from tunewise.advisor import limits


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, help="method id (see `tunewise plugins`)")
    parser.add_argument("--params-b", type=limits.flag(limits.PARAMS_B), default=7.0,
                        help="model size in billions of parameters (default 7)")
    parser.add_argument("--model", default=None,
                        help="a local model folder or cached hub id: its config.json gives the exact shape")
    parser.add_argument("--tokens", type=limits.flag(limits.TRAINING_TOKENS), required=True, metavar="D",
                        help="tokens the run processes, all epochs (2e9, 500M and 2B are accepted); "
                             "RAG: document tokens to index; RLHF: preference tokens (chosen + rejected)")
    parser.add_argument("--gpu", default="A100-80GB", help="hardware from the catalogue (default A100-80GB)")
    parser.add_argument("--gpus", type=limits.flag(limits.GPUS), default=1, help="number of devices (default 1)")
    parser.add_argument("--seq-len", type=limits.flag(limits.SEQ_LEN), default=None,
                        help="training sequence length (default: the method's)")
    parser.add_argument("--queries-per-day", type=limits.flag(limits.QUERIES_PER_DAY), default=1000,
                        help="for per-query methods (default 1000)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def main(args: argparse.Namespace) -> int:
    from tunewise.advisor.hardware import find_hardware
    from tunewise.advisor.ranking import json_safe
    from tunewise.plugins.manager import get_host
    from tunewise.plugins.types import HardwareChoice, ModelProfile, Profile

    hardware = find_hardware(args.gpu)
    profile = Profile(
        model=ModelProfile(name=args.model, params_b=args.params_b),
        hardware=HardwareChoice(gpu=hardware.name, gpus=args.gpus),
        queries_per_day=args.queries_per_day,
        training_tokens=int(args.tokens),
        seq_len=args.seq_len,
    )
    quote = get_host().method(args.method).estimate(profile, hardware)
    if args.format == "json":
        print(json.dumps(json_safe(quote.to_dict()), indent=2, default=str))
        return 0
    from tunewise.advisor.report_render import print_renderables, quote_tables

    print_renderables(quote_tables(quote, f"{args.method} on {args.gpus}× {hardware.name}, "
                                          f"{args.tokens:.3g} tokens"))
    return 0
