"""Plan files: schema, YAML line numbers in every message, path policy, the example plans."""

from __future__ import annotations

from pathlib import Path

import pytest
from tunewise.advisor.plans import PlanError, load_plan, parse_plan, plan_to_yaml
from tunewise.advisor.runner import apply_overrides

REPO = Path(__file__).resolve().parents[1]


def write(folder: Path, text: str, name: str = "plan.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "plans" / "data" / "chat.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    return path


def test_a_valid_plan_resolves_data_against_its_folder_and_types_values(tmp_path: Path, data_file: Path) -> None:
    plan_path = write(tmp_path / "plans", """\
method: lora
data: data/chat.jsonl
config:
  r: 4
  target_modules: all-linear
training:
  learning_rate: 2e-4      # YAML 1.1 reads this as text; number fields accept it
  epochs: 2
  report_to: [tensorboard]
""")
    plan = load_plan(plan_path)
    assert plan.method == "lora" and plan.model is None
    assert plan.data == (str(data_file),)
    assert plan.config == {"r": 4, "target_modules": ["all-linear"]}
    assert plan.training == {"learning_rate": 2e-4, "epochs": 2, "report_to": ["tensorboard"]}
    assert plan.output_dir == str(Path("runs") / "plan") and plan.source == str(plan_path)
    # Round trip: the YAML a plan writes loads back to the same plan.
    again = parse_plan(plan_to_yaml(plan), source="again.yaml")
    assert (again.method, again.data, again.config, again.training) == (plan.method, plan.data, plan.config,
                                                                        plan.training)


def test_every_problem_is_reported_with_its_line_and_field_path(tmp_path: Path, data_file: Path) -> None:
    plan_path = write(tmp_path / "plans", """\
method: lora
data: [data/chat.jsonl, missing.jsonl]
colour: blue
config:
  r: 0
  rank: 8
training:
  batch_size: two
  precision: bf17
  warmup_ratio: 1.5
  batch_size: 3
""")
    with pytest.raises(PlanError) as info:
        load_plan(plan_path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{plan_path}: 7 problems in the plan:"
    body = "\n".join(lines[1:])
    assert f"{plan_path}:2: data[1]: missing.jsonl does not exist" in body
    assert f"{plan_path}:3: colour: unknown field" in body
    assert f"{plan_path}:5: config.r: must be a whole number >= 1, got 0" in body
    assert f"{plan_path}:6: config.rank: unknown field; LoraConfig has: r, alpha" in body
    assert f"{plan_path}:9: training.precision: must be one of auto, fp32, bf16, fp16, got 'bf17'" in body
    assert f"{plan_path}:10: training.warmup_ratio: must be in [0, 1), got 1.5" in body
    assert f"{plan_path}:11: training.batch_size: given twice" in body


def test_unknown_method_bad_yaml_and_methods_that_do_not_train(tmp_path: Path, data_file: Path) -> None:
    with pytest.raises(PlanError, match=r"plan.yaml:1: method: unknown method 'lora2'; registered: .*lora"):
        parse_plan("method: lora2\ndata: x\n", base_dir=tmp_path)
    with pytest.raises(PlanError, match=r"plan.yaml:3: not valid YAML"):
        parse_plan("method: lora\ndata: x\n  bad: indent\n", base_dir=tmp_path)
    with pytest.raises(PlanError, match=r"method: missing"):
        parse_plan(f"data: {data_file}\n")
    with pytest.raises(PlanError, match=r"plan.yaml:3: training: method 'in_context' does not train"):
        parse_plan(f"method: in_context\ndata: {data_file}\ntraining:\n  epochs: 1\n")


def test_path_policy_absolute_home_and_parent_paths(tmp_path: Path, data_file: Path, monkeypatch) -> None:
    nested = tmp_path / "plans" / "deep"
    monkeypatch.chdir(tmp_path)  # the project: data out of the plan's folder must stay in the working directory
    plan = load_plan(write(nested, "method: full_finetune\ndata: ../data/chat.jsonl\noutput_dir: out/x\n"))
    assert plan.data == (str(data_file),) and plan.output_dir == "out/x"
    assert load_plan(write(nested, f"method: full_finetune\ndata: {data_file}\n", "abs.yaml")).data == (str(data_file),)
    monkeypatch.setenv("HOME", str(tmp_path / "plans"))
    assert load_plan(write(nested, "method: full_finetune\ndata: ~/data/chat.jsonl\n", "home.yaml")).data == (
        str(data_file),)


def test_command_line_overrides(tmp_path: Path, data_file: Path) -> None:
    plan = load_plan(write(tmp_path / "plans", "method: lora\ndata: data/chat.jsonl\ntraining: {max_steps: 50}\n"))
    changed = apply_overrides(plan, out=str(tmp_path / "o"), max_steps=3, resume=True)
    assert changed.training["max_steps"] == 3 and changed.output_dir == str(tmp_path / "o")
    assert changed.resume and not changed.force and plan.training["max_steps"] == 50


@pytest.mark.parametrize("name", ["full_finetune", "lora", "continual_pretraining"])
def test_example_plans_load(name: str) -> None:
    plan = load_plan(REPO / "examples" / "plans" / f"{name}.yaml")
    assert plan.method == name and all(Path(p).exists() for p in plan.data)
    assert plan.training["max_steps"] >= 1


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "examples" / "plans").glob("*.yaml")))
def test_every_example_plan_loads_with_its_data(name: str) -> None:
    plan = load_plan(REPO / "examples" / "plans" / f"{name}.yaml")
    assert plan.data and all(Path(p).exists() for p in plan.data), plan.data
