"""Model resolution: embedded default, local folders, clear errors; and a real answer from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_cli
from tunewise.plugins.errors import ModelNotFoundError
from tunewise.plugins.models import model_info, resolve_model


def test_missing_model_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "nowhere" in message and "never downloads" in message


def test_uncached_hub_id_names_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError, match="Hugging Face cache"):
        resolve_model("someorg/somemodel")


def test_hub_id_found_in_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    snap = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc123"
    snap.parent.mkdir(parents=True)
    snap.symlink_to(tiny_model_dir)
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model("org/tiny").source == "hf-cache"


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(str(tmp_path))


def test_info_of_tiny_model(tiny_model_dir: Path) -> None:
    info = model_info(str(tiny_model_dir))
    assert info.layers == 2 and info.hidden_size == 64 and info.source == "local"
    # tied embeddings are stored once: vocab*64 + 2 layers
    assert 3_000_000 < info.parameters < 3_300_000


def test_cli_model_info_embedded() -> None:
    proc = run_cli("model", "info", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["layers"] == 30 and info["hidden_size"] == 576 and info["context_length"] == 8192
    assert 134_000_000 < info["parameters"] < 135_000_000 and info["dtype"] == "BF16"


def test_cli_model_info_missing_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli("model", "info", "--model", str(tmp_path / "absent"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "not found" in proc.stderr


@pytest.mark.slow
def test_embedded_model_knows_paris() -> None:
    import torch
    from tunewise.plugins.models import load_model, load_tokenizer

    tokenizer = load_tokenizer()
    model = load_model()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True,
        return_tensors="pt", return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=16, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
