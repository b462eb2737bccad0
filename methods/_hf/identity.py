"""What a checkpoint belongs to: model, tokenizer, data, method and settings.

A resume compares the checkpoint's identity with the plan's and refuses when they differ, naming
each difference (``--force`` resumes anyway). The model counts twice: its *layout*
(:func:`model_fingerprint`: config.json, safetensors headers with tensor names, shapes, dtypes and
offsets, file sizes) and its *weights* (:func:`weights_fingerprint`: the tensors' bytes), so another
model with the same config and shapes (a re-initialised, re-trained or edited copy) is refused as
``model: ... different weights``. Tokenizer and data files are hashed in full.

The weights fingerprint reads every byte of models up to :data:`FULL_HASH_BYTES` (1 GiB of
safetensors, well under a second to a few seconds) and so detects any change there, down to one
element. Larger models are sampled, since hashing 140 GB of a 70B model would add minutes to every
run: each tensor's first, middle and last 64 KiB plus eight 4 KiB blocks at even strides through it
(tensors smaller than that are read whole). A re-initialised, re-trained or fine-tuned model changes
(nearly) every element, so every sampled block differs and the change is always seen; an edit
confined to bytes between the sampled blocks of a large tensor (e.g. one element changed a third of
the way into a 100 MB embedding) is not.
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


FULL_HASH_BYTES = 1 << 30
"""Models whose safetensors files total at most this are hashed byte for byte; larger ones are sampled."""
SAMPLE_BLOCK = 64 << 10
"""Bytes read at the start, middle and end of each tensor of a sampled model."""
STRIDE_BLOCKS = 8
STRIDE_BLOCK = 4 << 10


def _spans(start: int, end: int) -> list[tuple[int, int]]:
    """(offset, length) of the bytes sampled from the data region ``[start, end)`` of one tensor."""
    length = end - start
    if length <= 3 * SAMPLE_BLOCK + STRIDE_BLOCKS * STRIDE_BLOCK:
        return [(start, length)]
    spans = [(start, SAMPLE_BLOCK), (start + (length - SAMPLE_BLOCK) // 2, SAMPLE_BLOCK), (end - SAMPLE_BLOCK, SAMPLE_BLOCK)]
    spans += [(start + i * length // (STRIDE_BLOCKS + 1), STRIDE_BLOCK) for i in range(1, STRIDE_BLOCKS + 1)]
    return spans


def _sampled_sha256(path: Path) -> str:
    """Hash of the sampled blocks of every tensor in one safetensors file (see the module docstring)."""
    header_bytes = _safetensors_header(path)
    base = 8 + len(header_bytes)
    try:
        header = json.loads(header_bytes)
    except ValueError:
        header = None
    regions: list[tuple[str, int, int]] = []
    if isinstance(header, dict):
        for name, entry in sorted(header.items()):
            offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
            if name != "__metadata__" and isinstance(offsets, list) and len(offsets) == 2:
                regions.append((name, base + int(offsets[0]), base + int(offsets[1])))
    if not regions:  # no readable tensor table: sample the file as one region
        regions = [("", 0, path.stat().st_size)]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for name, start, end in regions:
            digest.update(name.encode() + b"\0")
            for offset, length in _spans(start, end):
                fh.seek(offset)
                digest.update(fh.read(length))
    return digest.hexdigest()


def weights_fingerprint(folder: Path, *, full_limit: int = FULL_HASH_BYTES) -> dict[str, str]:
    """A content hash per safetensors file: ``sha256:`` of every byte, or ``sampled:`` for large models.

    The mode depends on the model's total size, so one model always gets the same kind of hash.
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    full = sum(f.stat().st_size for f in files) <= full_limit
    return {f.name: f"sha256:{file_sha256(f)}" if full else f"sampled:{_sampled_sha256(f)}" for f in files}


def weights_differences(saved: Any, current: Any) -> list[str]:
    """Weight files whose content differs; nothing when either side has no weights hash (an older checkpoint)."""
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return []
    out = []
    for name in sorted(set(saved) | set(current)):
        before, now = saved.get(name), current.get(name)
        if before is None or now is None:
            out.append(f"{name} {'missing' if now is None else 'added'}")
        elif before.split(":", 1)[0] == now.split(":", 1)[0] and before != now:
            out.append(f"{name} {_short(before.split(':', 1)[1])} -> {_short(now.split(':', 1)[1])}")
    return out


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
        "model": {"name": model_name, "fingerprint": model_fingerprint(model_path),
                  "weights": weights_fingerprint(model_path)},
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
    from tunewise.plugins.redaction import seal_data

    current = seal_data(current)  # compared as it is stored (a string holding a secret is kept as its hash)
    out: list[str] = []
    if saved.get("method") != current.get("method"):
        out.append(f"method: checkpoint {saved.get('method')!r}, plan {current.get('method')!r}")
    sm, cm = saved.get("model", {}), current.get("model", {})
    models = f"checkpoint from {sm.get('name')!r}, plan uses {cm.get('name')!r}"
    if sm.get("fingerprint") != cm.get("fingerprint"):
        out.append(f"model: {models} (different config or tensor layout)")
    else:
        changed = weights_differences(sm.get("weights"), cm.get("weights"))
        if changed:
            out.append(f"model: {models}: same config and tensor shapes but different weights "
                       f"({'; '.join(changed)})")
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
