"""``tunewise run`` for an in-context plan: pick examples per query, compare zero-shot and few-shot.

The plan's data is the labeled example store; the held-out set is ``config.eval_data`` or a stable
content-hash split of the data. The model answers every held-out input zero-shot (instruction only)
and few-shot with the plan's selection (and, with ``compare_selections``, the other strategies), under
the prompt-token budget. Writes ``report.md``, ``metrics.json`` and ``predictions.jsonl``.

Events: ``start``, ``log`` per condition, ``eval`` ``before`` (zero-shot) and ``after`` (few-shot).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from tunewise.methods.in_context.config import SELECTIONS, InContextConfig
from tunewise.methods.in_context.evaluate import ChatGenerator, Outcome, Selector, evaluate_condition
from tunewise.methods.in_context.examples import load_examples, split_examples
from tunewise.methods.in_context.prompting import PromptBuilder
from tunewise.methods.in_context.report import render_report
from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.redaction import redact, redact_data
from tunewise.plugins.types import EventSink, Plan, RunResult

SAMPLES_IN_REPORT = 8


def config_from_plan(plan: Plan) -> InContextConfig:
    known = {f.name for f in dataclasses.fields(InContextConfig)}
    unknown = sorted(set(plan.config) - known)
    if unknown:
        raise TunewiseError(f"{plan.source or 'plan'}: config has unknown in-context settings "
                            f"{', '.join(unknown)}; known: {', '.join(sorted(known))}")
    config = InContextConfig(**dict(plan.config))
    config.check()
    return config


def run(plan: Plan, events: EventSink) -> RunResult:
    import torch
    from tunewise.methods.rag.embed import Embedder, is_bundled, resolve_embedding_model
    from tunewise.plugins.models import load_model, load_tokenizer

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
    held_out = held_out[: config.max_eval]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    strategies = list(SELECTIONS) if config.compare_selections else [config.selection]
    strategies.sort(key=lambda s: s != config.selection)  # the plan's choice first
    tokenizer = load_tokenizer(plan.model)  # a missing model is refused before ``start``
    # Every refusal comes before ``start``: a refused run leaves the output folder untouched.
    events("start", method="in_context", total_steps=0, plan=plan.to_dict(), device=device,
           pool=len(pool), held_out=len(held_out), strategies=strategies)
    out.mkdir(parents=True, exist_ok=True)

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar is noise in run logs
    model = load_model(plan.model, dtype="bfloat16" if device == "cuda" else "float32", device=device).eval()
    builder = PromptBuilder(tokenizer, config.system_prompt)
    costs = [builder.example_cost(example) for example in pool]
    generate = ChatGenerator(model, tokenizer, config.max_new_tokens)

    pool_vectors = query_vectors = None
    if any(s in ("knn", "mmr") for s in strategies):
        events("log", level="info", message=f"embedding {len(pool)} pool and {len(held_out)} held-out inputs")
        embedder = Embedder(resolve_embedding_model(embedding_model), device=device)
        pool_vectors = embedder.encode([e.query_text for e in pool])
        query_vectors = embedder.encode([e.query_text for e in held_out])

    events("log", level="info", message=f"zero-shot on {len(held_out)} held-out examples")
    outcomes: list[Outcome] = [evaluate_condition("zero-shot", held_out, builder, generate)]
    for strategy in strategies:
        events("log", level="info", message=f"few-shot ({strategy}, up to {config.shots} examples, "
                                            f"{config.prompt_token_budget} tokens)")
        selector = Selector(pool, costs, config.shots, config.prompt_token_budget, strategy, pool_vectors,
                            config.mmr_lambda, config.seed)
        outcomes.append(evaluate_condition(f"few-shot {strategy}", held_out, builder, generate, selector,
                                           query_vectors))
        events("log", level="info", message=f"few-shot {strategy}: accuracy {outcomes[-1].accuracy:.3f}, "
                                            f"+{outcomes[-1].extra_tokens_per_query:.0f} prompt tokens/query")

    zero, chosen = outcomes[0], outcomes[1]
    metrics_before = zero.metrics()
    metrics_after = chosen.metrics()
    for outcome in outcomes[2:]:
        metrics_after.update({f"{outcome.name.split()[-1]}_{k}": v for k, v in outcome.metrics().items()})
    events("eval", phase="before", step=0, metrics=metrics_before)
    events("eval", phase="after", step=0, metrics=metrics_after)

    wall_s = time.perf_counter() - started
    samples: list[dict[str, Any]] = [
        {"input": z["input"], "reference": z["reference"], "zero_shot": z["prediction"], "few_shot": f["prediction"]}
        for z, f in zip(zero.records[:SAMPLES_IN_REPORT], chosen.records[:SAMPLES_IN_REPORT], strict=True)
    ]
    summary = {"data": ", ".join(plan.data), "model": plan.model or "embedded SmolLM2-135M-Instruct",
               "example pool": len(pool), "held-out": len(held_out),
               "held-out from": config.eval_data or f"{config.eval_fraction:.0%} of the data (seed {config.seed})",
               "selection": config.selection, "shots": config.shots,
               "prompt token budget": config.prompt_token_budget}
    report_path = out / "report.md"
    report_path.write_text(redact(render_report(summary=summary, outcomes=outcomes, chosen=chosen.name,
                                                samples=samples, wall_s=wall_s)), encoding="utf-8")
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps({o.name: {**o.metrics(), "max_extra_tokens": o.max_extra_tokens}
                                        for o in outcomes} | {"wall_s": wall_s}, indent=2) + "\n", encoding="utf-8")
    predictions_path = out / "predictions.jsonl"
    predictions_path.write_text("".join(json.dumps(redact_data(r), ensure_ascii=False) + "\n"
                                        for o in outcomes for r in o.records), encoding="utf-8")
    message = (f"zero-shot accuracy {zero.accuracy:.2f}; {chosen.name} {chosen.accuracy:.2f} "
               f"(+{chosen.extra_tokens_per_query:.0f} prompt tokens per query)")
    return RunResult("in_context", "completed", metrics_before=metrics_before, metrics_after=metrics_after,
                     artifacts={"report": str(report_path), "metrics": str(metrics_path),
                                "predictions": str(predictions_path)},
                     report=str(report_path), message=message, output_dir=str(out), wall_s=round(wall_s, 2))
