"""Retrieval quality and speed of the RAG index: bm25 vs dense vs hybrid, side by side in one run.

1. Indexes ``examples/corpus/python_docs`` (79 Python reference topics, 200-token chunks) and scores
   recall@k and MRR of each mode on ``examples/questions/python_docs.jsonl`` (goal: hybrid >= bm25 at
   recall@5).
2. Re-chunks the same corpus with small windows into about 10k chunks and measures the median query
   latency of each mode, query embedding included (goal: <= 50 ms on a CPU).

Indexes are kept under ``runs/bench`` and updated incrementally, so a second run skips embedding.

    python bench/rag_retrieval.py [--small-chunk-tokens 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "examples" / "corpus" / "python_docs"
QUESTIONS = REPO / "examples" / "questions" / "python_docs.jsonl"
MODES = ("bm25", "dense", "hybrid")
LATENCY_GOAL_MS = 50.0


def _progress(label: str):  # type: ignore[no-untyped-def]
    last = [0.0]

    def report(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 10 or done == total:
            last[0] = time.monotonic()
            print(f"  {label}: embedded {done}/{total} chunks", file=sys.stderr, flush=True)

    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench", help="where the indexes are kept")
    parser.add_argument("--small-chunk-tokens", type=int, default=24, help="window for the ~10k-chunk index")
    parser.add_argument("--small-overlap-tokens", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the questions for latency")
    args = parser.parse_args()

    from tunewise.methods.rag.embed import Embedder, resolve_embedding_model
    from tunewise.methods.rag.evaluate import evaluate_retrieval, load_questions
    from tunewise.methods.rag.index import build_index

    questions = load_questions(QUESTIONS)
    answerable = [q for q in questions if q.answerable]
    embedder = Embedder(resolve_embedding_model(None), device="cpu")
    print(f"corpus {CORPUS.relative_to(REPO)}; {len(answerable)} answerable questions; "
          f"embedding model {embedder.ref.name}")

    index, report = build_index([CORPUS], args.work / "python_docs", chunk_tokens=200, overlap_tokens=40,
                                embedder=embedder, progress=_progress("200-token chunks"))
    print(f"index: {len(index)} chunks of 200 tokens ({report.summary()})")
    cutoffs = (1, 3, 5, 10)
    scores = {}
    for mode in MODES:
        def search(query: str, k: int, mode: str = mode) -> list[str]:
            return [hit.chunk.source for hit in index.search(query, k=k, mode=mode)]

        scores[mode] = evaluate_retrieval(search, answerable, cutoffs)
    print()
    print(f"{'mode':<8}" + "".join(f"{f'recall@{k}':>11}" for k in cutoffs) + f"{'MRR':>8}")
    for mode in MODES:
        print(f"{mode:<8}" + "".join(f"{scores[mode][f'recall@{k}']:>11.3f}" for k in cutoffs)
              + f"{scores[mode]['mrr']:>8.3f}")
    ratio = scores["hybrid"]["recall@5"] / max(scores["bm25"]["recall@5"], 1e-9)
    print(f"hybrid / bm25 recall@5 = {ratio:.3f} (goal >= 1: {'met' if ratio >= 1 else 'NOT met'})")

    small, report = build_index([CORPUS], args.work / "python_docs_small", chunk_tokens=args.small_chunk_tokens,
                                overlap_tokens=args.small_overlap_tokens, embedder=embedder,
                                progress=_progress(f"{args.small_chunk_tokens}-token chunks"))
    print()
    print(f"latency index: {len(small)} chunks of {args.small_chunk_tokens} tokens ({report.summary()})")
    queries = [q.question for q in answerable]
    for mode in MODES:  # warm up: first calls pay for lazy initialisation
        small.search(queries[0], k=5, mode=mode)
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for query in queries:
            for mode in MODES:  # interleaved so load changes on the machine hit every mode alike
                started = time.perf_counter()
                small.search(query, k=5, mode=mode)
                latencies[mode].append((time.perf_counter() - started) * 1000)
    print(f"{'mode':<8}{'median ms':>11}{'p90 ms':>9}{'/ goal':>9}")
    for mode in MODES:
        values = sorted(latencies[mode])
        median = statistics.median(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"{mode:<8}{median:>11.2f}{p90:>9.2f}{median / LATENCY_GOAL_MS:>9.2f}")
    worst = max(statistics.median(v) for v in latencies.values())
    print(f"slowest mode median / {LATENCY_GOAL_MS:.0f} ms goal = {worst / LATENCY_GOAL_MS:.3f} "
          f"({'met' if worst <= LATENCY_GOAL_MS else 'NOT met'}) over {len(queries) * args.repeats} queries per mode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
