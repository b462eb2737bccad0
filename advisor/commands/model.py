"""``tunewise model info|prepare``: resolve a model and show its shape, or prepare the embedded one."""

from __future__ import annotations

import argparse
import dataclasses
import json


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="print the resolved path, parameter count, layers, hidden size, context, dtype")
    info.add_argument("--model", default=None, help="local folder or cached hub id (default: the embedded model)")
    info.add_argument("--format", choices=("table", "json"), default="table")
    prepare = sub.add_parser("prepare", help="convert the embedded GGUF model to safetensors once (idempotent)")
    prepare.add_argument("--force", action="store_true", help="convert again even if already prepared")


def main(args: argparse.Namespace) -> int:
    from tunewise.plugins import models

    if args.action == "prepare":
        already = (models.embedded_model_dir() / models._READY_MARKER).exists()
        path = models.prepare_embedded_model(force=args.force)
        print(f"embedded model {'already ' if already and not args.force else ''}prepared at {path}")
        return 0
    info = models.model_info(args.model)
    if args.format == "json":
        print(json.dumps(dataclasses.asdict(info), indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model {info.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = {
        "path": info.path,
        "source": info.source,
        "architecture": info.architecture,
        "parameters": f"{info.parameters:,} ({info.parameters / 1e6:.1f} M)",
        "layers": str(info.layers),
        "hidden size": str(info.hidden_size),
        "attention heads": str(info.heads),
        "context length": f"{info.context_length:,}",
        "vocabulary": f"{info.vocab_size:,}",
        "dtype": info.dtype,
    }
    for key, value in rows.items():
        table.add_row(key, value)
    Console().print(table)
    return 0
