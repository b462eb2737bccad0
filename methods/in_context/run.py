"""``tunewise run`` for an in-context plan: pick examples per query, then a bake-off of zero-shot vs few-shot.

The plan's data is the labeled example store; the held-out set is ``config.eval_data`` or a stable
content-hash split of the data, and every held-out example is scored (``config.max_eval`` caps it
only when set). The task is read from the answers (:func:`~tunewise.plugins.task_detection.detect_task`):
a small label set is a classification scored by accuracy, anything else free text scored by ROUGE-L.
Answers stop at the longest reference answer plus a margin. The model answers every held-out input
zero-shot (the base: the same prompt without examples) and with the plan's selection (the result; with
``compare_selections`` also the other strategies), under the prompt-token budget. Writes ``report.md``
(the bake-off first), ``metrics.json``, ``bakeoff.jsonl`` and ``predictions.jsonl``.

Events: ``start``; ``phase`` ``selecting examples`` / ``answering zero-shot`` / ``answering with
examples`` (``done``/``total`` per batch; ``comparing selections`` for the other strategies); ``eval``
``before`` (zero-shot) and ``after`` (few-shot); ``bakeoff``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from tunewise.methods.in_context.bakeoff import icl_bake_off
from tunewise.methods.in_context.config import SELECTIONS, InContextConfig
from tunewise.methods.in_context.evaluate import ChatGenerator, Outcome, Selector, evaluate_condition
from tunewise.methods.in_context.examples import Example, load_examples, split_examples
from tunewise.methods.in_context.prompting import PromptBuilder
from tunewise.methods.in_context.report import render_report
from tunewise.plugins.bakeoff import merge_metrics
from tunewise.plugins.bakeoff_report import bakeoff_markdown, write_bakeoff
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.redaction import redact, redact_data
from tunewise.plugins.types import EventSink, Plan, RunResult

SAMPLES_IN_REPORT = 8
ANSWER_MARGIN = 4
"""Tokens allowed beyond the longest reference answer: room for a trailing full stop or a closing quote,
while a model that rambles is cut off instead of costing minutes per condition."""


def config_from_plan(plan: Plan) -> InContextConfig:
    known = {f.name for f in dataclasses.fields(InContextConfig)}
    unknown = sorted(set(plan.config) - known)
    if unknown:
        raise TunewiseError(f"{plan.source or 'plan'}: config has unknown in-context settings "
                            f"{', '.join(unknown)}; known: {', '.join(sorted(known))}")
    config = InContextConfig(**dict(plan.config))
    config.check()
    return config


def answer_tokens(tokenizer: Any, examples: list[Example], cap: int) -> int:
    """The answer length bound: the longest reference answer in tokens plus :data:`ANSWER_MARGIN`, at most ``cap``."""
    longest = max((len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in examples), default=0)
    return max(1, min(cap, longest + ANSWER_MARGIN))


def _phase(events: EventSink, phase: str, unit: str = "examples") -> Any:
    def report(done: int, total: int) -> None:
        events("phase", phase=phase, done=done, total=total, unit=unit)

    return report


def run(plan: Plan, events: EventSink) -> RunResult:
    import torch
    from tunewise.methods.rag.embed import Embedder, is_bundled, resolve_embedding_model
    from tunewise.plugins.models import load_model, load_tokenizer
    from tunewise.plugins.task_detection import detect_task

    started = time.perf_counter()
    config = config_from_plan(plan)
    if not plan.data:
        raise TunewiseError(f"{plan.source or 'plan'}: data: name the labeled examples (jsonl, json, csv …)")
    out = Path(plan.output_dir).expanduser()
    # Config paths go through Plan.config_path (confined to the plan's folder and the working directory).
    eval_path = plan.config_path(config.eval_data, "eval_data") if config.eval_data else None
    embedding_model = config.embedding_model if is_bundled(config.embedding_model) else \
        str(plan.config_path(str(config.embedding_model), "embedding_model"))
    examples = [e for path in plan.data for e in load_examples(path)]
    if eval_path is not None:
        pool, held_out = examples, load_examples(eval_path)
    else:
        pool, held_out = split_examples(examples, config.eval_fraction, config.seed)
    held_out = held_out[: config.max_eval] if config.max_eval else held_out
    # The task is read from every answer the run sees, so the labels include those only held out.
    task = detect_task([{"prompt": e.query_text, "completion": e.answer} for e in [*pool, *held_out]],
                       "prompt_completion")
    free_text = task.task != "classification"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    strategies = list(SELECTIONS) if config.compare_selections else [config.selection]
    strategies.sort(key=lambda s: s != config.selection)  # the plan's choice first
    tokenizer = load_tokenizer(plan.model)  # a missing model is refused before ``start``
    max_new_tokens = answer_tokens(tokenizer, [*pool, *held_out], config.max_new_tokens)
    # Every refusal comes before ``start``: a refused run leaves the output folder untouched.
    events("start", method="in_context", total_steps=0, plan=plan.to_dict(), device=device,
           pool=len(pool), held_out=len(held_out), strategies=strategies, task=task.to_dict(),
           max_new_tokens=max_new_tokens)
    events("log", level="info", message=f"task: {task.reason}; answers up to {max_new_tokens} tokens")
    out.mkdir(parents=True, exist_ok=True)

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar is noise in run logs
    model = load_model(plan.model, dtype="bfloat16" if device == "cuda" else "float32", device=device).eval()
    model_params = int(model.num_parameters())
    builder = PromptBuilder(tokenizer, config.system_prompt)
    select = _phase(events, "selecting examples", "texts")
    select(0, len(pool) + len(held_out))
    costs = [builder.example_cost(example) for example in pool]
    generate = ChatGenerator(model, tokenizer, max_new_tokens)

    pool_vectors = query_vectors = None
    if any(s in ("knn", "mmr") for s in strategies):
        events("log", level="info", message=f"embedding {len(pool)} pool and {len(held_out)} held-out inputs")
        embedder = Embedder(resolve_embedding_model(embedding_model), device=device)
        pool_vectors = embedder.encode([e.query_text for e in pool])
        query_vectors = embedder.encode([e.query_text for e in held_out])
    select(len(pool) + len(held_out), len(pool) + len(held_out))

    events("log", level="info", message=f"zero-shot on {len(held_out)} held-out examples")
    outcomes: list[Outcome] = [evaluate_condition("zero-shot", held_out, builder, generate, free_text=free_text,
                                                  progress=_phase(events, "answering zero-shot"))]
    for strategy in strategies:
        events("log", level="info", message=f"few-shot ({strategy}, up to {config.shots} examples, "
                                            f"{config.prompt_token_budget} tokens)")
        selector = Selector(pool, costs, config.shots, config.prompt_token_budget, strategy, pool_vectors,
                            config.mmr_lambda, config.seed)
        phase = "answering with examples" if strategy == config.selection else f"comparing selections ({strategy})"
        outcomes.append(evaluate_condition(f"few-shot {strategy}", held_out, builder, generate, selector,
                                           query_vectors, free_text=free_text, progress=_phase(events, phase)))
        main = "ROUGE-L" if free_text else "accuracy"
        value = outcomes[-1].metrics()["rouge_l" if free_text else "accuracy"]
        events("log", level="info", message=f"few-shot {strategy}: {main} {value:.3f}, "
                                            f"+{outcomes[-1].extra_tokens_per_query:.0f} prompt tokens/query")

    zero, chosen = outcomes[0], outcomes[1]
    held_out_from = f"{len(held_out)} from {config.eval_data}" if config.eval_data else \
        f"{len(held_out)} held out as {config.eval_fraction:.0%} of the data"
    bake, evidence = icl_bake_off(task, held_out, zero, chosen, budget=config.prompt_token_budget,
                                  shots=config.shots, model_params=model_params, held_out_from=held_out_from)
    metrics_before = {**zero.metrics(), bake.metric: bake.before}
    metrics_after = {**chosen.metrics(), bake.metric: bake.after}
    for outcome in outcomes[2:]:
        metrics_after.update({f"{outcome.name.split()[-1]}_{k}": v for k, v in outcome.metrics().items()})
    events("eval", phase="before", step=0, metrics=metrics_before)
    events("eval", phase="after", step=0, metrics=metrics_after)
    events("bakeoff", **bake.to_dict())

    wall_s = time.perf_counter() - started
    samples: list[dict[str, Any]] = [
        {"input": z["input"], "reference": z["reference"], "zero_shot": z["prediction"], "few_shot": f["prediction"]}
        for z, f in zip(zero.records[:SAMPLES_IN_REPORT], chosen.records[:SAMPLES_IN_REPORT], strict=True)
    ]
    summary = {"data": ", ".join(plan.data), "model": plan.model or "embedded SmolLM2-135M-Instruct",
               "task": task.reason, "example pool": len(pool), "held-out": len(held_out),
               "held-out from": config.eval_data or f"{config.eval_fraction:.0%} of the data (seed {config.seed})",
               "selection": config.selection, "shots": config.shots,
               "prompt token budget": config.prompt_token_budget, "answers up to": f"{max_new_tokens} tokens"}
    report_path = out / "report.md"
    report_path.write_text(redact(render_report(summary=summary, outcomes=outcomes, chosen=chosen.name,
                                                samples=samples, wall_s=wall_s,
                                                bakeoff=bakeoff_markdown(bake, evidence))), encoding="utf-8")
    bakeoff_path = write_bakeoff(out, bake, evidence)
    metrics: dict[str, Any] = {o.name: {**o.metrics(), "max_extra_tokens": o.max_extra_tokens} for o in outcomes}
    metrics |= {"before": metrics_before, "after": metrics_after, "task": task.to_dict(),
                "max_new_tokens": max_new_tokens, "wall_s": wall_s}
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(redact_data(merge_metrics(metrics, bake)), indent=2, ensure_ascii=False)
                            + "\n", encoding="utf-8")
    predictions_path = out / "predictions.jsonl"
    predictions_path.write_text("".join(json.dumps(redact_data(r), ensure_ascii=False) + "\n"
                                        for o in outcomes for r in o.records), encoding="utf-8")
    message = (f"{bake.sentence.rstrip('.')}. The examples add {chosen.extra_tokens_per_query:.0f} prompt tokens "
               f"per query ({chosen.shots_per_query:.1f} examples on average).")
    return RunResult("in_context", "completed", metrics_before=metrics_before, metrics_after=metrics_after,
                     artifacts={"report": str(report_path), "metrics": str(metrics_path),
                                "bakeoff": str(bakeoff_path), "predictions": str(predictions_path)},
                     report=str(report_path), message=message, output_dir=str(out), wall_s=round(wall_s, 2),
                     bakeoff=bake.to_dict())
