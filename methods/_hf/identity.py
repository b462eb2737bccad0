"""What a checkpoint belongs to: model, tokenizer, data, method and settings.

A resume compares the checkpoint's identity with the plan's and refuses when they differ, naming
each difference (``--force`` resumes anyway). The model is identified by its config and its
safetensors headers (tensor names, shapes, dtypes, offsets) and file sizes rather than a hash of
every weight byte, which would take minutes for large models; tokenizer and data files are hashed
in full.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safetensors_header(path: Path) -> bytes:
    """The header JSON of a safetensors file, checked and read within bounds (a corrupt file is refused by name)."""
    from tunewise.plugins.model_files import checked_safetensors

    return checked_safetensors(path).raw


def model_fingerprint(folder: Path) -> str:
    """Hash of config.json, every safetensors header and every weight file's size."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(weights.name.encode())
        digest.update(str(weights.stat().st_size).encode())
        digest.update(_safetensors_header(weights))
    return digest.hexdigest()


def tokenizer_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def data_fingerprint(files: Iterable[str]) -> dict[str, str]:
    return {str(Path(f)): file_sha256(Path(f)) for f in files}


def run_identity(*, method: str, model_name: str, model_path: Path, data_files: Iterable[str],
                 config: Mapping[str, Any], training: Mapping[str, Any], precision: str, device_type: str) -> dict[str, Any]:
    """Everything that decides the trained weights, JSON-ready."""
    return {
        "method": method,
        "model": {"name": model_name, "fingerprint": model_fingerprint(model_path)},
        "tokenizer": tokenizer_fingerprint(model_path),
        "data": data_fingerprint(data_files),
        "config": json.loads(json.dumps(dict(config), default=str)),
        "training": json.loads(json.dumps(dict(training), default=str)),
        "precision": precision,
        "device": device_type,
    }


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text[:12] + "…" if len(text) > 16 and all(c in "0123456789abcdef" for c in text) else text


def identity_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Each way ``current`` differs from ``saved``, in words."""
    out: list[str] = []
    if saved.get("method") != current.get("method"):
        out.append(f"method: checkpoint {saved.get('method')!r}, plan {current.get('method')!r}")
    sm, cm = saved.get("model", {}), current.get("model", {})
    if sm.get("fingerprint") != cm.get("fingerprint"):
        out.append(f"model: checkpoint from {sm.get('name')!r}, plan uses {cm.get('name')!r}"
                   + (" (same name, different weights or config)" if sm.get("name") == cm.get("name") else ""))
    if saved.get("tokenizer") != current.get("tokenizer"):
        out.append("tokenizer files differ")
    sd, cd = saved.get("data", {}), current.get("data", {})
    for f in sorted(set(sd) | set(cd)):
        if f not in cd:
            out.append(f"data: {f} was used by the checkpoint but is not in the plan")
        elif f not in sd:
            out.append(f"data: {f} is new (not used by the checkpoint)")
        elif sd[f] != cd[f]:
            out.append(f"data: {f} changed (sha256 {_short(sd[f])} -> {_short(cd[f])})")
    for section in ("config", "training"):
        s, c = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(s) | set(c)):
            if s.get(key) != c.get(key):
                out.append(f"{section}.{key}: checkpoint {json.dumps(s.get(key))}, plan {json.dumps(c.get(key))}")
    for key in ("precision", "device"):
        if saved.get(key) != current.get(key):
            out.append(f"{key}: checkpoint {saved.get(key)}, now {current.get(key)}")
    return out
    from tunewise.plugins.redaction import seal_data

    current = seal_data(current)  # compared as it is stored (a string holding a secret is kept as its hash)
