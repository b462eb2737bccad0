"""``tunewise export``: configs LLaMA-Factory and Axolotl accept, checked against the keys their sources define.

``tests/export_schemas.json`` holds the accepted keys read from the tools' sources (see
``tests/gen_export_schemas.py``; the commit read is recorded in it). Every example plan is exported
for both tools through the real CLI, then every key, value choice, dataset description and data
column is checked against that schema and against the data files themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import REPO, run_cli

SCHEMAS = json.loads((Path(__file__).with_name("export_schemas.json")).read_text())
LF = SCHEMAS["llamafactory"]
AX = SCHEMAS["axolotl"]
PLANS = REPO / "examples" / "plans"
EXAMPLES = ("lora", "full_finetune", "continual_pretraining", "dpo", "rlhf")


def _export(plan: Path, tool: str, out: Path) -> tuple[dict[str, Any], str]:
    result = run_cli("export", str(plan), "--to", tool, "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    return yaml.safe_load(text), text


def _rows(path: Path, limit: int = 50) -> list[dict[str, Any]]:
    files = sorted(p for p in path.iterdir()) if path.is_dir() else [path]
    rows: list[dict[str, Any]] = []
    for file in files:
        if file.suffix == ".txt":
            rows += [{"text": line} for line in file.read_text().splitlines()[:limit]]
        elif file.suffix in (".jsonl", ".json"):
            rows += [json.loads(line) for line in file.read_text().splitlines()[:limit] if line.strip()]
    return rows


def _check_choices(config: dict[str, Any], keys: dict[str, Any]) -> None:
    for key, value in config.items():
        choices = keys.get(key, {}).get("choices")
        if choices and not isinstance(value, bool):
            assert value in choices, f"{key}: {value!r} not in {choices}"


def _check_llamafactory(config: dict[str, Any], folder: Path) -> None:
    accepted = set(LF["keys"]) | set(LF["hf_training_keys"])
    unknown = sorted(set(config) - accepted)
    assert not unknown, f"LLaMA-Factory rejects unknown keys: {unknown}"
    assert all(v is not None for v in config.values())
    _check_choices(config, LF["keys"])
    if "template" in config:
        assert config["template"] in LF["templates"]
    assert Path(config["dataset_dir"]) == folder
    info = json.loads((folder / "dataset_info.json").read_text())
    spec = LF["dataset_info"]
    for name in config["dataset"].split(","):
        entry = info[name]
        assert set(entry) <= set(spec["entry_keys"]), entry
        assert set(entry.get("columns", {})) <= set(spec["columns"])
        assert set(entry.get("tags", {})) <= set(spec["tags"])
        assert entry.get("formatting", "alpaca") in spec["formatting"]
        data = Path(config["dataset_dir"]) / entry["file_name"]  # absolute file_name wins in os.path.join
        assert data.exists(), data
        files = list(data.iterdir()) if data.is_dir() else [data]
        assert {f.suffix.lstrip(".") for f in files} <= set(spec["file_types"])
        assert len({f.suffix for f in files}) == 1  # LLaMA-Factory: "File types should be identical"
        rows = _rows(data)
        assert rows
        for column in entry.get("columns", {}).values():
            assert any(column in row for row in rows), f"{name}: column {column!r} not in the data"
        if entry.get("formatting") == "sharegpt":
            tags = entry["tags"]
            roles = {m[tags["role_tag"]] for row in rows for m in row[entry["columns"]["messages"]]}
            assert roles <= {tags["user_tag"], tags["assistant_tag"], tags["system_tag"]}


def _check_axolotl(config: dict[str, Any]) -> None:
    unknown = sorted(set(config) - set(AX["keys"]))
    assert not unknown, f"Axolotl ignores unknown keys: {unknown}"
    assert not set(config) & set(AX["deprecated_keys"])
    assert all(v is not None for v in config.values())
    _check_choices(config, AX["keys"])
    if "rl" in config:
        assert config["rl"] in AX["rl"]
    allowed = set(AX["dpo_dataset_keys"]) if config.get("rl") else set(AX["sft_dataset_keys"])
    for entry in config["datasets"]:
        assert set(entry) <= allowed, sorted(set(entry) - allowed)
        kind = entry["type"]
        if isinstance(kind, dict):
            assert set(kind) <= set(AX["user_defined_type_keys"])
        else:
            assert kind in AX["dataset_types"], kind
        path = Path(entry["path"])
        assert path.exists(), path
        rows = _rows(path)
        assert rows
        fields = [entry.get(k) for k in ("field_messages", "field_chosen", "field_rejected", "field") if entry.get(k)]
        if kind == "bradley_terry.chat_template":
            fields += ["system", "input", "chosen", "rejected"]
        elif isinstance(kind, dict):
            fields += [kind["field_instruction"], kind["field_output"]]
        elif kind == "alpaca":
            fields += ["instruction", "output"]
        elif kind in ("completion",) and "field" not in entry:
            fields.append("text")
        for column in fields:
            assert all(column in row for row in rows), f"{path}: rows lack {column!r}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_plans_export_to_accepted_configs(name: str, tmp_path: Path) -> None:
    lf, lf_text = _export(PLANS / f"{name}.yaml", "llamafactory", tmp_path / f"{name}.llamafactory.yaml")
    _check_llamafactory(lf, tmp_path)
    assert lf_text.startswith("# LLaMA-Factory config exported by tunewise") and "llamafactory-cli train" in lf_text
    ax, ax_text = _export(PLANS / f"{name}.yaml", "axolotl", tmp_path / f"{name}.axolotl.yaml")
    _check_axolotl(ax)
    assert "axolotl train" in ax_text


def test_lora_values_carry_over(tmp_path: Path, embedded_model_path: Path) -> None:
    plan = yaml.safe_load((PLANS / "lora.yaml").read_text())
    lf, _ = _export(PLANS / "lora.yaml", "llamafactory", tmp_path / "lf.yaml")
    ax, _ = _export(PLANS / "lora.yaml", "axolotl", tmp_path / "ax.yaml")
    cfg, tr = plan["config"], plan["training"]
    assert lf["model_name_or_path"] == ax["base_model"] == str(embedded_model_path)
    assert (lf["stage"], lf["finetuning_type"], lf["template"]) == ("sft", "lora", "smollm2")
    assert (lf["lora_rank"], lf["lora_alpha"], lf["lora_dropout"]) == (cfg["r"], cfg["alpha"], cfg["dropout"])
    assert lf["lora_target"] == ",".join(cfg["target_modules"])
    assert (ax["adapter"], ax["lora_r"], ax["lora_alpha"], ax["lora_dropout"]) == ("lora", cfg["r"], cfg["alpha"],
                                                                                   cfg["dropout"])
    assert ax["lora_target_modules"] == cfg["target_modules"]
    assert lf["learning_rate"] == ax["learning_rate"] == tr["learning_rate"]
    assert lf["max_steps"] == ax["max_steps"] == tr["max_steps"]
    assert lf["per_device_train_batch_size"] == ax["micro_batch_size"] == tr["batch_size"]
    assert lf["cutoff_len"] == ax["sequence_len"] == tr["seq_len"]
    assert lf["val_size"] == ax["val_set_size"] == tr["eval_fraction"]
    assert lf["warmup_steps"] == round(tr["warmup_ratio"] * tr["max_steps"]) and ax["warmup_ratio"] == tr["warmup_ratio"]
    assert lf["neat_packing"] is True and ax["sample_packing"] is True
    assert lf["output_dir"].endswith("llamafactory") and ax["output_dir"].endswith("axolotl")


def test_dpo_and_reward_stages(tmp_path: Path) -> None:
    lf, _ = _export(PLANS / "dpo.yaml", "llamafactory", tmp_path / "dpo.lf.yaml")
    assert (lf["stage"], lf["pref_loss"], lf["pref_beta"], lf["finetuning_type"]) == ("dpo", "sigmoid", 0.1, "lora")
    ax, _ = _export(PLANS / "dpo.yaml", "axolotl", tmp_path / "dpo.ax.yaml")
    assert (ax["rl"], ax["rl_beta"], ax["adapter"]) == ("dpo", 0.1, "lora")
    lf, text = _export(PLANS / "rlhf.yaml", "llamafactory", tmp_path / "rlhf.lf.yaml")
    assert lf["stage"] == "rm" and "GRPO policy stage" in text
    ax, _ = _export(PLANS / "rlhf.yaml", "axolotl", tmp_path / "rlhf.ax.yaml")
    assert ax["reward_model"] is True and ax["num_labels"] == 1
    assert ax["datasets"][0]["type"] == "bradley_terry.chat_template"
    assert Path(ax["datasets"][0]["path"]).parent == tmp_path / "rlhf.ax_data"


def test_ranked_responses_are_written_as_pairs_and_dataset_info_merges(tmp_path: Path) -> None:
    data = tmp_path / "ranked.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"q{i}", "responses": ["best", "good", "bad"]})
                              for i in range(4)) + "\n")
    plan = tmp_path / "ranked.yaml"
    plan.write_text(f"method: rlhf\ndata: {data}\nconfig: {{algorithm: dpo}}\ntraining: {{max_steps: 2}}\n")
    out = tmp_path / "exports"
    _export(PLANS / "lora.yaml", "llamafactory", out / "lora.yaml")
    lf, _ = _export(plan, "llamafactory", out / "ranked.yaml")
    _check_llamafactory(lf, out)
    info = json.loads((out / "dataset_info.json").read_text())
    assert {"tunewise_support_chat", "tunewise_ranked"} <= set(info)  # merged, not overwritten
    pairs = _rows(Path(info["tunewise_ranked"]["file_name"]))
    assert len(pairs) == 4 * 3 and pairs[0] == {"prompt": "q0", "chosen": "best", "rejected": "good"}


def test_methods_without_an_equivalent_are_refused(tmp_path: Path) -> None:
    plan = tmp_path / "icl.yaml"
    plan.write_text(f"method: in_context\ndata: {REPO / 'examples' / 'data' / 'support_chat.jsonl'}\n")
    result = run_cli("export", str(plan), "--to", "axolotl", "--out", str(tmp_path / "x.yaml"))
    assert result.returncode == 1 and "method 'in_context' cannot be exported" in result.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_export_imports_nothing_heavy(tmp_path: Path) -> None:
    probe = ("import runpy, sys; sys.argv = ['tunewise', 'export', sys.argv[1], '--to', 'llamafactory', '--out', "
             "sys.argv[2]]\ntry:\n    runpy.run_module('tunewise.advisor.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\nprint(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe, str(PLANS / "lora.yaml"), str(tmp_path / "c.yaml")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
