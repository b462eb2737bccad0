"""``tunewise chat RUN_DIR``: ask a finished run's result (and, with ``--compare``, its base) anything."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

from tunewise.advisor import limits


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="output folder of a finished `tunewise run`")
    parser.add_argument("--compare", action="store_true",
                        help="the base model answers too (first), so the two answers can be compared")
    parser.add_argument("--prompt", default=None, metavar="TEXT",
                        help="answer this one prompt and exit (default: read prompts from standard input, one "
                             "per line, until end of input)")
    parser.add_argument("--max-new-tokens", type=limits.flag(limits.GENERATED_TOKENS), default=None, metavar="N",
                        help="longest answer in tokens (default: the length the run's own evaluation used)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text: answers stream as they are written; json: one object per prompt with each "
                             "answer, the whole prompt the model got, tokens and speed")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="let the run folder name files outside itself and the working directory (the data "
                             "in-context examples are picked from, a RAG index)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a model whose config has auto_map to run the Python code shipped in its folder")


def main(args: argparse.Namespace) -> int:
    import os

    from tunewise.advisor.tryout import open_run
    from tunewise.plugins.trust import OUTSIDE_PATHS_ENV, REMOTE_CODE_ENV

    if args.trust_remote_code:
        os.environ[REMOTE_CODE_ENV] = "1"
    if args.allow_outside_paths:
        os.environ[OUTSIDE_PATHS_ENV] = "1"
    tryout = open_run(args.run_dir, compare=args.compare)
    order = [w for w in ("base", "result") if w in tryout.sides]
    if args.format == "text":
        print(f"{tryout.method} run {tryout.run_dir}", file=sys.stderr)
        for which in order:
            print(f"  {which}: {tryout.sides[which].what}", file=sys.stderr)
        for note in tryout.notes:
            print(f"  note: {note}", file=sys.stderr)
    single = args.prompt is not None
    for prompt in [args.prompt] if single else _prompts():
        if args.format == "json":
            replies = {which: tryout.answer(prompt, which, max_new_tokens=args.max_new_tokens) for which in order}
            document = {"run": str(tryout.run_dir), "method": tryout.method, "prompt": prompt,
                        "max_new_tokens": args.max_new_tokens or tryout.max_new_tokens,
                        "answers": {w: {"model": tryout.sides[w].what, **r.to_json()} for w, r in replies.items()},
                        "notes": tryout.notes}
            print(json.dumps(document, indent=2 if single else None, ensure_ascii=False), flush=True)
        else:
            for which in order:
                _stream_one(tryout, prompt, which, args.max_new_tokens, labelled=len(order) > 1)
    return 0


def _prompts() -> Iterator[str]:
    """Prompts typed (or piped) one per line; blank lines are skipped, end of input ends."""
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return
        if line.strip():
            yield line.rstrip("\n")


def _stream_one(tryout: Any, prompt: str, which: str, max_new_tokens: int | None, *, labelled: bool) -> None:
    pieces: list[str] = []

    def show(piece: str) -> None:
        if not "".join(pieces).strip():
            piece = piece.lstrip()  # the answer starts at its first word, as the final answer is stripped
        pieces.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()

    if labelled:
        print(f"── {which} ──", flush=True)
    reply = tryout.answer(prompt, which, stream=show, max_new_tokens=max_new_tokens)
    streamed = "".join(pieces).strip()
    if not streamed and not reply.answer:
        print("(empty answer)", end="")
    elif not reply.answer.startswith(streamed):  # replaced after generation (an extractive RAG answer)
        print(f"\n── {which}: the answer given ──\n{reply.answer}", end="")
    else:
        print(reply.answer[len(streamed):], end="")  # e.g. the sources under a RAG answer
    ended = "cancelled, " if reply.cancelled else ""
    print(f"\n[{ended}{reply.tokens} tokens, {reply.tokens_per_s:.1f} tokens/s]", flush=True)
