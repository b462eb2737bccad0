"""Every RLHF / DPO run ends with a bake-off: the tuned policy against the base on every held-out
prompt (or held-out pair), judged as :mod:`tunewise.methods.rlhf.bakeoff` says. Real runs of the CLI
on a tiny random model; a run that cannot move the policy is told so, with the setting to change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_checkpoint_resume import read_events, run

RUDE = ("Ugh, whatever.", "Figure it out yourself.", "Stupid question.", "Not my problem.")


def write_plan(folder: Path, model: Path, *, algorithm: str, judge: bool = True, learning_rate: float = 5e-3,
               steps: int = 6, extra: str = "") -> Path:
    """20 learnable pairs (short and polite beats rude), 5 of them (their prompts) held out."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": f"How do I do task {i}?", "chosen": f"Do step {i}, then check it. Thanks!",
             "rejected": f"{RUDE[i % 4]} Task {i} is obvious and boring, go away."} for i in range(20)]
    (folder / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.yaml"
    plan.write_text(f"""method: rlhf
model: {model}
data: prefs.jsonl
config:
  algorithm: {algorithm}
  dpo_reward_judge: {str(judge).lower()}
  reward_max_steps: 4
  reward_learning_rate: 1.0e-3
  lora: true
  num_generations: 2
  prompts_per_step: 2
  max_new_tokens: 6
  report_samples: 2
{extra}training:
  max_steps: {steps}
  save_steps: 100
  batch_size: 4
  eval_fraction: 0.25
  learning_rate: {learning_rate}
  seed: 3
""")
    return plan


def finished(plan: Path, out: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Run the plan; (metrics.json, the run result, the events)."""
    done = run(str(plan), "--out", str(out))
    assert done.returncode == 0, done.stderr
    events = read_events(out)
    assert events[-1]["event"] == "end" and events[-1]["status"] == "completed"
    return json.loads((out / "metrics.json").read_text()), events[-1]["result"], events


def check_bakeoff(out: Path, metrics: dict[str, Any], result: dict[str, Any], events: list[dict[str, Any]],
                  unit: str) -> list[dict[str, Any]]:
    """What every RLHF / DPO bake-off must leave behind; returns the per-example lines of bakeoff.jsonl."""
    bake = metrics["bakeoff"]
    assert metrics["main_metric"] == "win_rate" and metrics["interval_95"] == bake["interval_95"]
    assert metrics["after"]["win_rate"] == bake["after"]["win_rate"] and metrics["before"]["win_rate"] == 0.5
    assert bake["unit"] == unit and bake["examples"] == bake["wins"] + bake["ties"] + bake["losses"]
    assert result["bakeoff"] == bake and result["message"].startswith(bake["sentence"].rstrip("."))
    assert [e["sentence"] for e in events if e["event"] == "bakeoff"] == [bake["sentence"]]
    report = (out / "report.md").read_text()
    first = report.split("\n## ", 1)[1]
    assert first.startswith("Bake-off: base vs result") and bake["sentence"].split(":")[0] in first
    lines = [json.loads(line) for line in (out / "bakeoff.jsonl").read_text().splitlines()]
    assert lines[0]["bakeoff"]["verdict"] == bake["verdict"]
    examples = lines[1:]
    assert len(examples) == bake["examples"]
    # Recount wins, ties and losses from the per-example evidence: the verdict is what the file says.
    wins = sum(e["result_score"] > e["base_score"] for e in examples)
    ties = sum(e["result_score"] == e["base_score"] for e in examples)
    assert (wins, ties) == (bake["wins"], bake["ties"])
    win_rate = (wins + ties / 2) / len(examples)
    assert bake["after"]["win_rate"] == pytest.approx(win_rate)
    return examples


def held_out_lines(out: Path) -> set[str]:
    """The ``prefs.jsonl:N`` lines whose prompts the run held out (from its reward-model stage or pairs)."""
    return {e["id"].split("#")[0] for e in
            (json.loads(line) for line in (out / "bakeoff.jsonl").read_text().splitlines()[1:])}


def test_dpo_run_ends_with_a_bakeoff_judged_by_its_reward_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    metrics, result, events = finished(write_plan(tmp_path, tiny_model_dir, algorithm="dpo"), out)
    examples = check_bakeoff(out, metrics, result, events, "held-out prompts")
    # The whole held-out prompt set: 5 of the 20 prompts, each named file:line, none a training prompt.
    assert len(examples) == 5 and len({e["id"] for e in examples}) == 5
    assert all(e["id"].startswith(str(tmp_path / "prefs.jsonl") + ":") for e in examples)
    generations = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    by_prompt = {g["prompt"]: g for g in generations}
    for e in examples:  # the judged answers are the reported ones, with the rewards the judge gave them
        g = by_prompt[e["prompt"]]
        assert (g["base"], g["tuned"]) == (e["base_answer"], e["result_answer"])
        assert (g["base_reward"], g["tuned_reward"]) == (e["base_score"], e["result_score"])
    unchanged = sum(e["base_answer"] == e["result_answer"] for e in examples) / len(examples)
    assert metrics["after"]["unchanged_answers"] == pytest.approx(unchanged)
    assert "kl" in metrics["after"] and "reward_accuracy" in metrics["after"]
    assert "reward model" in (out / "report.md").read_text().split("\n## ", 2)[1]  # the judge is named
    phases = [e for e in events if e["event"] == "phase"]
    assert {p["phase"] for p in phases} >= {"reward model", "policy training", "answering before", "answering after"}
    answering = [p for p in phases if p["phase"] == "answering after"]
    assert answering[-1]["done"] == answering[-1]["total"] == 5 and answering[-1]["unit"] == "prompts"


def test_grpo_run_ends_with_a_bakeoff(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    metrics, result, events = finished(write_plan(tmp_path, tiny_model_dir, algorithm="grpo", steps=3), out)
    examples = check_bakeoff(out, metrics, result, events, "held-out prompts")
    assert len(examples) == 5
    assert "GRPO policy" in metrics["bakeoff"]["sentence"]
    assert "reward hacking" in (out / "report.md").read_text()  # the judge is the training reward: said so


def test_dpo_without_a_reward_model_is_judged_on_held_out_pairs(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    metrics, result, events = finished(write_plan(tmp_path, tiny_model_dir, algorithm="dpo", judge=False,
                                                  learning_rate=2e-2, steps=8), out)
    examples = check_bakeoff(out, metrics, result, events, "held-out preference pairs")
    assert len(examples) == 5
    assert "reward_model" not in metrics["stages"]
    # Each score is the model's log-probability margin of the preferred over the rejected answer; DPO at a
    # high rate on learnable pairs widens it on pairs it never saw.
    assert sum(e["result_score"] > e["base_score"] for e in examples) >= 4
    assert "held-out preference pairs" in (out / "report.md").read_text().split("\n## ", 2)[1]


def test_a_policy_that_does_not_move_is_not_better_and_told_why(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    metrics, result, _ = finished(write_plan(tmp_path, tiny_model_dir, algorithm="dpo", learning_rate=1e-9,
                                             steps=4), out)
    bake = metrics["bakeoff"]
    assert bake["verdict"] == "not_better" and bake["ties"] == bake["examples"]
    assert metrics["after"]["unchanged_answers"] == 1.0 and metrics["after"]["kl"] < 0.01
    reasons = {r["code"]: r for r in bake["reasons"]}
    assert "policy_unmoved" in reasons and "barely moved" in reasons["policy_unmoved"]["reason"]
    assert bake["reasons"][0]["setting"] in ("training.learning_rate", "training.max_steps", "config.beta")
    assert "barely moved" in result["message"] and "training.learning_rate" in result["message"]


def test_judge_rules_on_fixed_scores() -> None:
    """Unchanged answers tie whatever float noise their rewards carry; pair margins within 0.001 nats tie;
    several pairs from one ranked row keep ids of their own."""
    from tunewise.methods.rlhf.bakeoff import pair_bake_off, reward_bake_off
    from tunewise.methods.rlhf.preferences import PreferencePair, Prompt
    from tunewise.plugins.bakeoff import RunFacts

    prompts = [Prompt((("user", f"q{i}"),), f"eval.jsonl:{i + 1}") for i in range(4)]
    bake, examples = reward_bake_off(prompts, ["a", "b", "c", "d"], ["a", "b ", "C!", "d?"],
                                     [0.5, 1.0, 0.2, 0.9], [0.5000001, 0.9999998, 0.7, 0.1],
                                     method="the DPO policy", facts=RunFacts())
    assert (bake.wins, bake.ties, bake.losses) == (1, 2, 1)
    assert [e.id for e in examples] == [p.where for p in prompts]
    assert [e.result_score for e in examples] == [0.5, 1.0, 0.7, 0.1]

    pairs = [PreferencePair((("user", "q"),), f"good {i}", "bad", "ranked.jsonl:1") for i in range(3)]
    bake, examples = pair_bake_off(pairs, [2.0, 2.0, 2.0], [2.0000004, 2.5, 1.2], method="the DPO policy",
                                   facts=RunFacts())
    assert (bake.wins, bake.ties, bake.losses) == (1, 1, 1) and bake.unit == "held-out preference pairs"
    assert [e.id for e in examples] == ["ranked.jsonl:1", "ranked.jsonl:1#2", "ranked.jsonl:1#3"]
