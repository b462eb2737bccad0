"""Atomic checkpoints: written to a temporary folder, synced to disk, then renamed into place.

A checkpoint folder ``step-00000120`` holds ``weights.safetensors`` (trainable parameters),
``optimizer.safetensors`` (optimizer state by parameter name), ``rng.safetensors`` (random number
generator states), ``state.json`` (step, history, identity, hyper-parameters), when early stopping
has kept the weights of an earlier evaluation ``best.safetensors`` (those trainable parameters, so a
resume keeps them), and last the marker ``COMPLETE``. A folder without the marker (a crash mid-write leaves only ``.tmp-*`` folders, but a
copied or truncated checkpoint might) is never resumed from, and neither is one whose files are
damaged (:func:`checkpoint_problem`: a truncated safetensors file, unreadable ``state.json``); the
store lists those in :attr:`CheckpointStore.damaged` so the run can say why it skips them. Tensors
are stored as safetensors; nothing is ever unpickled. A save is refused before anything is written
when the weights are not finite or the disk is too full (:mod:`~tunewise.methods._hf.guardrails`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.plugins.redaction import seal_data

MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _save_tensors(tensors: Mapping[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    _fsync_path(path)


TENSOR_FILES = ("weights.safetensors", "optimizer.safetensors", "rng.safetensors")
BEST_FILE = "best.safetensors"
"""Early stopping's best weights, present when they are not the checkpoint's own (``state["best_weights"]``)."""


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (the one bounded header check: length, offsets, every byte accounted for)."""
    from tunewise.plugins.model_files import CorruptModelError, read_safetensors_header

    try:
        read_safetensors_header(path)
    except CorruptModelError as exc:
        return str(exc)
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from, or None when it is complete and its files are whole.

    Cheap enough to run on every folder: reads headers and ``state.json``, never the tensors.
    """
    path = Path(path)
    if not (path / MARKER).is_file():
        return f"no {MARKER} marker (the save did not finish)"
    for name in TENSOR_FILES:
        if not (path / name).is_file():
            return f"{name} is missing"
        problem = _safetensors_problem(path / name)
        if problem:
            return problem
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "state.json is missing or unreadable"
    if not isinstance(state, dict) or "step" not in state:
        return "state.json has no step"
    if state.get("best_weights"):
        if not (path / BEST_FILE).is_file():
            return f"{BEST_FILE} is missing"
        return _safetensors_problem(path / BEST_FILE)
    return None


@dataclass
class Checkpoint:
    """A checkpoint read back from disk."""

    path: Path
    step: int
    weights: dict[str, Any]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    state: dict[str, Any]
    best: dict[str, Any] | None = None
    """Early stopping's best weights when they differ from ``weights`` (else None)."""


class CheckpointStore:
    """The checkpoints of one output folder."""

    def __init__(self, root: Path, keep: int = 1, min_free_gb: float = 0.0) -> None:
        self.root = Path(root)
        self.keep = max(1, keep)
        self.min_free_gb = min_free_gb
        """Disk space that must stay free after a save (``training.min_free_disk_gb``)."""
        self.damaged: list[tuple[int, Path, str]] = []
        """(step, folder, why) of each checkpoint folder the last :meth:`complete` skipped."""

    def complete(self) -> list[tuple[int, Path]]:
        """(step, folder) of every complete, undamaged checkpoint, oldest first."""
        self.damaged = []
        if not self.root.is_dir():
            return []
        found = []
        for child in self.root.iterdir():
            match = _STEP_DIR.match(child.name)
            if not match:
                continue
            problem = checkpoint_problem(child)
            if problem is None:
                found.append((int(match.group(1)), child))
            else:
                self.damaged.append((int(match.group(1)), child, problem))
        self.damaged.sort()
        return sorted(found)

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1][1] if done else None

    def save(self, step: int, weights: Mapping[str, Any], optimizer: Mapping[str, Any],
             rng: Mapping[str, Any], state: Mapping[str, Any], best: Mapping[str, Any] | None = None) -> Path:
        """Write a checkpoint atomically and prune old ones; returns its folder.

        ``best``: early stopping's best weights when they are not ``weights`` (written as ``best.safetensors``).

        Refuses, before writing anything, weights holding NaN/inf and a save that would leave less
        than ``min_free_gb`` of disk free (:mod:`~tunewise.methods._hf.guardrails`).
        """
        from tunewise.methods._hf.guardrails import check_disk_room, refuse_non_finite, tensor_bytes

        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step-{step:08d}"
        if checkpoint_problem(final) is None:
            return final
        refuse_non_finite(weights, final)
        # + 1 MB for state.json, whose loss history grows with the steps
        check_disk_room(self.root, tensor_bytes(weights, optimizer, rng, best or {}) + 1_000_000, self.min_free_gb,
                        f"checkpoint step-{step:08d}")
        tmp = self.root / f".tmp-step-{step:08d}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            _save_tensors(weights, tmp / "weights.safetensors")
            _save_tensors(optimizer, tmp / "optimizer.safetensors")
            _save_tensors(rng, tmp / "rng.safetensors")
            if best is not None:
                _save_tensors(best, tmp / BEST_FILE)
            # Read back to resume: paths and names stay as they are (redaction would break the comparison).
            _write_text(tmp / "state.json", json.dumps(seal_data({**state, "step": step, "best_weights": best is not None}),
                                                       indent=1, default=str))
            _write_text(tmp / MARKER, json.dumps({"step": step}) + "\n")
            _fsync_path(tmp)
            if final.exists():  # an incomplete folder of the same step from an older crash
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_path(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune()
        return final

    def _prune(self) -> None:
        done = self.complete()
        for _step, path in done[: max(0, len(done) - self.keep)]:
            shutil.rmtree(path, ignore_errors=True)
        for child in self.root.iterdir():
            if child.name.startswith(".tmp-step-") and not child.name.endswith(f"-{os.getpid()}") and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)

    def clear(self) -> None:
        """Delete every checkpoint (a fresh run forced over an old one); other files in the folder stay."""
        if not self.root.is_dir():
            return
        for child in self.root.iterdir():
            if (_STEP_DIR.match(child.name) or child.name.startswith(".tmp-step-")) and child.is_dir() \
                    and not child.is_symlink():
                shutil.rmtree(child)
        with contextlib.suppress(OSError):  # the user's files keep it
            self.root.rmdir()

    @staticmethod
    def load(path: Path) -> Checkpoint:
        from safetensors.torch import load_file

        path = Path(path)
        problem = checkpoint_problem(path)
        if problem:
            raise FileNotFoundError(f"{path} is not a complete checkpoint: {problem}")
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        return Checkpoint(
            path=path,
            step=int(state["step"]),
            weights=load_file(str(path / "weights.safetensors")),
            optimizer=load_file(str(path / "optimizer.safetensors")),
            rng=load_file(str(path / "rng.safetensors")),
            state=state,
            best=load_file(str(path / BEST_FILE)) if state.get("best_weights") else None,
        )

    @staticmethod
    def read_state(path: Path) -> dict[str, Any]:
        """Only ``state.json`` (cheap: identity checks before anything heavy loads)."""
        result: dict[str, Any] = json.loads((Path(path) / "state.json").read_text(encoding="utf-8"))
        return result


def optimizer_tensors(optimizer: Any, names: Mapping[int, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An optimizer's state as flat ``name::key`` tensors plus its param groups (JSON-ready).

    Keyed by parameter name rather than position, so a reordering cannot silently mismatch.
    """
    import torch

    sd = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    for index, entry in sd["state"].items():
        for key, value in entry.items():
            tensors[f"{names[index]}::{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    groups = []
    for group in sd["param_groups"]:
        groups.append({**{k: v for k, v in group.items() if k != "params"},
                       "params": [names[i] for i in group["params"]]})
    return tensors, groups


def restore_optimizer(optimizer: Any, names: Mapping[int, str], tensors: Mapping[str, Any],
                      groups: list[dict[str, Any]]) -> None:
    """Load what :func:`optimizer_tensors` saved into ``optimizer`` (same parameters by name)."""
    index_of = {name: index for index, name in names.items()}
    state: dict[int, dict[str, Any]] = {}
    for flat, value in tensors.items():
        name, key = flat.rsplit("::", 1)
        if name not in index_of:
            raise KeyError(f"optimizer state for unknown parameter {name!r}")
        state.setdefault(index_of[name], {})[key] = value
    current = optimizer.state_dict()["param_groups"]
    if len(current) != len(groups):
        raise KeyError("optimizer parameter groups differ from the checkpoint's")
    param_groups = []
    for saved, now in zip(groups, current, strict=True):
        param_groups.append({**saved, "params": [index_of[n] for n in saved["params"]]})
        if sorted(param_groups[-1]["params"]) != sorted(now["params"]):
            raise KeyError("optimizer parameter groups differ from the checkpoint's")
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
