"""Untrusted artifacts: pickles, remote code and paths that leave their folder are refused, not run.

Each test builds the real artifact (a pickle whose unpickling writes a file, a model folder whose
``auto_map`` points at Python files that write a file when imported, manifests and plans naming
files outside their folder) and goes through the real loaders or a real ``tunewise run`` process.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import REPO, run_cli
from tunewise.advisor.plans import PlanError, load_plan
from tunewise.plugins.trust import REMOTE_CODE_ENV, UntrustedArtifactError, check_model_folder


class _RunsCode:
    """Unpickling this object executes ``code`` (the classic malicious-checkpoint payload)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple:
        return (exec, (self.code,))


def write_evil_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_RunsCode(f"open({str(marker)!r}, 'w').write('pwned')")))
    return path


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def chat_data(folder: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"Status of order {i}?"},
                          {"role": "assistant", "content": f"Order {i} ships tomorrow."}]} for i in range(12)]
    path = folder / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_plan(folder: Path, model: Path | str, data: str = "chat.jsonl", method: str = "full_finetune") -> Path:
    plan = folder / "plan.yaml"
    plan.write_text(f"method: {method}\nmodel: {model}\ndata: {data}\noutput_dir: {folder / 'out'}\n"
                    "training: {max_steps: 1, batch_size: 2, seq_len: 128, generation_examples: 0}\n")
    return plan


# -- pickles -------------------------------------------------------------------------------------------


def test_the_payload_is_real(tmp_path: Path) -> None:
    """Guard for the tests below: unpickling the file really runs its code (in a throwaway process)."""
    marker = tmp_path / "ran"
    evil = write_evil_pickle(tmp_path / "pytorch_model.bin", marker)
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(evil)!r}, 'rb'))"], check=True)
    assert marker.read_text() == "pwned"


def test_pickle_only_model_is_refused_by_tunewise_run_and_never_unpickled(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = tmp_path / "pickled-model"
    model.mkdir()
    shutil.copy(tiny_model_dir / "config.json", model / "config.json")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, model / name)
    marker = tmp_path / "ran"
    write_evil_pickle(model / "pytorch_model.bin", marker)
    chat_data(tmp_path)
    result = run_cli("run", str(write_plan(tmp_path, model)), "--quiet", cwd=tmp_path)
    assert result.returncode != 0
    assert "pickle" in result.stderr and "pytorch_model.bin" in result.stderr and "safetensors" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    with pytest.raises(UntrustedArtifactError, match="only weights are pickle files"):
        check_model_folder(model)


def test_pickle_next_to_safetensors_is_ignored(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A stray pickle beside safetensors weights is never opened: only safetensors are read."""
    from tunewise.plugins.models import load_model, load_tokenizer

    model = copy_model(tiny_model_dir, tmp_path / "model")
    marker = tmp_path / "ran"
    write_evil_pickle(model / "pytorch_model.bin", marker)
    write_evil_pickle(model / "training_args.bin", marker)
    load_tokenizer(str(model))
    loaded = load_model(str(model), dtype="float32")
    assert loaded.config.num_hidden_layers == 2
    assert not marker.exists()


def test_pickle_only_embedding_model_is_refused(tmp_path: Path) -> None:
    from tunewise.methods.rag.embed import bundled_model_dir, resolve_embedding_model

    bundled = bundled_model_dir()
    if bundled is None:
        pytest.skip("bundled embedding model not installed")
    folder = tmp_path / "embedder"
    shutil.copytree(bundled, folder, ignore=shutil.ignore_patterns("*.safetensors", "onnx", "openvino"))
    marker = tmp_path / "ran"
    write_evil_pickle(folder / "pytorch_model.bin", marker)
    with pytest.raises(UntrustedArtifactError, match="pickle"):
        resolve_embedding_model(str(folder))
    assert not marker.exists()


# -- remote code --------------------------------------------------------------------------------------


def remote_code_model(tiny_model_dir: Path, folder: Path, marker: Path) -> Path:
    """The tiny Llama with an ``auto_map`` to Python files in its folder that write ``marker`` on import."""
    model = copy_model(tiny_model_dir, folder)
    touch = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    (model / "configuration_shout.py").write_text(
        f"{touch}from transformers import LlamaConfig\n\n\nclass ShoutConfig(LlamaConfig):\n    model_type = 'llama'\n")
    (model / "modeling_shout.py").write_text(
        f"{touch}from transformers import LlamaForCausalLM\n\nfrom .configuration_shout import ShoutConfig\n\n\n"
        "class ShoutForCausalLM(LlamaForCausalLM):\n    config_class = ShoutConfig\n")
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_shout.ShoutConfig",
                          "AutoModelForCausalLM": "modeling_shout.ShoutForCausalLM"}
    (model / "config.json").write_text(json.dumps(config))
    return model


def test_auto_map_is_refused_without_opt_in_and_its_code_never_runs(tmp_path: Path, tiny_model_dir: Path) -> None:
    marker = tmp_path / "imported"
    model = remote_code_model(tiny_model_dir, tmp_path / "shout", marker)
    chat_data(tmp_path)
    env = {"HF_MODULES_CACHE": str(tmp_path / "hf-modules"), REMOTE_CODE_ENV: ""}
    result = run_cli("run", str(write_plan(tmp_path, model)), "--quiet", cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "auto_map" in result.stderr and "--trust-remote-code" in result.stderr
    assert "modeling_shout.ShoutForCausalLM" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_trust_remote_code_flag_is_the_only_way_to_run_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    marker = tmp_path / "imported"
    model = remote_code_model(tiny_model_dir, tmp_path / "shout", marker)
    chat_data(tmp_path)
    env = {"HF_MODULES_CACHE": str(tmp_path / "hf-modules"), REMOTE_CODE_ENV: ""}
    result = run_cli("run", str(write_plan(tmp_path, model)), "--quiet", "--trust-remote-code", cwd=tmp_path,
                     env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "modeling_shout" in marker.read_text()  # the user asked for it, so the model's own code ran


def test_auto_map_in_tokenizer_config_is_refused(tmp_path: Path, tiny_model_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.plugins.models import load_tokenizer

    monkeypatch.delenv(REMOTE_CODE_ENV, raising=False)
    model = copy_model(tiny_model_dir, tmp_path / "model")
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(UntrustedArtifactError, match=r"tokenizer_config\.json: auto_map"):
        load_tokenizer(str(model))


# -- file names that leave their folder -------------------------------------------------------------


@pytest.mark.parametrize("reference", ["../../secret.json", "/etc/passwd", "~/.ssh/id_rsa", "sub/../../x.json"])
def test_tokenizer_file_reference_out_of_the_folder_is_refused(tmp_path: Path, tiny_model_dir: Path,
                                                               reference: str) -> None:
    from tunewise.plugins.models import load_tokenizer

    model = copy_model(tiny_model_dir, tmp_path / "model")
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["tokenizer_file"] = reference
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(UntrustedArtifactError, match=r"tokenizer_config\.json \(tokenizer_file\).*points outside"):
        load_tokenizer(str(model))


def test_legacy_provenance_paths_in_configs_are_not_file_references(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Absolute paths hub configs carry as notes (never opened by transformers) do not refuse a model."""
    from tunewise.plugins.models import load_tokenizer

    model = copy_model(tiny_model_dir, tmp_path / "model")
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.update(special_tokens_map_file="/home/author/.cache/special_tokens_map.json", name_or_path="/home/author/m")
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    assert load_tokenizer(str(model)).pad_token is not None


def test_sharded_weight_map_out_of_the_folder_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.plugins.models import load_model

    model = copy_model(tiny_model_dir, tmp_path / "model")
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "../elsewhere/model.safetensors"}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(UntrustedArtifactError, match=r"weight_map\.model\.embed_tokens\.weight"):
        load_model(str(model))


def test_hf_cache_layout_with_symlinked_blobs_is_accepted(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The Hugging Face cache links each snapshot file to ../../blobs: links are not escaping names."""
    from tunewise.plugins.models import load_tokenizer

    blobs = tmp_path / "models--x--y" / "blobs"
    snapshot = tmp_path / "models--x--y" / "snapshots" / "abc"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in tiny_model_dir.iterdir():
        shutil.copy(file, blobs / file.name)
        os.symlink(Path("..", "..", "blobs", file.name), snapshot / file.name)
    config = json.loads((snapshot / "tokenizer_config.json").read_text())
    config["tokenizer_file"] = "tokenizer.json"
    (snapshot / "tokenizer_config.json").unlink()
    (snapshot / "tokenizer_config.json").write_text(json.dumps(config))
    assert check_model_folder(snapshot, need_weights=True) is False
    assert load_tokenizer(str(snapshot)).pad_token is not None


def test_rag_manifest_naming_files_outside_the_index_is_refused(tmp_path: Path) -> None:
    from tunewise.methods.rag.embed import resolve_embedding_model
    from tunewise.methods.rag.index import DATA_FILES, FORMAT, MANIFEST, RagIndex

    try:
        model = resolve_embedding_model(None)
    except Exception:
        pytest.skip("bundled embedding model not installed")
    secret = tmp_path / "private.txt"
    secret.write_text("not for the index")
    index = tmp_path / "index"
    index.mkdir()
    base = {"format": FORMAT, "chunking": {"chunk_tokens": 200, "overlap_tokens": 40}, "files": {}, "next_id": 0,
            "embedding_model": {"name": model.name, "path": str(model.path), "fingerprint": model.fingerprint,
                                "dimension": 384}}
    for data_dir, files in (("..", {"private.txt": "0"}), ("data-1", {"../../private.txt": "0"}),
                            ("data-1", {str(secret): "0"})):
        (index / "data-1").mkdir(exist_ok=True)
        files = {**dict.fromkeys(DATA_FILES, "0"), **files}  # a well-formed manifest but for the one name
        (index / MANIFEST).write_text(json.dumps({**base, "data_dir": data_dir, "data_files": files}))
        with pytest.raises(UntrustedArtifactError, match=r"manifest\.json \(data_(dir|files)\).*points outside"):
            RagIndex.open(index)


def test_dataset_manifest_naming_files_outside_its_folder_is_refused(tmp_path: Path) -> None:
    """A ``save_to_disk`` folder's state.json / dataset_dict.json are manifests: their names must stay inside."""
    from datasets import Dataset, DatasetDict
    from tunewise.plugins.data import load_dataset

    outside = tmp_path / "private"
    Dataset.from_dict({"text": ["a private note"]}).save_to_disk(str(outside))
    single = tmp_path / "single"
    Dataset.from_dict({"text": ["hello", "world"]}).save_to_disk(str(single))
    assert len(load_dataset(single).rows) == 2  # the genuine folder loads
    state = json.loads((single / "state.json").read_text())
    private_arrow = next(outside.glob("*.arrow"))
    state["_data_files"] = [{"filename": f"../private/{private_arrow.name}"}]
    (single / "state.json").write_text(json.dumps(state))
    with pytest.raises(UntrustedArtifactError, match=r"state\.json \(_data_files\).*points outside"):
        load_dataset(single)

    splits = tmp_path / "splits"
    DatasetDict({"train": Dataset.from_dict({"text": ["x"]})}).save_to_disk(str(splits))
    (splits / "dataset_dict.json").write_text(json.dumps({"splits": ["../private"]}))
    with pytest.raises(UntrustedArtifactError, match=r"dataset_dict\.json \(splits\).*points outside"):
        load_dataset(splits)


# -- plans --------------------------------------------------------------------------------------------


def project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A project folder with plans/ and data/ (the examples' layout), and a private file outside it."""
    root = tmp_path / "project"
    (root / "plans").mkdir(parents=True)
    (root / "data").mkdir()
    chat_data(root / "data")
    outside = tmp_path / "home"
    outside.mkdir()
    chat_data(outside)
    return root, root / "plans", outside / "chat.jsonl"


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_plan_data_outside_plan_folder_and_workdir_is_refused(tmp_path: Path, kind: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root, plans, private = project(tmp_path)
    reference = "../../home/chat.jsonl" if kind == "dotdot" else str(private)
    plan = write_plan(plans, "no/such/model", data=reference)
    monkeypatch.chdir(root)
    monkeypatch.delenv("TUNEWISE_ALLOW_OUTSIDE_PATHS", raising=False)
    with pytest.raises(PlanError, match=r"plan\.yaml:3: data: .*is outside .*--allow-outside-paths"):
        load_plan(plan)
    # The same plan through `tunewise run`: refused at the plan (exit 1, no traceback, nothing written) ...
    result = run_cli("run", str(plan), "--quiet", cwd=root)
    assert result.returncode == 1 and "--allow-outside-paths" in result.stderr and "Traceback" not in result.stderr
    assert not (plans / "out").exists()
    # ... and with the opt-in the plan passes; the run then stops at the missing model, before reading data.
    allowed = run_cli("run", str(plan), "--quiet", "--allow-outside-paths", cwd=root)
    assert allowed.returncode == 1 and "no/such/model" in allowed.stderr and "--allow-outside-paths" not in allowed.stderr


def test_plan_data_inside_the_project_stays_workable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, plans, _ = project(tmp_path)
    monkeypatch.chdir(root)
    # `../data` from plans/ (the examples' layout) is inside the working directory: accepted.
    assert load_plan(write_plan(plans, "m", data="../data/chat.jsonl")).data == (str(root / "data" / "chat.jsonl"),)
    # An absolute path inside the plan's folder is accepted from any working directory.
    chat_data(plans)
    monkeypatch.chdir(tmp_path)
    assert load_plan(write_plan(plans, "m", data=str(plans / "chat.jsonl"))).data == (str(plans / "chat.jsonl"),)


def test_example_plans_load_from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped examples keep working from the repository root (their data lives in ../data)."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("TUNEWISE_ALLOW_OUTSIDE_PATHS", raising=False)
    for name in ("lora", "full_finetune", "continual_pretraining", "dpo"):
        assert load_plan(REPO / "examples" / "plans" / f"{name}.yaml").data


def test_app_runs_its_own_plan_with_outside_data_by_an_explicit_flag(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The app writes plans from the user's answers: data picked elsewhere shows up as --allow-outside-paths."""
    from tunewise.advisor.tui.run_watch import run_command

    root, plans, private = project(tmp_path)
    monkeypatch.chdir(root)
    outside = write_plan(plans, "m", data=str(private))
    assert run_command(outside, root / "runs")[-1] == "--allow-outside-paths"
    inside = write_plan(plans, "m", data="../data/chat.jsonl")
    assert "--allow-outside-paths" not in run_command(inside, root / "runs")


# -- pickles anywhere a loader reads, under any name ----------------------------------------------


def _torch_zip(path: Path, marker: Path) -> None:
    """PyTorch's zip format with the payload as its ``archive/data.pkl`` (what torch.load unpickles)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_RunsCode(f"open({str(marker)!r}, 'w').write('x')")))


def _tar(path: Path, marker: Path) -> None:
    import io
    import tarfile

    payload = pickle.dumps(_RunsCode(f"open({str(marker)!r}, 'w').write('x')"))
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("pickle")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))


def _object_npy(path: Path, marker: Path) -> None:
    import numpy as np

    with path.open("wb") as fh:
        np.save(fh, np.array([_RunsCode(f"open({str(marker)!r}, 'w').write('x')")], dtype=object), allow_pickle=True)


def _protocol(number: int) -> Callable[[Path, Path], None]:
    def write(path: Path, marker: Path) -> None:
        path.write_bytes(pickle.dumps(_RunsCode(f"open({str(marker)!r}, 'w').write('x')"), protocol=number))
    return write


PICKLES: dict[str, Callable[[Path, Path], None]] = {
    "adapter_model.bin": _protocol(4),
    "optimizer.pt": _protocol(4),
    "rng_state.pth": _protocol(2),
    "scheduler.pt": _protocol(5),
    "training_args.bin": _protocol(4),
    "weights.pkl": _protocol(0),  # no header: the name decides
    "model.ckpt": _protocol(1),
    "model.joblib": _protocol(3),
    "state.data": _protocol(2),  # any name: the protocol header decides
    "weights.anything": _torch_zip,  # any name: a zip with data.pkl
    "legacy.tar.weights": _tar,
    "embeddings.npy": _object_npy,
}


@pytest.mark.parametrize("name", sorted(PICKLES))
def test_pickle_in_an_adapter_folder_is_refused_under_any_name(tmp_path: Path, tiny_model_dir: Path, name: str) -> None:
    """A PEFT-style ``adapter/`` folder beside safetensors weights: its pickle is still found and named."""
    model = copy_model(tiny_model_dir, tmp_path / "model")
    adapter = model / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    marker = tmp_path / "ran"
    PICKLES[name](adapter / name, marker)
    with pytest.raises(UntrustedArtifactError, match=rf"only weights are pickle files \(adapter/{re.escape(name)}: "):
        check_model_folder(model)
    assert not marker.exists()


def test_pickle_in_a_folder_without_config_is_refused_too(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = copy_model(tiny_model_dir, tmp_path / "model")
    (model / "extra").mkdir()
    write_evil_pickle(model / "extra" / "weights.pkl", tmp_path / "ran")
    result = run_cli("model", "info", "--model", str(model))
    assert result.returncode == 1 and "extra/weights.pkl" in result.stderr and "pickle" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_adapter_bin_is_refused_unless_its_safetensors_twin_is_there(tmp_path: Path, tiny_model_dir: Path) -> None:
    """PEFT reads adapter_model.bin whenever adapter_model.safetensors is missing, whatever else is beside it."""
    model = copy_model(tiny_model_dir, tmp_path / "model")
    (model / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    write_evil_pickle(model / "adapter_model.bin", tmp_path / "ran")
    with pytest.raises(UntrustedArtifactError, match=r"adapter_model\.bin: a pickle"):
        check_model_folder(model)
    shutil.copy(model / "model.safetensors", model / "adapter_model.safetensors")
    assert check_model_folder(model) is False


def test_files_that_are_not_pickles_are_left_alone(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Raw OpenVINO weights, ONNX, numeric .npy, and pickles in hidden folders (git LFS copies) are not refused."""
    import numpy as np

    model = copy_model(tiny_model_dir, tmp_path / "model")
    (model / "openvino").mkdir()
    (model / "openvino" / "openvino_model.bin").write_bytes(np.arange(256, dtype=np.float32).tobytes())
    (model / "openvino" / "openvino_model.xml").write_text("<net/>")
    (model / "onnx").mkdir()
    (model / "onnx" / "model.onnx").write_bytes(b"\x08\x07\x12\x04test")
    np.save(model / "onnx" / "numbers.npy", np.arange(10))
    lfs = model / ".git" / "lfs" / "objects" / "ab"
    lfs.mkdir(parents=True)
    write_evil_pickle(lfs / "abcdef", tmp_path / "ran")
    assert check_model_folder(model, need_weights=True) is False


def test_pickle_in_a_sentence_transformers_module_is_refused_by_rag_index(tmp_path: Path) -> None:
    """``modules.json`` names ``2_Dense``; sentence-transformers would torch.load its pytorch_model.bin."""
    from tunewise.methods.rag.embed import bundled_model_dir

    bundled = bundled_model_dir()
    if bundled is None:
        pytest.skip("bundled embedding model not installed")
    folder = tmp_path / "embedder"
    shutil.copytree(bundled, folder, ignore=shutil.ignore_patterns("onnx", "openvino"))
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": "2_Dense",
                    "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(json.dumps({"in_features": 384, "out_features": 384}))
    marker = tmp_path / "ran"
    write_evil_pickle(folder / "2_Dense" / "pytorch_model.bin", marker)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Orders ship within two days.\n")
    result = run_cli("rag", "index", str(docs), "--index", str(tmp_path / "index"), "--embedding-model", str(folder),
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "2_Dense/pytorch_model.bin" in result.stderr and "pickle" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not marker.exists()


def test_foreign_module_type_in_modules_json_needs_the_opt_in(tmp_path: Path, tiny_model_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REMOTE_CODE_ENV, raising=False)
    model = copy_model(tiny_model_dir, tmp_path / "model")
    (model / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "evil.Module"}]))
    with pytest.raises(UntrustedArtifactError, match=r"modules\.json: \{\"type\": \[\"evil\.Module\"\]\}"):
        check_model_folder(model)
    monkeypatch.setenv(REMOTE_CODE_ENV, "1")
    assert check_model_folder(model) is True


def test_model_info_refuses_a_pickle_only_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(tiny_model_dir / "config.json", model / "config.json")
    write_evil_pickle(model / "pytorch_model.bin", tmp_path / "ran")
    result = run_cli("model", "info", "--model", str(model))
    assert result.returncode == 1 and "pytorch_model.bin: a pickle" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "ran").exists()


def test_pickle_only_reward_model_is_refused_before_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    reward = tmp_path / "reward"
    reward.mkdir()
    shutil.copy(tiny_model_dir / "config.json", reward / "config.json")
    marker = tmp_path / "ran"
    write_evil_pickle(reward / "pytorch_model.bin", marker)
    rows = [{"prompt": f"Question {i}?", "chosen": f"A kind answer {i}.", "rejected": f"Go away {i}."}
            for i in range(12)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"method: rlhf\nmodel: {tiny_model_dir}\ndata: prefs.jsonl\noutput_dir: {tmp_path / 'out'}\n"
                    "config: {algorithm: dpo, reward_model_path: reward}\ntraining: {max_steps: 1, batch_size: 2}\n")
    result = run_cli("run", str(plan), "--quiet", "--allow-outside-paths", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "pytorch_model.bin: a pickle" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and not (tmp_path / "out" / "stages").exists()


def test_peft_adapter_is_checked_before_peft_reads_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The RLHF evaluation loads its policy adapter back from disk: the folder is checked first."""
    from tunewise.methods.rlhf.run import _load_causal

    adapter = tmp_path / "policy"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    marker = tmp_path / "ran"
    write_evil_pickle(adapter / "adapter_model.bin", marker)
    with pytest.raises(UntrustedArtifactError, match=r"adapter_model\.bin: a pickle"):
        _load_causal(tiny_model_dir, None, adapter=adapter)
    assert not marker.exists()


def test_module_path_with_dots_inside_the_folder_still_marks_a_loaded_folder(tmp_path: Path,
                                                                              tiny_model_dir: Path) -> None:
    """``x/../2_Dense`` is 2_Dense: its .bin (a protocol-0 pickle, no header to spot) is refused by name."""
    model = copy_model(tiny_model_dir, tmp_path / "model")
    (model / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "x/../2_Dense", "type": "sentence_transformers.models.Dense"}]))
    (model / "2_Dense").mkdir()
    marker = tmp_path / "ran"
    PICKLES["weights.pkl"](model / "2_Dense" / "pytorch_model.bin", marker)
    with pytest.raises(UntrustedArtifactError, match=r"2_Dense/pytorch_model\.bin: a PyTorch \.bin"):
        check_model_folder(model)
    assert not marker.exists()
