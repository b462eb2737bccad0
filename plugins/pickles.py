"""Which files a loader would unpickle, decided by name and by magic bytes.

Unpickling runs whatever code the file's author put in it, and pickles hide under many names. A file
counts as a pickle when any of these holds (the first bytes are read with
:func:`~tunewise.plugins.model_files.read_prefix`: regular files only, 512 bytes):

- it starts with a pickle protocol header (``\\x80`` then protocol 2–5), whatever its name: PyTorch's
  legacy format, ``pickle.dump``, raw joblib;
- it is a zip archive, whatever its name: PyTorch's format (``archive/data.pkl`` inside is the
  pickle), NumPy ``.npz`` (object arrays inside are pickles); a model folder has no other use for one;
- it is a tar archive: PyTorch's oldest checkpoint format, which ``torch.load`` still unpickles;
- it is named ``.pkl .pickle .pt .pth .ckpt .joblib .dill`` (protocol 0/1 pickles and compressed
  joblib files have no header to recognise, so the name decides);
- it is a ``.npy`` holding Python objects (``np.load(allow_pickle=True)`` unpickles them) or a ``.npy``
  that is not NumPy's format at all (``np.load`` then falls back to unpickling it);
- it is a ``.bin`` in a folder a loader reads (``pytorch_model.bin``, ``adapter_model.bin``,
  ``training_args.bin``): transformers, PEFT and sentence-transformers hand those to ``torch.load``.
  Elsewhere (``openvino/openvino_model.bin``: raw weights) only the rules above apply.

``.safetensors``, ``.gguf`` and text files are never sniffed: their loaders do not unpickle, and a
safetensors header length can begin with the byte ``\\x80``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from tunewise.plugins.model_files import read_prefix

PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".dill")
"""Names that mean "pickle" to their loaders whatever the bytes (``.bin``, ``.npy``: see the module doc)."""
NEVER_PICKLES = (".safetensors", ".gguf", ".json", ".jsonl", ".txt", ".md", ".jinja", ".model", ".py", ".yaml",
                 ".yml", ".csv", ".html", ".png", ".jpg", ".gitattributes")
"""Names whose loaders never unpickle: not sniffed."""
_FALLBACKS = {"pytorch_model": ("model.safetensors", "model.safetensors.index.json"),
              "adapter_model": ("adapter_model.safetensors",)}
"""Pickle weights a loader reads when (and only when) the named safetensors file is missing beside them."""


def pickle_kind(path: Path, *, loader_folder: bool) -> str | None:
    """Why a loader would unpickle ``path`` (a few words), or None when it would not.

    ``loader_folder``: whether ``path`` lies in a folder a loader reads weights from (there ``.bin``
    files are PyTorch pickles).
    """
    name = path.name.lower()
    if name.endswith(NEVER_PICKLES):
        return None
    head = read_prefix(path, 512)
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return f"a pickle (protocol {head[1]})"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        inner = head[30:30 + int.from_bytes(head[26:28], "little")] if head[:4] == b"PK\x03\x04" else b""
        if inner.endswith(b".pkl"):
            return f"a zip archive with the pickle {inner.decode('utf-8', 'replace')} (PyTorch's format)"
        return "a zip archive (PyTorch checkpoints and NumPy .npz files keep pickles inside)"
    if head[257:262] == b"ustar":
        return "a tar archive (PyTorch's oldest checkpoint format, which torch.load unpickles)"
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if not head.startswith(b"\x93NUMPY"):
            return "not NumPy's .npy format (np.load would fall back to unpickling it)"
        size = int.from_bytes(head[8:10], "little") if head[6:7] == b"\x01" else int.from_bytes(head[8:12], "little")
        header = read_prefix(path, 12 + min(size, 1 << 16))
        if re.search(rb"""['"][|<>=]?O['"]""", header):
            return "a NumPy array of Python objects (loading it unpickles them)"
        return None
    if suffix in PICKLE_SUFFIXES:
        return f"a pickle file (by its {suffix} name)"
    if suffix == ".bin" and loader_folder:
        return "a PyTorch .bin weight file (a pickle)"
    return None


def covered(name: str, safetensors: Iterable[str]) -> bool:
    """Whether a loader reading the folder takes safetensors instead of pickle file ``name``.

    ``pytorch_model*.bin`` and ``adapter_model.bin`` are read only when their safetensors twin is
    missing; any other pickle (``optimizer.pt``, ``training_args.bin``) is read by no loader tunewise
    uses, so it is left alone when the folder has safetensors weights.
    """
    present = {s.lower() for s in safetensors}
    stem = name.lower().split(".")[0].split("-")[0]
    if stem in _FALLBACKS:
        return any(twin in present for twin in _FALLBACKS[stem])
    return any(s.endswith(".safetensors") for s in present)
