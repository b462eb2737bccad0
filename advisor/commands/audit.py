"""``tunewise audit PATH``: shape, counts, token statistics and problems of a data file or folder."""

from __future__ import annotations

import argparse
import json

from tunewise.advisor import limits


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="jsonl/json/csv/parquet file, datasets folder, or folder of .txt/.md files")
    parser.add_argument("--model", default=None, help="model whose tokenizer counts tokens (default: the embedded one)")
    parser.add_argument("--max-tokens", type=limits.flag(limits.SEQ_LEN), default=None,
                        help="longest example accepted (default: the model's context, at most 2048)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def main(args: argparse.Namespace) -> int:
    from tunewise.advisor.audit import audit, audit_lines

    report = audit(args.path, model=args.model, max_tokens=args.max_tokens)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 2
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"audit of {args.path}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("found")
    for label, value in audit_lines(report):
        table.add_row(label, value)
    console.print(table)
    for problem in report.problems:  # one unwrapped line each: file:line stays greppable
        console.print(problem, style="yellow", markup=False, highlight=False, soft_wrap=True)
    return 0 if report.ok else 2
