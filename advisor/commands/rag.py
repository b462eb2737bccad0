"""``tunewise rag index|search|ask``: build an index of documents, search it, answer from it with citations."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tunewise.advisor import limits
from tunewise.plugins.redaction import redact

MODES = ("dense", "bm25", "hybrid")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    index = sub.add_parser("index", help="create or update an index (only new or changed files are embedded)",
                           description="Index a folder or files (.txt .md .html .jsonl). Re-running on a changed "
                                       "folder embeds only new or changed files and drops removed ones.")
    index.add_argument("source", nargs="+", help="folder(s) or file(s) of documents")
    index.add_argument("--index", required=True, metavar="DIR", help="index folder (created if missing)")
    index.add_argument("--embedding-model", default=None, metavar="PATH",
                       help="local sentence-transformers folder (default: the bundled all-MiniLM-L6-v2)")
    index.add_argument("--chunk-tokens", type=limits.flag(limits.CHUNK_TOKENS), default=None,
                       help="chunk length in embedding-model tokens (default: the index's, 200 for a new one)")
    index.add_argument("--overlap-tokens", type=limits.flag(limits.OVERLAP_TOKENS), default=None,
                       help="tokens shared by consecutive chunks (default: the index's, 40 for a new one)")
    index.add_argument("--batch-size", type=limits.flag(limits.BATCH), default=32,
                       help="chunks embedded per batch")
    index.add_argument("--rebuild", action="store_true",
                       help="re-embed everything (needed to change the embedding model or repair a corrupted index)")
    index.add_argument("--format", choices=("text", "json"), default="text")

    search = sub.add_parser("search", help="the chunks that best match a query, best first")
    search.add_argument("query")
    search.add_argument("--index", required=True, metavar="DIR")
    search.add_argument("--k", type=limits.flag(limits.RESULTS), default=5, help="how many chunks (default 5)")
    search.add_argument("--mode", choices=MODES, default="hybrid",
                        help="dense (embeddings), bm25 (keywords) or hybrid (both, reciprocal rank fusion)")
    search.add_argument("--format", choices=("text", "json"), default="text",
                        help="json: a list of {source, chunk_id, score, text}")

    ask = sub.add_parser("ask", help="answer a question from the index with numbered citations")
    ask.add_argument("question")
    ask.add_argument("--index", required=True, metavar="DIR")
    ask.add_argument("--model", default=None, help="causal LM folder or cached hub id (default: the embedded model)")
    ask.add_argument("--k", type=limits.flag(limits.RESULTS), default=3, help="chunks given to the model (default 3)")
    ask.add_argument("--mode", choices=MODES, default="hybrid")
    ask.add_argument("--max-new-tokens", type=limits.flag(limits.GENERATED_TOKENS), default=96)
    ask.add_argument("--min-relevance", type=limits.flag(limits.RELEVANCE), default=0.3,
                     help="cosine similarity the best chunk needs, else the answer is that the documents do "
                          "not contain it (default 0.3)")
    ask.add_argument("--answer-mode", choices=("auto", "generate", "extractive"), default="auto",
                     help="auto: when the model's [n] citations are missing or wrong, quote the passages' best "
                          "sentences instead (marked extractive); generate: keep the model's answer; extractive: "
                          "quote without generating (default auto)")
    ask.add_argument("--format", choices=("text", "json"), default="text")


def _embedding_progress() -> tuple[Any, Any]:
    """A rich progress bar on stderr for embedding batches, and its update callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=Console(file=sys.stderr), transient=True)
    task = progress.add_task("embed", total=None)

    def update(done: int, total: int) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, completed=done, total=total)

    return progress, update


def _index(args: argparse.Namespace) -> int:
    from tunewise.methods.rag.index import build_index

    progress, update = _embedding_progress()
    try:
        index, report = build_index(
            args.source, args.index, embedding_model=args.embedding_model, chunk_tokens=args.chunk_tokens,
            overlap_tokens=args.overlap_tokens, batch_size=args.batch_size, rebuild=args.rebuild,
            progress=update, log=None if args.format == "json" else lambda m: print(m, file=sys.stderr),
        )
    finally:
        progress.stop()
    if args.format == "json":
        print(json.dumps({"index": str(index.folder), "added": report.added, "changed": report.changed,
                          "removed": report.removed, "unchanged": len(report.unchanged),
                          "chunks_embedded": report.chunks_embedded, "chunks": report.total_chunks,
                          "embedding_model": index.manifest["embedding_model"], "seconds": round(report.seconds, 2)},
                         indent=2))
    else:
        print(f"index {index.folder}: {report.summary()}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from tunewise.methods.rag.index import RagIndex

    hits = RagIndex.open(args.index).search(args.query, k=args.k, mode=args.mode)
    if args.format == "json":
        print(json.dumps([hit.to_json() for hit in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no matching chunks")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank}. {hit.chunk.source} (chunk {hit.chunk.chunk_id}, score {hit.score:.4f})")
        preview = redact(" ".join(hit.chunk.text.split()))  # before the cut, which would leave part of a secret
        print(f"   {preview[:300]}{'…' if len(preview) > 300 else ''}")
    return 0


def _ask(args: argparse.Namespace) -> int:
    from tunewise.methods.rag.answer import Answerer
    from tunewise.methods.rag.index import RagIndex

    index = RagIndex.open(args.index)
    answerer = Answerer(args.model, max_new_tokens=args.max_new_tokens)
    answer = answerer.answer(index, args.question, k=args.k, mode=args.mode, min_relevance=args.min_relevance,
                              answer_mode=args.answer_mode)
    if args.format == "json":
        print(json.dumps(answer.to_json(), indent=2, ensure_ascii=False))
    else:
        print(answer.render())
    return 0


def main(args: argparse.Namespace) -> int:
    actions = {"index": _index, "search": _search, "ask": _ask}
    return actions[args.action](args)
