"""``tunewise recommend --answers FILE``: rank all methods for an answers file, with quotes and reasons."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--answers", required=True, metavar="FILE", help="answers YAML (see README: The answers file)")
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table", help="output format")
    parser.add_argument("--no-audit", action="store_true",
                        help="use the counts in the answers even when data.path is set (skip the data audit)")


def main(args: argparse.Namespace) -> int:
    from tunewise.advisor.answers import load_answers
    from tunewise.advisor.ranking import rank

    profile = load_answers(args.answers)
    if profile.data.path and not args.no_audit:
        from tunewise.advisor.audit import apply_audit, audit

        profile = apply_audit(profile, audit(profile.data.path, model=profile.model.name))
    ranking = rank(profile)
    if args.format == "json":
        print(json.dumps(ranking.to_dict(), indent=2))
    elif args.format == "markdown":
        from tunewise.advisor.report_render import ranking_markdown

        print(ranking_markdown(ranking), end="")
    else:
        from tunewise.advisor.report_render import print_renderables, ranking_table

        print_renderables(ranking_table(ranking))
    return 0
