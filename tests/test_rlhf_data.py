"""RLHF / DPO data: preference pairs and prompts, every bad row named by file:line, the plan's config."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support import REPO, run_cli
from tunewise.advisor.plans import PlanError, parse_plan
from tunewise.methods.rlhf.config import RlhfConfig
from tunewise.methods.rlhf.preferences import (
    load_pairs,
    load_prompts,
    sft_rows_from_pairs,
    split_pairs,
    unique_prompts,
)
from tunewise.plugins.data import DataError

GOOD = {"prompt": "How do I boil an egg?", "chosen": "Six minutes, then cold water.", "rejected": "Figure it out."}


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def pairs_error(path: Path) -> str:
    with pytest.raises(DataError) as err:
        load_pairs([str(path)])
    return str(err.value)


@pytest.mark.parametrize(("bad", "message"), [
    ({"prompt": "q", "chosen": "a"}, "'rejected' is missing or empty"),
    ({"prompt": "q", "chosen": "", "rejected": "b"}, "'chosen' is missing or empty"),
    ({"prompt": "q", "chosen": "same", "rejected": "same"}, "identical"),
    ({"prompt": "q", "responses": ["only one"]}, "at least two responses"),
    ({"prompt": 7, "chosen": "a", "rejected": "b"}, "'prompt' must be text"),
    ({"chosen": "a", "rejected": "b"}, "missing 'prompt'"),
    ({"prompt": [{"role": "assistant", "content": "hi"}], "chosen": "a", "rejected": "b"}, "must end with a user turn"),
    ('{"prompt": "q", "chosen": "a",', "invalid JSON"),
    ({"instruction": "q", "output": "a"}, "row has shape 'instruction'"),
])
def test_bad_preference_row_names_file_and_line(tmp_path: Path, bad: object, message: str) -> None:
    path = write_jsonl(tmp_path / "prefs.jsonl", [GOOD, GOOD, bad])
    error = pairs_error(path)
    assert f"{path}:3" in error and message in error, error


def test_every_bad_row_is_listed_at_once(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "prefs.jsonl", [GOOD, {"prompt": "q", "chosen": "a"}, GOOD,
                                                  {"prompt": "q", "rejected": "b"}])
    error = pairs_error(path)
    assert f"{path}:2" in error and f"{path}:4" in error


def test_csv_rows_are_numbered_by_line(tmp_path: Path) -> None:
    path = tmp_path / "prefs.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "chosen", "rejected"])
        writer.writerow(["q1", "good", "bad"])
        writer.writerow(["q2", "same", "same"])
    assert f"{path}:3" in pairs_error(path)


def test_ranked_responses_give_every_ordered_pair(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ranked.jsonl", [{"prompt": "q", "responses": ["best", "middle", "worst"]}])
    pairs, files = load_pairs([str(path)])
    assert files == [str(path)]
    assert [(p.chosen, p.rejected) for p in pairs] == [("best", "middle"), ("best", "worst"), ("middle", "worst")]
    assert all(p.where == f"{path}:1" for p in pairs)


def test_conversations_without_prompt_share_their_leading_turns(tmp_path: Path) -> None:
    user = {"role": "user", "content": "hi?"}
    row = {"chosen": [user, {"role": "assistant", "content": "Hello!"}],
           "rejected": [user, {"role": "assistant", "content": "What."}]}
    pairs, _ = load_pairs([str(write_jsonl(tmp_path / "conv.jsonl", [row]))])
    assert pairs[0].prompt_turns == [user]
    assert (pairs[0].chosen, pairs[0].rejected) == ("Hello!", "What.")
    assert pairs[0].as_trl()["chosen"] == [{"role": "assistant", "content": "Hello!"}]


def test_split_keeps_all_pairs_of_a_prompt_on_one_side(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i} {k}"} for i in range(20) for k in range(2)]
    pairs, _ = load_pairs([str(write_jsonl(tmp_path / "p.jsonl", rows))])
    train, held = split_pairs(pairs, 0.2, 100, seed=1)
    assert len(train) + len(held) == 40 and held
    assert not {p.prompt_key for p in train} & {p.prompt_key for p in held}
    assert split_pairs(pairs, 0.2, 100, seed=1) == (train, held)
    assert len(unique_prompts(held)) == len(held) // 2
    assert len(sft_rows_from_pairs(train)) == len(train) // 2


def test_prompt_files(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("first?\n\n second? \n", encoding="utf-8")
    assert [p.text for p in load_prompts(tmp_path / "p.txt")] == ["first?", "second?"]
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a?"}, {"prompt": ""}, {"other": 1}])
    with pytest.raises(DataError) as err:
        load_prompts(path)
    assert f"{path}:2" in str(err.value) and f"{path}:3" in str(err.value)


def test_example_data_is_valid_and_balanced() -> None:
    pairs, _ = load_pairs([str(REPO / "examples/data/preferences.jsonl")])
    assert len(pairs) >= 100
    assert len(unique_prompts(pairs)) * 2 == len(pairs)
    prompts = load_prompts(REPO / "examples/data/rlhf_prompts.jsonl")
    assert len(prompts) >= 20
    assert not {p.turns for p in prompts} & {p.prompt for p in pairs}


def test_config_problems_name_the_field() -> None:
    assert RlhfConfig().problems() == []
    fields = dict(RlhfConfig(num_generations=1, beta=-1.0, reward_num_layers=2, reward_top_layers=3,
                             sft_data="x.jsonl").problems())
    assert set(fields) == {"num_generations", "beta", "reward_top_layers", "sft_data"}
    assert RlhfConfig(algorithm="dpo").kl_beta == 0.1 and RlhfConfig().kl_beta == 0.04


def test_plan_validation_reports_yaml_lines(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "prefs.jsonl", [GOOD])
    text = "method: rlhf\ndata: prefs.jsonl\nconfig:\n  algorithm: ppo\n  num_generations: 1\ntraining:\n  max_steps: 0\n"
    with pytest.raises(PlanError) as err:
        parse_plan(text, source="plan.yaml", base_dir=tmp_path)
    message = str(err.value)
    assert "plan.yaml:4: config.algorithm: must be one of grpo, rloo, dpo" in message
    assert "plan.yaml:5: config.num_generations" in message
    assert "plan.yaml:7: training.max_steps" in message


def test_example_plans_parse() -> None:
    for name in ("rlhf", "dpo"):
        plan = parse_plan((REPO / f"examples/plans/{name}.yaml").read_text(), source=f"{name}.yaml",
                          base_dir=REPO / "examples/plans")
        assert plan.method == "rlhf" and Path(plan.data[0]).is_file()
        assert plan.config["algorithm"] == ("dpo" if name == "dpo" else "grpo")


def test_run_stops_on_a_bad_row_before_loading_a_model(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "prefs.jsonl", [GOOD, {"prompt": "q", "chosen": "x", "rejected": "x"}])
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"method: rlhf\nmodel: {tmp_path / 'no-such-model'}\ndata: prefs.jsonl\n"
                    f"output_dir: {tmp_path / 'out'}\n", encoding="utf-8")
    proc = run_cli("run", str(plan), "--quiet")
    assert proc.returncode == 1
    assert f"{data}:2" in proc.stderr and "identical" in proc.stderr
    assert "Traceback" not in proc.stderr
