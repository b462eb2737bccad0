"""Writing the trained weights: safetensors via ``save_pretrained``, into a temp folder swapped into place.

A save never deletes what tunewise did not write. Each saved folder lists the names its save wrote
in ``.tunewise-written.json``; when a save replaces a folder, every other entry of the old folder
(a user's notes, an eval script, a sub-folder) is hard-linked (copied where links are impossible)
into the new folder before the swap, so it comes through every run, resume and ``--force``. Only the
names the previous save wrote (or, in a folder saved before this list existed, its weight files) are
dropped, so stale shards never shadow the new weights. A crash between the two renames of the swap
leaves the old folder as ``.<name>.old-<pid>``; the next save puts it back first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError

WRITTEN_FILE = ".tunewise-written.json"
_WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json")


def written_names(folder: Path) -> set[str] | None:
    """The names tunewise's last save wrote into ``folder``; None when it has no list (or an unreadable one)."""
    try:
        names = json.loads((Path(folder) / WRITTEN_FILE).read_text(encoding="utf-8"))["written"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {str(n) for n in names} if isinstance(names, list) else None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _carry_over(old: Path, new: Path, ours: Iterable[str]) -> None:
    """Bring every entry of ``old`` that tunewise did not write into ``new`` (same inode where possible)."""
    skip = set(ours) | {WRITTEN_FILE}
    previous = written_names(old)
    for entry in old.iterdir():
        if entry.name in skip:
            continue
        if previous is not None and entry.name in previous:
            continue
        if previous is None and entry.name.endswith(_WEIGHT_SUFFIXES):
            continue  # saved before the list existed: old weights must not shadow the new ones
        destination = new / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), destination)
        elif entry.is_dir():
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(destination))


def _siblings(target: Path, kind: str) -> list[Path]:
    prefix = f".{target.name}.{kind}-"
    return [p for p in target.parent.glob(f".{target.name}.{kind}-*") if p.name[len(prefix):].isdigit()]


def _recover(target: Path) -> None:
    """Undo what a save killed mid-swap left: the old folder back in place, leftovers of the swap gone."""
    olds = sorted(_siblings(target, "old"), key=lambda p: p.stat().st_mtime_ns)
    if olds and not target.exists():
        os.replace(olds.pop(), target)
    # The run lock keeps saves of one folder apart, so these are leftovers, holding only links and copies
    # of what ``target`` holds.
    for leftover in olds + [p for p in _siblings(target, "tmp") if p.name != f".{target.name}.tmp-{os.getpid()}"]:
        shutil.rmtree(leftover, ignore_errors=True)


def save_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` and swap ``tmp`` in for ``target`` (never a half-written folder, never a lost user file)."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise TunewiseError(f"{target} is a file, not a folder; move it away and run again with --resume "
                            "(the last checkpoint holds the training)")
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        names = sorted(p.name for p in tmp.iterdir())
        (tmp / WRITTEN_FILE).write_text(json.dumps({"written": names}, indent=1) + "\n", encoding="utf-8")
        if target.exists():
            _carry_over(target, tmp, names)
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def remove_saved(folder: Path) -> None:
    """Delete what tunewise's last save wrote into ``folder`` (and the folder once empty); nothing else."""
    folder = Path(folder)
    _recover(folder)
    if not folder.is_dir():
        return
    names = written_names(folder)
    for entry in folder.iterdir():
        ours = entry.name == WRITTEN_FILE or (entry.name in names if names is not None
                                              else entry.name.endswith(_WEIGHT_SUFFIXES))
        if not ours:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    with contextlib.suppress(OSError):  # the user's files keep it
        folder.rmdir()


def save_full_model(model: Any, tokenizer: Any, folder: Path, dtype_name: str) -> Path:
    """Save every weight in ``dtype_name`` (the model is cast in place: call it last) plus the tokenizer."""
    import torch

    if getattr(model, "supports_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    model.to(getattr(torch, dtype_name))
    model.config.use_cache = True

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return save_atomically(folder, write)


def save_adapter(model: Any, tokenizer: Any, folder: Path) -> Path:
    """Save only the adapter weights (``adapter_model.safetensors``) and the tokenizer."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return save_atomically(folder, write)


def save_merged(base_path: Path, adapter: Path, tokenizer: Any, folder: Path, dtype_name: str) -> Path:
    """Load a fresh full-precision base on CPU, merge the saved adapter into it and save the result.

    Merging into a fresh copy keeps the trained (possibly 4-bit) model untouched and gives a merged
    model in the base's own dtype.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from tunewise.plugins.trust import check_model_folder

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, dtype_name), use_safetensors=True,
                                                trust_remote_code=check_model_folder(base_path))
    check_model_folder(adapter)  # written by this run, but read back from disk: the same checks as any folder
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()

    def write(tmp: Path) -> None:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return save_atomically(folder, write)
