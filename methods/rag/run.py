"""``tunewise run`` for a RAG plan: index the plan's documents, evaluate retrieval, then a bake-off of answers.

Steps: build or update the index (only new or changed files are embedded); recall@k and MRR of the
``dense``, ``bm25`` and ``hybrid`` modes on the question set; the model answers every question without
retrieval (the base) and with retrieval and citations (the result; the plan's ``mode``, an extractive
answer when the generator does not cite), and the bake-off compares them by containment of the
reference answer (:mod:`tunewise.methods.rag.bakeoff`). Without a question file there is nothing to
compare: ``RunResult.bakeoff`` is None and the message and report say how to add ``config.questions``.
Writes ``report.md`` (the bake-off first), ``metrics.json``, ``bakeoff.jsonl`` and ``answers.jsonl``;
the index lives in ``config.index_dir`` (default ``<output_dir>/index``) and is reused by the next run.

Events: ``start``; ``phase`` ``reading`` / ``chunking`` (files), ``embedding`` (chunks), ``indexing``,
``answering without retrieval`` / ``answering with retrieval`` (questions), each with ``done``/``total``
about every twentieth item; ``log`` per stage; ``eval`` ``before`` (closed-book answers) and ``after``
(retrieval and answers with retrieval); ``bakeoff``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunewise.methods.rag.bakeoff import rag_bake_off
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
from tunewise.plugins.bakeoff import merge_metrics
from tunewise.plugins.bakeoff_report import bakeoff_markdown, write_bakeoff
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.redaction import redact, redact_data
from tunewise.plugins.types import EventSink, Plan, RunResult

SAMPLES_IN_REPORT = 5
QUESTIONS_HELP = ("add config.questions: a jsonl file of {\"question\", \"source\", \"answer\"} rows (source: the "
                  "document that answers it, answer: a short reference answer; see "
                  "examples/questions/python_docs.jsonl)")


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


def _progress_logger(events: EventSink, what: str, phase: str, unit: str) -> Any:
    """A ``phase`` event per batch and a log line roughly every quarter of the work (and the end)."""
    marks: set[int] = set()

    def report(done: int, total: int) -> None:
        events("phase", phase=phase, done=done, total=total, unit=unit)
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
                            log=lambda message: events("log", level="info", message=message),
                            phase=lambda name, done, total: events("phase", phase=name, done=done, total=total,
                                                                    unit="questions"))


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
    if config.answer_questions != 0 and any(q.answerable for q in questions):
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
        progress=_progress_logger(events, "embedded chunks", "embedding", "chunks"),
        log=lambda message: events("log", level="info", message=message),
        phase=lambda name, done, total, unit: events("phase", phase=name, done=done, total=total, unit=unit),
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
    model_params: int | None = None
    if config.answer_questions != 0 and answerable:
        events("log", level="info", message=f"answering {len(answerable)} questions with and without retrieval "
                                            f"(+{len(unanswerable)} the documents do not answer)")
        answerer = Answerer(plan.model, max_new_tokens=config.max_new_tokens,
                            max_context_tokens=config.max_context_tokens,
                            dtype="bfloat16" if device == "cuda" else "float32")
        if device == "cuda":
            answerer.model.to(device)
        model_params = int(answerer.model.num_parameters())
        evaluation = _answer_eval(answerer, index, answerable + unanswerable, config, events)
        answers, records, diagnosis = evaluation.scores, evaluation.records, evaluation.diagnosis
        if diagnosis:
            events("log", level="warning", message=diagnosis)

    settings = {"k": config.k, "chunk_tokens": config.chunk_tokens, "mode": config.mode,
                "min_relevance": config.min_relevance}
    rag_bake = rag_bake_off(records, citation_rate=answers.get("with retrieval", {}).get("citation_rate"),
                            model_params=model_params, settings=settings) if records else None
    bake = rag_bake.bake if rag_bake is not None else None
    no_bakeoff = ""
    if bake is None:
        if not questions:
            no_bakeoff = f"no bake-off: the plan has no question file to compare answers on; {QUESTIONS_HELP}"
        elif config.answer_questions == 0:
            no_bakeoff = ("no bake-off: config.answer_questions is 0, so no question was answered; remove it (every "
                          "question is answered) or set it above 0")
        else:
            no_bakeoff = (f"no bake-off: none of the {len(questions)} questions in {config.questions} has both a "
                          "source and a reference answer to check the answers against; give 'source' and "
                          "'answer' for the questions the documents answer")
        events("log", level="warning", message=no_bakeoff)

    metrics_before = {f"answer_{k}": v for k, v in answers.get("without retrieval", {}).items()}
    metrics_after = {f"answer_{k}": v for k, v in answers.get("with retrieval", {}).items()}
    for mode, scores in retrieval.items():
        metrics_after.update({f"{mode}_{name}": value for name, value in scores.items() if name != "questions"})
    if rag_bake is not None and bake is not None:
        metrics_before[bake.metric] = bake.before
        metrics_after |= {bake.metric: bake.after, "citation_rate": rag_bake.facts.citation_rate or 0.0,
                          "retrieval_recall": rag_bake.facts.retrieval_recall or 0.0}
    if metrics_before:
        events("eval", phase="before", step=0, metrics=metrics_before)
    if metrics_after:
        events("eval", phase="after", step=0, metrics=metrics_after)
    if bake is not None:
        events("bakeoff", **bake.to_dict())

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
    if rag_bake is not None:
        first = bakeoff_markdown(rag_bake.bake, rag_bake.examples)
        if rag_bake.left_out:
            first += (f"\n{rag_bake.left_out} questions without a reference answer are not in the bake-off (nothing "
                      "to check their answers against); they measure refusals: abstain_unanswerable below.\n")
    else:
        first = f"## Bake-off: base vs result\n\n**{no_bakeoff}**\n"
    report_text = render_report(plan_summary=plan_summary, index_summary=index_summary, retrieval=retrieval,
                                cutoffs=config.recall_at, answers=answers or None, samples=samples, wall_s=wall_s,
                                diagnosis=diagnosis, bakeoff=first)
    report_path = out / "report.md"
    report_path.write_text(redact(report_text), encoding="utf-8")
    metrics_path = out / "metrics.json"
    metrics: dict[str, Any] = {
        "retrieval": retrieval, "answers": answers, "index": {
            "chunks": len(index), "files": len(index.manifest["files"]), "added": len(update.added),
            "changed": len(update.changed), "removed": len(update.removed),
            "chunks_embedded": update.chunks_embedded, "index_seconds": update.seconds},
        "answer_diagnosis": diagnosis, "wall_s": wall_s}
    if rag_bake is not None:
        metrics = merge_metrics({**metrics, "before": metrics_before, "after": metrics_after,
                                 **rag_bake.metrics()}, rag_bake.bake)
    else:
        metrics["bakeoff"] = None
        metrics["no_bakeoff"] = no_bakeoff
    write_json(metrics_path, metrics)
    artifacts = {"index": str(index_dir), "report": str(report_path), "metrics": str(metrics_path)}
    if rag_bake is not None:
        artifacts["bakeoff"] = str(write_bakeoff(out, rag_bake.bake, rag_bake.examples))
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
    message = f"{bake.sentence.rstrip('.')}. {summary[:1].upper()}{summary[1:]}." if bake is not None else \
        f"{no_bakeoff[:1].upper()}{no_bakeoff[1:]}. {summary[:1].upper()}{summary[1:]}."
    return RunResult("rag", "completed", metrics_before=metrics_before, metrics_after=metrics_after,
                     artifacts=artifacts, report=str(report_path), message=message, output_dir=str(out),
                     wall_s=round(wall_s, 2), bakeoff=bake.to_dict() if bake is not None else None)
