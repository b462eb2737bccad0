"""Running an RLHF or DPO plan end to end.

Order: data checked (bad rows stop the run before any model loads) → optional SFT → reward model
(trained, or given by ``reward_model_path``; for DPO only as the judge) and its held-out pairwise
accuracy → the base answers the held-out prompts (greedy) → GRPO/RLOO against the reward model, or
DPO → the tuned policy answers the same prompts → the bake-off (win rate with its interval and
verdict, judged as :mod:`tunewise.methods.rlhf.bakeoff` says), mean reward, KL, unchanged answers →
``report.md`` (bake-off first), ``metrics.json``, ``bakeoff.jsonl``, ``generations.jsonl``, plots,
model card.

Everything lives under ``output_dir`` (see :mod:`tunewise.methods.rlhf.stages` for the stage
folders). ``--resume`` skips finished stages, resumes the interrupted one from its newest complete
checkpoint and reuses the base answers; it refuses when the plan, model or data changed
(``--force`` overrides). Without ``--resume`` a folder holding an earlier run is refused unless
``--force`` (which deletes it).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tunewise.plugins.data import DataError
from tunewise.plugins.redaction import redact_data, seal_data
from tunewise.plugins.types import EventSink, Plan, RunResult

IDENTITY_FILE = "identity.json"
BEFORE_FILE = "eval_before.json"
RUN_OUTPUTS = ("stages", IDENTITY_FILE, BEFORE_FILE, "report.md", "metrics.json", "generations.jsonl", "bakeoff.jsonl",
               "plots")


def _config_path(value: str | None, plan: Plan, name: str) -> Path | None:
    """A path from the plan's config (:meth:`Plan.config_path`: beside the plan, else in the working
    directory, never outside both without --allow-outside-paths); it must exist."""
    if value is None:
        return None
    path = plan.config_path(value, name)
    if not path.exists():
        raise DataError(f"config.{name}: {value} does not exist (resolved to {path})")
    return path.resolve()


def _check_output(out: Path, plan: Plan, identity: dict[str, Any], events: EventSink) -> None:
    """Refuse to mix runs: an earlier run's folder needs --resume (same identity) or --force."""
    from tunewise.methods._hf.identity import identity_differences
    from tunewise.methods._hf.pipeline import ResumeError

    earlier = out / IDENTITY_FILE
    has_run = earlier.is_file() or (out / "stages").is_dir()
    if has_run and not plan.resume:
        if not plan.force:
            raise ResumeError(f"{out} already holds an RLHF run; pass --resume to continue it, --force to start "
                              "over (deletes it) or --out DIR for a new folder")
        from tunewise.methods.rlhf.stages import forget_stages

        forget_stages(out)  # only what tunewise wrote there: files the user put in the folders stay
        for name in RUN_OUTPUTS:
            target = out / name
            if target.is_file() or target.is_symlink():
                target.unlink()
        events("log", level="warning", message=f"--force: deleted the earlier run in {out}")
    elif plan.resume and earlier.is_file():
        saved = json.loads(earlier.read_text(encoding="utf-8"))
        differences = identity_differences(saved, identity)
        if differences:
            listed = "\n  - ".join(differences)
            if not plan.force:
                raise ResumeError(f"cannot resume the run in {out}: it was made by a different plan:\n  - {listed}\n"
                                  "Pass --force to resume anyway, or use another --out.")
            events("log", level="warning", message="--force: resuming despite differences: " + "; ".join(differences))
    out.mkdir(parents=True, exist_ok=True)
    (out / IDENTITY_FILE).write_text(json.dumps(seal_data(identity), indent=1), encoding="utf-8")


def _load_causal(path: Path, placement: Any, adapter: Path | None = None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM
    from tunewise.plugins.trust import check_model_folder

    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True,
                                                 trust_remote_code=check_model_folder(path, need_weights=True))
    if adapter is not None:
        from peft import PeftModel

        check_model_folder(adapter)  # an adapter folder falls back to adapter_model.bin (a pickle) too
        model = PeftModel.from_pretrained(model, adapter)
    return model.to(placement.device).eval()


def _steps(count: int, batch: int, accum: int, epochs: int, max_steps: int | None) -> int:
    """Optimizer steps the way the Trainer counts them (batches per epoch, then accumulation)."""
    if max_steps:
        return max_steps
    return epochs * max(1, math.ceil(math.ceil(count / max(1, batch)) / max(1, accum)))


def run(plan: Plan, events: EventSink) -> RunResult:
    from tunewise.methods._hf.pipeline import method_config, training_settings
    from tunewise.methods.rlhf.config import PPO_NOTE, RlhfConfig
    from tunewise.methods.rlhf.preferences import load_pairs, load_prompts, split_pairs, unique_prompts

    wall_start = time.time()
    settings = training_settings(plan.training)
    config: RlhfConfig = method_config(RlhfConfig, plan.config)
    out = Path(plan.output_dir).expanduser().resolve()
    from tunewise.methods._hf.guardrails import Budget, BudgetedEvents

    # max_hours / max_usd: the stages' trainers read ``stop_requested`` after every step and checkpoint.
    # Unlike the single-model methods, only this process's hours count (the Trainer keeps no tunewise state).
    budget = Budget.from_settings(settings, wall_start)
    guarded = BudgetedEvents(events, budget, SimpleNamespace(extra={})) if budget.active else None
    events = guarded or events

    # 1. data (nothing heavy yet: a bad row stops the run here)
    pairs, files = load_pairs(plan.data)
    train_pairs, held_pairs = split_pairs(pairs, settings.eval_fraction, settings.eval_max_examples, settings.seed)
    if not train_pairs:
        raise DataError(f"{files[0]}: no training pairs left after the held-out split")
    prompts_path = _config_path(config.prompts, plan, "prompts")
    eval_path = _config_path(config.eval_prompts, plan, "eval_prompts")
    sft_path = _config_path(config.sft_data, plan, "sft_data")
    reward_given = _config_path(config.reward_model_path, plan, "reward_model_path")
    if reward_given is not None and not (reward_given / "config.json").is_file():
        raise DataError(f"config.reward_model_path: {reward_given} has no config.json; point it at the "
                        "stages/reward_model/model folder of an earlier run or another one-label classifier")
    if reward_given is not None:
        from tunewise.plugins.trust import check_model_folder

        check_model_folder(reward_given, need_weights=True)  # now, not after hours of SFT and policy training
    policy_prompts = load_prompts(prompts_path) if prompts_path else unique_prompts(train_pairs)
    eval_prompts = (load_prompts(eval_path) if eval_path else unique_prompts(held_pairs))[: config.eval_max_prompts]
    if sft_path is not None and config.sft:
        from tunewise.methods.rlhf.sft import sft_rows

        sft_rows(str(sft_path))  # its rows are checked now, before any model; the SFT stage reads it again
    notes: list[str] = []
    training_keys = {p.turns for p in policy_prompts}
    leaked = sum(p.turns in training_keys for p in eval_prompts)
    if leaked:
        notes.append(f"{leaked} of {len(eval_prompts)} evaluation prompts are also training prompts")
    if not eval_prompts:
        notes.append("no held-out prompts (eval_fraction is 0 or too few pairs): no win rate, reward or KL")
    if not held_pairs:
        notes.append("no held-out pairs: no reward-model accuracy")
    extra_files = [str(p) for p in (prompts_path, eval_path, sft_path) if p is not None and p.is_file()]

    from tunewise.methods._hf.device import peak_memory_gb, resolve_placement
    from tunewise.methods._hf.identity import run_identity
    from tunewise.plugins.models import load_tokenizer, resolve_model

    ref = resolve_model(plan.model)
    tokenizer = load_tokenizer(str(ref.path))
    placement = resolve_placement(settings.device, settings.precision)
    identity = run_identity(method="rlhf", model_name=ref.name, model_path=ref.path, data_files=[*files, *extra_files],
                            config=dataclasses.asdict(config), training=settings.identity(),
                            precision=placement.precision, device_type=placement.device_type)
    _check_output(out, plan, identity, events)
    max_length = config.max_length or settings.seq_len
    counts = {"pairs": len(pairs), "train_pairs": len(train_pairs), "held_out_pairs": len(held_pairs),
              "policy_prompts": len(policy_prompts), "eval_prompts": len(eval_prompts)}

    stage_steps = {}
    if config.sft:
        stage_steps["sft"] = config.sft_max_steps
    if config.needs_reward_model and reward_given is None:
        stage_steps["reward_model"] = _steps(len(train_pairs), config.reward_batch_size or settings.batch_size,
                                             settings.grad_accum, config.reward_epochs, config.reward_max_steps)
    if config.algorithm == "dpo":
        stage_steps["policy"] = _steps(len(train_pairs), settings.batch_size, settings.grad_accum, settings.epochs,
                                       settings.max_steps)
    else:
        stage_steps["policy"] = _steps(len(policy_prompts), config.prompts_per_step, 1, settings.epochs,
                                       settings.max_steps)
    if placement.note:
        events("log", level="warning" if "slower" in placement.note else "info", message=placement.note)
    if config.algorithm != "dpo":
        events("log", level="info", message=PPO_NOTE)
    for note in notes:
        events("log", level="warning", message=note)
    events("start", method="rlhf", total_steps=sum(stage_steps.values()), plan=plan.to_dict(),
           device=placement.describe(), model=ref.name, algorithm=config.algorithm, stages=stage_steps,
           counts=counts)
    from tunewise.methods.rlhf.stages import StageStopped

    try:
        with warnings.catch_warnings():
            # transformers 5 renamed gradient_checkpointing; trl 1.16 still uses the old name internally.
            warnings.filterwarnings("ignore", message=r".*will be removed in v6", category=FutureWarning)
            return _run_stages(plan, events, config, settings, placement, ref, tokenizer, out, train_pairs,
                               held_pairs, policy_prompts, eval_prompts, sft_path, reward_given, max_length, files,
                               counts, notes, stage_steps, wall_start)
    except KeyboardInterrupt:
        # SIGTERM / Ctrl-C outside a training loop (loading, evaluating): finished stages stay on disk.
        message = "cancelled between training steps; finished stages are kept and --resume continues from them"
        events("log", level="warning", message=message)
        return RunResult("rlhf", "cancelled", message=message, output_dir=str(out),
                         peak_memory_gb=round(peak_memory_gb(placement), 3), wall_s=round(time.time() - wall_start, 2))
    except StageStopped as stop:
        if guarded is not None and guarded.reason and stop.kind == "cancelled":
            message = (f"stopped: budget: {guarded.reason} at {stop.stage} step {stop.step}; a checkpoint was "
                       "written. Raise training.max_hours / training.max_usd in the plan and continue with --resume.")
            events("log", level="warning", message=message, kind="budget", step=stop.step, stage=stop.stage)
            return RunResult("rlhf", "stopped", message=message, output_dir=str(out), steps=stop.step,
                             peak_memory_gb=round(peak_memory_gb(placement), 3),
                             wall_s=round(time.time() - wall_start, 2))
        # A non-finite stop already sent its error event (with advice); a cancel is only logged.
        status = "cancelled" if stop.kind == "cancelled" else "failed"
        if status == "cancelled":
            events("log", level="warning", message=str(stop))
        return RunResult("rlhf", status, message=str(stop), output_dir=str(out),
                         peak_memory_gb=round(peak_memory_gb(placement), 3), wall_s=round(time.time() - wall_start, 2))


def _run_stages(plan: Plan, events: EventSink, config: Any, settings: Any, placement: Any, ref: Any, tokenizer: Any,
                out: Path, train_pairs: Sequence[Any], held_pairs: Sequence[Any], policy_prompts: Sequence[Any],
                eval_prompts: Sequence[Any], sft_path: Path | None, reward_given: Path | None, max_length: int,
                files: Sequence[str], counts: dict[str, Any], notes: list[str], stage_steps: dict[str, int],
                wall_start: float) -> RunResult:
    from transformers.utils import logging as hf_logging
    from tunewise.methods._hf.device import device_description, peak_memory_gb
    from tunewise.methods.rlhf.stages import Stage

    hf_logging.disable_progress_bar()
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:
        pass

    offsets, total = {}, 0
    for name, count in stage_steps.items():
        offsets[name] = total
        total += count

    def stage(name: str) -> Stage:
        return Stage(name, out, settings, placement, events, offsets.get(name, 0), total)

    stages: dict[str, dict[str, Any]] = {}
    policy_start = ref.path

    def phase(name: str, unit: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            events("phase", phase=name, done=done, total=total, unit=unit)

        return report

    # -- 1. SFT ---------------------------------------------------------------------------------------
    if config.sft:
        sft = stage("sft")
        phase("supervised fine-tuning", "steps")(0, stage_steps["sft"])
        result = sft.done()
        if result is None:
            from tunewise.methods.rlhf.sft import train_sft

            result = train_sft(sft, config, ref.path, tokenizer, str(sft_path) if sft_path else None, train_pairs)
            result["what"] = "supervised fine-tuning on demonstrations"
            sft.mark_done(result)
        else:
            sft.log("finished earlier; reusing its model")
        stages["sft"] = result
        policy_start = sft.model_dir

    # -- 2. reward model ------------------------------------------------------------------------------
    reward_path: Path | None = None
    after: dict[str, float] = {}
    if config.needs_reward_model:
        if reward_given is not None:
            reward_path = reward_given
            stages["reward_model"] = {"what": f"given: {reward_given}", "steps": 0}
        else:
            rm = stage("reward_model")
            phase("reward model", "steps")(0, stage_steps["reward_model"])
            result = rm.done()
            if result is None:
                from tunewise.methods.rlhf.reward_model import train_reward_model

                result = train_reward_model(rm, config, policy_start, tokenizer, train_pairs, max_length)
                result["what"] = ("reward model (judge only)" if config.algorithm == "dpo" else "reward model") \
                    + (", LoRA" if config.reward_lora else "") \
                    + (f", top {config.reward_top_layers} blocks" if config.reward_top_layers else "")
                result["held_out"] = _reward_accuracy(rm.model_dir, placement, held_pairs, max_length)
                rm.mark_done(result)
            else:
                rm.log("finished earlier; reusing its model")
            stages["reward_model"] = result
            reward_path = rm.model_dir
            after.update(result.get("held_out", {}))
        if reward_given is not None and held_pairs:
            after.update(_reward_accuracy(reward_given, placement, held_pairs, max_length))
        if "reward_accuracy" in after:
            events("eval", phase="during", step=0, stage="reward_model",
                   metrics={k: v for k, v in after.items() if k.startswith("reward_")})

    # -- 3. the base answers the held-out prompts ----------------------------------------------------
    # The judge (see tunewise.methods.rlhf.bakeoff): the reward model when there is one, else, for DPO,
    # the held-out pairs' log-probability margins; without either there is no bake-off.
    judge = "reward" if reward_path is not None and eval_prompts else \
        "pairs" if config.algorithm == "dpo" and held_pairs and reward_path is None else None
    judged_pairs = list(held_pairs) if judge == "pairs" else []
    base = _evaluate_base(out, ref.path, tokenizer, eval_prompts, judged_pairs, reward_path, config, placement,
                          max_length, phase)
    before: dict[str, float] = dict(base["metrics"])
    if before:
        events("eval", phase="before", step=0, metrics=before)

    # -- 4. policy optimisation or DPO ---------------------------------------------------------------
    policy = stage("policy")
    phase("policy training", "steps")(0, stage_steps["policy"])
    result = policy.done()
    if result is None:
        if config.algorithm == "dpo":
            from tunewise.methods.rlhf.dpo import train_dpo

            result = train_dpo(policy, config, policy_start, tokenizer, train_pairs, held_pairs, max_length)
            result["what"] = "DPO on the preference pairs" + (", LoRA" if config.lora else "")
        else:
            from tunewise.methods.rlhf.policy import train_policy

            assert reward_path is not None
            result = train_policy(policy, config, policy_start, tokenizer, policy_prompts, reward_path)
            result["what"] = (f"{config.algorithm.upper()} against the reward model, KL beta {config.kl_beta:g}"
                              + (", LoRA" if config.lora else ""))
        policy.mark_done(result)
    else:
        policy.log("finished earlier; reusing its model")
    stages["policy"] = result
    after.update(result.get("held_out", {}))

    # -- 5. the tuned policy answers the same prompts ------------------------------------------------
    tuned = _evaluate_tuned(policy.model_dir, policy_start, tokenizer, eval_prompts, judged_pairs, reward_path,
                            config, settings, placement, max_length, phase)
    after.update(tuned["metrics"])
    base_by_id = dict(zip(base["ids"], base["answers"], strict=True))
    tuned_by_id = dict(zip(base["ids"], tuned["answers"], strict=True))
    from tunewise.methods.rlhf.bakeoff import tie_unchanged, unchanged_share

    if base["rewards"] is not None and tuned["rewards"] is not None:
        tuned["rewards"] = tie_unchanged(base["answers"], tuned["answers"], base["rewards"], tuned["rewards"])
    unchanged = unchanged_share(base_by_id, tuned_by_id)
    if unchanged is not None:
        after["unchanged_answers"] = unchanged
    if after:
        events("eval", phase="after", step=result.get("steps", 0), metrics=after)

    # -- 6. the bake-off ------------------------------------------------------------------------------
    bake, examples, why_not = _bake_off(judge, config, result, eval_prompts, judged_pairs, base, tuned,
                                        len(train_pairs), len(policy_prompts), settings, unchanged, after)
    if bake is not None:
        events("bakeoff", **bake.to_dict())
    generations = [{"prompt": p.text, "where": p.where, "base": b, "base_reward": br, "tuned": t, "tuned_reward": tr}
                   for p, b, t, br, tr in zip(eval_prompts, base["answers"], tuned["answers"],
                                              base["rewards"] or [None] * len(eval_prompts),
                                              tuned["rewards"] or [None] * len(eval_prompts), strict=True)]

    # -- 7. report ------------------------------------------------------------------------------------
    from tunewise.methods.rlhf import report
    from tunewise.methods.rlhf.bakeoff import judge_note
    from tunewise.plugins.bakeoff import merge_metrics
    from tunewise.plugins.bakeoff_report import bakeoff_markdown, write_bakeoff

    artifacts = {"policy": str(policy.model_dir)}
    if reward_path is not None:
        artifacts["reward_model"] = str(reward_path)
    if config.sft:
        artifacts["sft_model"] = str(stage("sft").model_dir)
    metrics: dict[str, Any] = {"before": before, "after": after}
    if bake is not None:
        metrics = merge_metrics(metrics, bake)
        artifacts["bakeoff"] = str(write_bakeoff(out, bake, examples))
        first_section = bakeoff_markdown(bake, examples) + "\n" + judge_note(
            judge or "", after.get("reward_accuracy"), config.algorithm) + "\n"
    else:
        first_section = f"## Bake-off: base vs result on the held-out split\n\n**{why_not}**\n"
    summary = report.RlhfSummary(
        algorithm=config.algorithm, model=ref.name, device=device_description(placement), data_files=list(files),
        counts=counts, before=metrics["before"], after=metrics["after"], stages=stages, generations=generations,
        config=dataclasses.asdict(config), settings=settings.identity(), wall_seconds=time.time() - wall_start,
        peak_memory_gb=round(peak_memory_gb(placement), 3), artifacts=artifacts, notes=notes,
    )
    if generations:
        artifacts["generations"] = str(report.write_generations(out, generations))
    report.write_model_card(policy.model_dir, summary, ref.name, adapter=config.lora)
    plots = report.write_plots(out / "plots", summary)
    artifacts["metrics"] = str(out / "metrics.json")
    artifacts["report"] = str(out / "report.md")
    report.write_metrics(out, summary, metrics)
    path = report.write_report(out, summary, plots, config.report_samples, first_section)
    steps = sum(int(s.get("steps", 0)) for s in stages.values())
    verdict = bake.sentence if bake is not None else why_not
    return RunResult("rlhf", "completed", metrics_before=metrics["before"], metrics_after=metrics["after"],
                     artifacts=artifacts, report=str(path),
                     message=f"{verdict.rstrip('.')}. {_headline(config.algorithm, before, after)}",
                     output_dir=str(out), steps=steps, peak_memory_gb=summary.peak_memory_gb,
                     wall_s=round(time.time() - wall_start, 2), bakeoff=bake.to_dict() if bake is not None else None)


def _bake_off(judge: str | None, config: Any, policy_result: dict[str, Any], prompts: Sequence[Any],
              pairs: Sequence[Any], base: dict[str, Any], tuned: dict[str, Any], train_pairs: int,
              policy_prompts: int, settings: Any, unchanged: float | None,
              after: dict[str, float]) -> tuple[Any, list[Any], str]:
    """The bake-off and its evidence, or None and the sentence saying why there is none."""
    from tunewise.methods.rlhf.bakeoff import method_name, pair_bake_off, reward_bake_off
    from tunewise.methods.rlhf.config import POLICY_LR_RANGE
    from tunewise.plugins.bakeoff import RunFacts

    if judge is None:
        if not prompts and not pairs:
            why = ("no bake-off: there are no held-out prompts; raise training.eval_fraction or set "
                   "config.eval_prompts to a file of prompts no stage trains on")
        else:
            why = ("no bake-off: nothing judges the answers; set config.dpo_reward_judge: true (a reward model "
                   "trained on the training pairs) or config.reward_model_path, or hold out preference pairs "
                   "(training.eval_fraction)")
        return None, [], why
    dpo = config.algorithm == "dpo"
    facts = RunFacts(
        steps=int(policy_result.get("steps", 0)) or None,
        train_examples=train_pairs if dpo else policy_prompts,
        examples_per_step=float(settings.batch_size * settings.grad_accum if dpo else config.prompts_per_step),
        learning_rate=policy_result.get("learning_rate"), lr_range=POLICY_LR_RANGE.get((config.algorithm, config.lora)),
        model_params=base.get("params") or None, unchanged_answers=unchanged, kl=after.get("kl"),
    )
    method = method_name(config.algorithm, config.lora)
    if judge == "pairs":
        bake, examples = pair_bake_off(pairs, base["margins"], tuned["margins"], method=method, facts=facts)
    else:
        bake, examples = reward_bake_off(prompts, base["answers"], tuned["answers"], base["rewards"],
                                         tuned["rewards"], method=method, facts=facts)
    return bake, examples, ""


def _headline(algorithm: str, before: dict[str, float], after: dict[str, float]) -> str:
    parts = [algorithm.upper()]
    if "reward_accuracy" in after:
        parts.append(f"reward accuracy {after['reward_accuracy']:.2f}")
    if "mean_reward" in before and "mean_reward" in after:
        parts.append(f"mean reward {before['mean_reward']:.3f} -> {after['mean_reward']:.3f}")
    if "kl" in after:
        parts.append(f"KL {after['kl']:.3f}")
    if "unchanged_answers" in after:
        parts.append(f"{after['unchanged_answers']:.0%} of answers unchanged")
    if "dpo_implicit_accuracy" in after:
        parts.append(f"DPO implicit accuracy {after['dpo_implicit_accuracy']:.2f}")
    return "; ".join(parts)


def _reward_accuracy(path: Path, placement: Any, held_pairs: Sequence[Any], max_length: int) -> dict[str, float]:
    from tunewise.methods.rlhf.reward_model import RewardScorer

    if not held_pairs:
        return {}
    scorer = RewardScorer(path, placement, max_length=max_length)
    metrics = scorer.pairwise_accuracy(held_pairs)
    del scorer
    gc.collect()
    return metrics


def _evaluate_base(out: Path, base_path: Path, tokenizer: Any, prompts: Sequence[Any], pairs: Sequence[Any],
                   reward_path: Path | None, config: Any, placement: Any, max_length: int,
                   phase: Callable[[str, str], Callable[[int, int], None]]) -> dict[str, Any]:
    """The base's greedy answers (and their rewards) and its margins on the judged pairs; computed once
    and kept in ``eval_before.json``, so a resumed run compares the tuned policy with the same answers."""
    from tunewise.methods.rlhf.bakeoff import pair_margins
    from tunewise.methods.rlhf.evaluate import greedy_answers, mean
    from tunewise.plugins.bakeoff_report import unique_ids

    ids = unique_ids([p.where for p in prompts])
    pair_ids = unique_ids([p.where for p in pairs])
    saved = out / BEFORE_FILE
    if saved.is_file():
        data = json.loads(saved.read_text(encoding="utf-8"))
        # An eval_before.json of an older tunewise (sampled answers) or another prompt set is recomputed.
        if data.get("ids") == ids and data.get("pair_ids") == pair_ids and "answers" in data:
            return data
    empty: dict[str, Any] = {"ids": ids, "pair_ids": pair_ids, "answers": [], "rewards": None, "margins": None,
                             "metrics": {}, "params": 0}
    if not prompts and not pairs:
        return empty
    model = _load_causal(base_path, placement)
    data = dict(empty, params=sum(p.numel() for p in model.parameters()))
    data["answers"] = greedy_answers(model, tokenizer, prompts, config.max_new_tokens, placement,
                                     phase("answering before", "prompts")) if prompts else []
    if pairs:
        data["margins"] = pair_margins(model, tokenizer, pairs, placement, phase("scoring pairs before", "pairs"))
    del model
    gc.collect()
    if reward_path is not None and prompts:
        data["rewards"] = _rewards(reward_path, placement, max_length, prompts, data["answers"])
        data["metrics"]["mean_reward"] = mean(data["rewards"])
    if prompts:
        data["metrics"]["mean_answer_tokens"] = _mean_tokens(tokenizer, data["answers"])
    saved.write_text(json.dumps(redact_data(data), indent=1), encoding="utf-8")
    return data


def _evaluate_tuned(policy_dir: Path, policy_start: Path, tokenizer: Any, prompts: Sequence[Any], pairs: Sequence[Any],
                    reward_path: Path | None, config: Any, settings: Any, placement: Any, max_length: int,
                    phase: Callable[[str, str], Callable[[int, int], None]]) -> dict[str, Any]:
    """The tuned policy's greedy answers (and rewards), its margins on the judged pairs, and its KL to the
    reference from answers sampled from it."""
    from tunewise.methods.rlhf.bakeoff import pair_margins
    from tunewise.methods.rlhf.evaluate import greedy_answers, kl_estimate, mean, sample_answers

    data: dict[str, Any] = {"answers": [], "rewards": None, "margins": None, "metrics": {}}
    if not prompts and not pairs:
        return data
    if config.lora:
        tuned = _load_causal(policy_start, placement, adapter=policy_dir)
        reference, context = tuned, tuned.disable_adapter
    else:
        tuned = _load_causal(policy_dir, placement)
        reference, context = _load_causal(policy_start, placement), None
    if prompts:
        data["answers"] = greedy_answers(tuned, tokenizer, prompts, config.max_new_tokens, placement,
                                         phase("answering after", "prompts"))
        phase("estimating KL", "prompts")(0, len(prompts))
        samples = sample_answers(tuned, tokenizer, prompts, config.eval_samples_per_prompt, config.max_new_tokens,
                                 placement, settings.seed)
        data["metrics"].update(kl_estimate(tuned, reference, samples, placement, reference_context=context))
        phase("estimating KL", "prompts")(len(prompts), len(prompts))
    if pairs:
        data["margins"] = pair_margins(tuned, tokenizer, pairs, placement, phase("scoring pairs after", "pairs"))
    del tuned, reference, context
    gc.collect()
    if reward_path is not None and prompts:
        data["rewards"] = _rewards(reward_path, placement, max_length, prompts, data["answers"])
        data["metrics"]["mean_reward"] = mean(data["rewards"])
    if prompts:
        data["metrics"]["mean_answer_tokens"] = _mean_tokens(tokenizer, data["answers"])
    return data


def _rewards(reward_path: Path, placement: Any, max_length: int, prompts: Sequence[Any],
             answers: Sequence[str]) -> list[float]:
    from tunewise.methods.rlhf.reward_model import RewardScorer

    scorer = RewardScorer(reward_path, placement, max_length=max_length)
    rewards = scorer.score([p.messages for p in prompts], list(answers))
    del scorer
    gc.collect()
    return rewards


def _mean_tokens(tokenizer: Any, answers: Sequence[str]) -> float:
    counts = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
    return sum(counts) / len(counts) if counts else 0.0
