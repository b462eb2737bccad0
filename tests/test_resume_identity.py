"""Resume identity covers the base model's weights, not only its config and tensor shapes.

Two tiny Llamas with the same config (so the same safetensors headers and sizes) but other weights —
re-initialised with another seed, or one element changed — must not pass for each other: a resume
on the other one is refused naming ``different weights``, and a moved but identical copy still resumes.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from tunewise.methods._hf.identity import (
    SAMPLE_BLOCK,
    identity_differences,
    model_fingerprint,
    run_identity,
    weights_fingerprint,
)
from tunewise.plugins.testing import build_tiny_model

WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory, embedded_model_path: Path) -> tuple[Path, Path]:
    """Two tiny Llamas, identical config and shapes, initialised with seeds 0 and 1."""
    root = tmp_path_factory.mktemp("twins")
    return build_tiny_model(root / "seed0", seed=0), build_tiny_model(root / "seed1", seed=1)


def tensor_region(path: Path, name: str) -> tuple[int, int]:
    """Absolute byte range of one tensor's data in a safetensors file."""
    with open(path, "rb") as fh:
        length = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(length))
    start, end = header[name]["data_offsets"]
    return 8 + length + start, 8 + length + end


def with_one_element_changed(source: Path, target: Path, name: str, fraction: float) -> Path:
    """A copy of ``source`` whose float32 tensor ``name`` differs in one element, ``fraction`` of the way in."""
    shutil.copytree(source, target)
    start, end = tensor_region(target / WEIGHTS, name)
    offset = start + int((end - start) * fraction) // 4 * 4
    with open(target / WEIGHTS, "r+b") as fh:
        fh.seek(offset)
        (value,) = struct.unpack("<f", fh.read(4))
        fh.seek(offset)
        fh.write(struct.pack("<f", value + 0.5))
    return target


def test_reinitialised_twin_has_the_same_layout_but_other_weights(twins: tuple[Path, Path]) -> None:
    first, second = twins
    assert model_fingerprint(first) == model_fingerprint(second)  # what the old identity saw: no difference
    assert weights_fingerprint(first) != weights_fingerprint(second)
    sampled = weights_fingerprint(first, full_limit=0), weights_fingerprint(second, full_limit=0)
    assert all(v.startswith("sampled:") for v in sampled[0].values())
    assert sampled[0] != sampled[1]  # every sampled block of a re-initialised model differs
    assert weights_fingerprint(first) == weights_fingerprint(first)  # and it is stable


def test_one_changed_element_is_seen_by_the_full_hash_and_in_sampled_blocks(twins: tuple[Path, Path],
                                                                            tmp_path: Path) -> None:
    first, _ = twins
    embedding = "model.embed_tokens.weight"  # 49k x 64 float32: far larger than the sampled blocks
    start, end = tensor_region(first / WEIGHTS, embedding)
    assert end - start > 20 * SAMPLE_BLOCK
    middle = with_one_element_changed(first, tmp_path / "middle", embedding, 0.5)
    third = with_one_element_changed(first, tmp_path / "third", embedding, 0.3)
    small = with_one_element_changed(first, tmp_path / "norm", "model.norm.weight", 0.7)

    for edited in (middle, third, small):
        assert model_fingerprint(edited) == model_fingerprint(first)
        assert weights_fingerprint(edited) != weights_fingerprint(first), edited.name  # small models: every byte
    sampled = weights_fingerprint(first, full_limit=0)
    assert weights_fingerprint(middle, full_limit=0) != sampled  # inside the middle block
    assert weights_fingerprint(small, full_limit=0) != sampled  # small tensors are read whole
    # The documented limit of sampling (used only above FULL_HASH_BYTES): a lone edit between the
    # sampled blocks of a large tensor is not seen.
    assert weights_fingerprint(third, full_limit=0) == sampled


def test_identity_names_different_weights(twins: tuple[Path, Path]) -> None:
    first, second = twins
    common = dict(method="full_finetune", model_name="m", data_files=[], config={}, training={},
                  precision="fp32", device_type="cpu")
    saved = json.loads(json.dumps(run_identity(model_path=first, **common)))  # as stored in state.json
    differences = identity_differences(saved, run_identity(model_path=second, **common))
    assert len(differences) == 1 and differences[0].startswith("model: ")
    assert "same config and tensor shapes but different weights" in differences[0] and WEIGHTS in differences[0]
    assert identity_differences(saved, run_identity(model_path=first, **common)) == []
    # A checkpoint written before weights were hashed still resumes on the same layout (nothing to compare).
    legacy = {**saved, "model": {k: v for k, v in saved["model"].items() if k != "weights"}}
    assert identity_differences(legacy, run_identity(model_path=second, **common)) == []


def lora_plan(folder: Path, model: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"Status of order {i}?"},
                          {"role": "assistant", "content": f"Order {i} ships in {i % 3 + 1} days."}]}
            for i in range(12)]
    (folder / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.yaml"
    plan.write_text(f"method: lora\nmodel: {model}\ndata: chat.jsonl\noutput_dir: {folder / 'out'}\n"
                    "training: {max_steps: 2, save_steps: 1, batch_size: 2, seq_len: 48, eval_max_examples: 2,\n"
                    "           generation_examples: 0, device: cpu, precision: fp32}\n")
    return plan


def folder_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resuming_on_another_model_with_the_same_config_is_refused(
        twins: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.advisor.plans import load_plan
    from tunewise.advisor.runner import apply_overrides, run_plan

    first, second = twins
    model = shutil.copytree(first, tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    plan = load_plan(lora_plan(tmp_path, model))
    result, code = run_plan(plan, show_progress=False)
    assert (result.status, code) == ("completed", 0), result.message
    out = tmp_path / "out"
    trained = folder_state(out)

    def resume_on(other: Path) -> tuple[str, str]:
        resumed = apply_overrides(load_plan(lora_plan(tmp_path, other)), resume=True)
        result, _ = run_plan(resumed, show_progress=False)
        return result.status, result.message

    status, message = resume_on(shutil.copytree(second, tmp_path / "other"))
    assert status == "failed" and "cannot resume" in message
    assert "model: " in message and "different weights" in message and WEIGHTS in message
    edited = with_one_element_changed(first, tmp_path / "edited", "model.layers.0.mlp.up_proj.weight", 0.4)
    status, message = resume_on(edited)
    assert status == "failed" and "different weights" in message
    assert folder_state(out) == trained  # refused: the run folder is untouched

    moved = shutil.copytree(first, tmp_path / "moved")  # the same weights elsewhere: same identity
    status, message = resume_on(moved)
    assert status == "completed", message
