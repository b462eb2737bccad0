"""``tunewise run`` for a RAG plan: index the plan's documents, evaluate retrieval and answers, report.

Steps: build or update the index (only new or changed files are embedded); recall@k and MRR of the
``dense``, ``bm25`` and ``hybrid`` modes on the question set; the model answers questions with
retrieval (the plan's ``mode``) and without (closed book) so the report shows what retrieval adds.
Writes ``report.md``, ``metrics.json`` and ``answers.jsonl`` into the output folder; the index lives
in ``config.index_dir`` (default ``<output_dir>/index``) and is reused by the next run.

Events: ``start``; ``log`` per stage and every few embedding batches / answers (no ``progress``
events: nothing here has a training loss); ``eval`` ``before`` (closed-book answers) and ``after``
(retrieval and answers with retrieval).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.methods.rag.config import SEARCH_MODES, RagConfig
from tunewise.methods.rag.evaluate import (
    AnswerEvaluation,
    Question,
    evaluate_answers,
    evaluate_retrieval,
    load_questions,
    write_json,
)
from tunewise.methods.rag.report import render_report
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.redaction import redact, redact_data
from tunewise.plugins.types import EventSink, Plan, RunResult

SAMPLES_IN_REPORT = 5


def config_from_plan(plan: Plan) -> RagConfig:
    known = {f.name for f in dataclasses.fields(RagConfig)}
    unknown = sorted(set(plan.config) - known)
    if unknown:
        raise TunewiseError(f"{plan.source or 'plan'}: config has unknown RAG settings {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
    values = dict(plan.config)
    if "recall_at" in values and not isinstance(values["recall_at"], (list, tuple)):
        values["recall_at"] = (values["recall_at"],)
    config = RagConfig(**values)
    config.check()
    return config


def _progress_logger(events: EventSink, what: str) -> Any:
    """Log roughly every quarter of the work (and the end)."""
    marks: set[int] = set()

    def report(done: int, total: int) -> None:
        quarter = 4 * done // max(total, 1)
        if quarter not in marks:
            marks.add(quarter)
            events("log", level="info", message=f"{what}: {done}/{total}")

    return report


def _answer_eval(answerer: Any, index: Any, questions: Sequence[Question], config: RagConfig,
                 events: EventSink) -> AnswerEvaluation:
    """Answers with and without retrieval, scored and diagnosed (see :func:`evaluate_answers`)."""
    return evaluate_answers(answerer, index, questions, k=config.k, mode=config.mode,
                            min_relevance=config.min_relevance, answer_mode=config.answer_mode,
                            log=lambda message: events("log", level="info", message=message))


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(plan: Plan, events: EventSink) -> RunResult:
    from tunewise.methods.rag.answer import Answerer
    from tunewise.methods.rag.embed import Embedder, is_bundled, resolve_embedding_model
    from tunewise.methods.rag.index import build_index

    started = time.perf_counter()
    config = config_from_plan(plan)
    if not plan.data:
        raise TunewiseError(f"{plan.source or 'plan'}: data: name the documents to index (a folder or files)")
    out = Path(plan.output_dir).expanduser()
    # Every path from the config goes through Plan.config_path (confined to the plan's folder and the
    # working directory) before anything is written.
    index_dir = plan.config_path(config.index_dir, "index_dir", kind="write") if config.index_dir else out / "index"
    questions_path = plan.config_path(config.questions, "questions") if config.questions else None
    embedding_model = config.embedding_model if is_bundled(config.embedding_model) else \
        str(plan.config_path(str(config.embedding_model), "embedding_model"))
    questions = load_questions(questions_path) if questions_path else []
    from tunewise.methods.rag.ingest import discover, read_all

    read_all(discover(plan.data))  # corpus problems (file:line) are reported before any model loads
    embedding_ref = resolve_embedding_model(embedding_model)
    from tunewise.methods.rag.index import MANIFEST, RagIndex, _prepare_folder

    _prepare_folder(index_dir, rebuild=False)  # a folder that is not an index is refused before ``start``
    if (index_dir / MANIFEST).is_file():
        RagIndex.open(index_dir, embedding_model)  # so is a damaged index or one of another embedding model
    if config.answer_questions > 0 and any(q.answerable for q in questions):
        from tunewise.plugins.models import resolve_model

        resolve_model(plan.model)  # a missing model is refused now, not after the index is written
    device = _device()
    # Every refusal comes before ``start``: a refused run leaves the output folder untouched.
    events("start", method="rag", total_steps=0, plan=plan.to_dict(), device=device,
           questions=len(questions), index=str(index_dir))
    out.mkdir(parents=True, exist_ok=True)
    events("log", level="info", message=f"loading embedding model {config.embedding_model or 'all-MiniLM-L6-v2'}")
    embedder = Embedder(embedding_ref, device=device)
    index, update = build_index(
        list(plan.data), index_dir, embedding_model=embedding_model, chunk_tokens=config.chunk_tokens,
        overlap_tokens=config.overlap_tokens, batch_size=config.batch_size, embedder=embedder,
        progress=_progress_logger(events, "embedded chunks"),
        log=lambda message: events("log", level="info", message=message),
    )

    retrieval: dict[str, dict[str, float]] = {}
    for mode in SEARCH_MODES:
        def search(query: str, k: int, mode: str = mode) -> list[str]:
            return [hit.chunk.source for hit in index.search(query, k=k, mode=mode)]

        if questions:
            retrieval[mode] = evaluate_retrieval(search, questions, config.recall_at)
            events("log", level="info", message=f"retrieval ({mode}): " + ", ".join(
                f"{name} {value:.3f}" for name, value in retrieval[mode].items()))

    answers: dict[str, dict[str, float]] = {}
    records: list[dict[str, Any]] = []
    diagnosis: str | None = None
    answerable = [q for q in questions if q.answerable][: config.answer_questions]
    unanswerable = [q for q in questions if not q.answerable]
    if config.answer_questions > 0 and answerable:
        events("log", level="info", message=f"answering {len(answerable)} questions with and without retrieval "
                                            f"(+{len(unanswerable)} the documents do not answer)")
        answerer = Answerer(plan.model, max_new_tokens=config.max_new_tokens,
                            max_context_tokens=config.max_context_tokens,
                            dtype="bfloat16" if device == "cuda" else "float32")
        if device == "cuda":
            answerer.model.to(device)
        evaluation = _answer_eval(answerer, index, answerable + unanswerable, config, events)
        answers, records, diagnosis = evaluation.scores, evaluation.records, evaluation.diagnosis
        if diagnosis:
            events("log", level="warning", message=diagnosis)

    metrics_before = {f"answer_{k}": v for k, v in answers.get("without retrieval", {}).items()}
    metrics_after = {f"answer_{k}": v for k, v in answers.get("with retrieval", {}).items()}
    for mode, scores in retrieval.items():
        metrics_after.update({f"{mode}_{name}": value for name, value in scores.items() if name != "questions"})
    if metrics_before:
        events("eval", phase="before", step=0, metrics=metrics_before)
    if metrics_after:
        events("eval", phase="after", step=0, metrics=metrics_after)

    wall_s = time.perf_counter() - started
    index_summary = {
        "folder": str(index_dir),
        "embedding model": f"{index.model.name} ({index.embedder.dimension} dimensions, fingerprint "
                           f"{index.model.fingerprint[:12]})",
        "chunking": f"{index.manifest['chunking']['chunk_tokens']} tokens, overlap "
                    f"{index.manifest['chunking']['overlap_tokens']}",
        "files": len(index.manifest["files"]),
        "chunks": len(index),
        "this run": update.summary(),
    }
    plan_summary = {"documents": ", ".join(plan.data), "model": plan.model or "embedded SmolLM2-135M-Instruct",
                    "answer mode": f"{config.mode}, k={config.k}, {config.answer_mode}",
                    "questions": f"{config.questions} ({len(questions)})" if config.questions else "none"}
    samples = []
    for record in records[:SAMPLES_IN_REPORT]:
        cited = {c["number"] for c in record["citations"]}
        samples.append({**record, "passages": [{**p, "cited": p["number"] in cited} for p in record["passages"]]})
    report_text = render_report(plan_summary=plan_summary, index_summary=index_summary, retrieval=retrieval,
                                cutoffs=config.recall_at, answers=answers or None, samples=samples, wall_s=wall_s,
                                diagnosis=diagnosis)
    report_path = out / "report.md"
    report_path.write_text(redact(report_text), encoding="utf-8")
    metrics_path = out / "metrics.json"
    write_json(metrics_path, {"retrieval": retrieval, "answers": answers, "index": {
        "chunks": len(index), "files": len(index.manifest["files"]), "added": len(update.added),
        "changed": len(update.changed), "removed": len(update.removed), "chunks_embedded": update.chunks_embedded,
        "index_seconds": update.seconds}, "answer_diagnosis": diagnosis, "wall_s": wall_s})
    artifacts = {"index": str(index_dir), "report": str(report_path), "metrics": str(metrics_path)}
    if records:
        answers_path = out / "answers.jsonl"
        answers_path.write_text("".join(json.dumps(redact_data(r), ensure_ascii=False) + "\n" for r in records),
                                encoding="utf-8")
        artifacts["answers"] = str(answers_path)
    mode_scores = retrieval.get(config.mode, {})
    summary = f"indexed {len(index)} chunks from {len(index.manifest['files'])} files"
    if mode_scores:
        summary += f"; {config.mode} recall@{max(config.recall_at)} {mode_scores.get(f'recall@{max(config.recall_at)}', 0):.2f}"
        summary += f", MRR {mode_scores.get('mrr', 0):.2f}"
    if answers:
        summary += (f"; answer containment {answers['with retrieval'].get('containment', 0):.2f} with retrieval vs "
                    f"{answers['without retrieval'].get('containment', 0):.2f} without, citation rate "
                    f"{answers['with retrieval'].get('citation_rate', 0):.2f} "
                    f"({answers['with retrieval'].get('extractive_share', 0):.0%} extractive)")
    return RunResult("rag", "completed", metrics_before=metrics_before, metrics_after=metrics_after,
                     artifacts=artifacts, report=str(report_path), message=summary, output_dir=str(out),
                     wall_s=round(wall_s, 2))
