"""Regenerate the hook reference in docs/plugins.md from tunewise's hook specifications.

    python docs/gen_hook_reference.py           # rewrite the block in place
    python docs/gen_hook_reference.py --check   # exit 1 if the committed block is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunewise.plugins.hook_reference import render, replace_block

DOC = Path(__file__).with_name("plugins.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed reference is current")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    updated = replace_block(current, render())
    if args.check:
        if updated != current:
            print(f"{DOC}: the hook reference is stale; run python docs/gen_hook_reference.py", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        DOC.write_text(updated, encoding="utf-8")
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
