"""A model folder's own files, read defensively before any loader sees them.

A model folder may come from someone else, and a corrupt one must stop tunewise with one message
naming the file, not with a loader's traceback, a hang or an allocation the size of a forged length
field. Everything here:

- opens regular files only: a FIFO (would block), a device (``/dev/zero`` never ends), a directory
  named like a file or a symlink loop is refused by name before a byte is read;
- reads at most what the file holds and at most a fixed cap per kind of file;
- parses strict JSON (no ``NaN``/``Infinity``, which are not JSON and which Python would accept);
- checks a safetensors header the way the safetensors library does (length within the file and within
  its 100 MB limit, a JSON object, known dtypes, every tensor's byte range the size its dtype and shape
  need, the ranges contiguous and covering exactly the rest of the file), so a file that passes loads
  and a truncated or forged one is named here.

Only the standard library is used (no torch).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tunewise.plugins.errors import TunewiseError

SAFETENSORS_HEADER_LIMIT = 100_000_000
"""Largest safetensors header accepted: the safetensors library's own ``MAX_HEADER_SIZE``."""
CONFIG_LIMIT = 16 * 2**20
"""Largest model config JSON read (real ones are a few kB)."""
TOKENIZER_LIMIT = 512 * 2**20
"""Largest ``tokenizer.json`` read (the largest vocabularies on the hub are tens of MB)."""

DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8, "F8_E5M2": 8, "F8_E5M2FNUZ": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
"""Bits per element of every safetensors dtype."""

_U64 = 2**64

# Integer shape fields of transformers configs and the largest value a real model has room for; a
# config outside them would make transformers allocate without bound or fail deep inside its code.
_SHAPE_LIMITS: dict[str, int] = {
    "hidden_size": 2**20, "n_embd": 2**20, "d_model": 2**20,
    "num_hidden_layers": 100_000, "n_layer": 100_000, "num_layers": 100_000,
    "num_attention_heads": 2**16, "n_head": 2**16, "num_key_value_heads": 2**16, "head_dim": 2**16,
    "intermediate_size": 2**24, "n_inner": 2**24, "vocab_size": 2**26,
    "max_position_embeddings": 2**40, "n_positions": 2**40,
}
_TEXT_FIELDS = ("model_type", "dtype", "torch_dtype")


class CorruptModelError(TunewiseError):
    """A model file that is not what its name says: unreadable, truncated, malformed or out of range."""


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


@contextlib.contextmanager
def open_regular(path: Path | str) -> Iterator[tuple[BinaryIO, int]]:
    """``(file, size)`` of a regular file; anything else is refused, naming ``path``, before it is read.

    The kind is checked before opening, so a device is never opened, and again on the open
    descriptor by :func:`~tunewise.plugins.bounded_load.open_regular` (the name may have been swapped
    in between; its open never blocks on a FIFO).
    """
    from tunewise.plugins.bounded_load import InputError
    from tunewise.plugins.bounded_load import open_regular as open_checked

    path = Path(path)
    try:
        kind = _not_regular(os.stat(path).st_mode)
        if kind is not None:
            raise CorruptModelError(f"{path}: {kind}, not a file; a model folder holds regular files only")
        with open_checked(path) as handle:
            yield handle, os.fstat(handle.fileno()).st_size
    except InputError as exc:
        raise CorruptModelError(f"{path}: {exc.problem}") from None
    except OSError as exc:
        raise CorruptModelError(f"{path}: cannot read ({_reason(exc)})") from None


def _read_exactly(handle: BinaryIO, count: int, path: Path) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left > 0:
        try:
            chunk = handle.read(min(left, 1 << 20))
        except OSError as exc:
            raise CorruptModelError(f"{path}: cannot read ({_reason(exc)})") from None
        if not chunk:
            raise CorruptModelError(f"{path}: truncated (ends {left:,} bytes early)")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_bounded(path: Path | str, limit: int) -> bytes:
    """The bytes of regular file ``path``, refused (unread) when it is larger than ``limit``."""
    path = Path(path)
    with open_regular(path) as (handle, size):
        if size > limit:
            raise CorruptModelError(f"{path}: {size:,} bytes, more than the {limit:,} such a file may have")
        data = _read_exactly(handle, size, path)
        if handle.read(1):  # grew while being read
            raise CorruptModelError(f"{path}: changed while being read")
        return data


def read_prefix(path: Path | str, count: int) -> bytes:
    """The first ``count`` bytes (fewer when the file is shorter) of regular file ``path``."""
    with open_regular(path) as (handle, _size):
        try:
            return handle.read(count)
        except OSError as exc:
            raise CorruptModelError(f"{path}: cannot read ({_reason(exc)})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: valid JSON syntax, but no number a config can mean
        raise ValueError(f"{text} is out of range")
    return value


def parse_json(data: bytes, path: Path | str) -> Any:
    """Strict JSON (RFC 8259: no NaN or Infinity) from ``data``; errors name ``path`` and the position."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise CorruptModelError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CorruptModelError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:  # NaN / Infinity, an integer with thousands of digits
        raise CorruptModelError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise CorruptModelError(f"{path}: JSON nested too deeply to read") from None


def read_json_object(path: Path | str, limit: int = CONFIG_LIMIT) -> dict[str, Any]:
    """A JSON file that must hold an object (``{...}``), read within ``limit`` bytes."""
    value = parse_json(read_bounded(path, limit), path)
    if not isinstance(value, dict):
        raise CorruptModelError(f"{path}: must hold a JSON object ({{...}}), not {type(value).__name__}")
    return value


# -- safetensors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    """Byte offset in the data section (after the header)."""
    end: int

    @property
    def count(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """A checked safetensors header: the raw JSON bytes, the tensors and the free-form metadata."""

    path: Path
    raw: bytes
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    file_size: int


def _tensor(name: str, entry: Any, where: str) -> TensorInfo:
    if not isinstance(entry, dict):
        raise CorruptModelError(f"{where}: tensor {name!r} is {type(entry).__name__}, not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise CorruptModelError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d < _U64 for d in shape):
        raise CorruptModelError(f"{where}: tensor {name!r} has shape {shape!r}; a list of whole numbers ≥ 0 "
                                "is needed")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int and 0 <= o < _U64 for o in offsets) or offsets[1] < offsets[0]):
        raise CorruptModelError(f"{where}: tensor {name!r} has data_offsets {offsets!r}; [begin, end] with "
                                "0 ≤ begin ≤ end is needed")
    info = TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])
    bits = info.count * DTYPE_BITS[dtype]
    if bits >= _U64 * 8 or bits % 8 or bits // 8 != info.end - info.begin:
        raise CorruptModelError(f"{where}: tensor {name!r} ({dtype} {list(shape)}) needs {bits / 8:,.0f} bytes "
                                f"but its data_offsets span {info.end - info.begin:,}")
    return info


def read_safetensors_header(path: Path | str) -> SafetensorsHeader:
    """The checked header of safetensors file ``path``; any inconsistency is refused, naming the file.

    Reads 8 bytes plus the header, never more: the length field is checked against the file's size
    and :data:`SAFETENSORS_HEADER_LIMIT` before anything is allocated for it.
    """
    path = Path(path)
    where = str(path)
    with open_regular(path) as (handle, size):
        if size < 8:
            raise CorruptModelError(f"{where}: {size} bytes, too short for a safetensors file (truncated?)")
        length = int.from_bytes(_read_exactly(handle, 8, path), "little")
        if length > size - 8:
            raise CorruptModelError(f"{where}: the header says it is {length:,} bytes but the file holds only "
                                    f"{size - 8:,} after the length field (truncated, or not a safetensors file)")
        if length > SAFETENSORS_HEADER_LIMIT:
            raise CorruptModelError(f"{where}: header of {length:,} bytes, more than safetensors' limit of "
                                    f"{SAFETENSORS_HEADER_LIMIT:,}")
        raw = _read_exactly(handle, length, path)
    header = parse_json(raw, f"{where} (safetensors header)")
    if not isinstance(header, dict):
        raise CorruptModelError(f"{where}: the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CorruptModelError(f"{where}: __metadata__ must map names to strings")
    tensors = {str(name): _tensor(str(name), entry, where) for name, entry in header.items()}
    # As the safetensors library checks: sorted by offset, the tensors tile the data section exactly.
    data_size = size - 8 - length
    position = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.begin != position:
            problem = "overlaps the previous tensor" if info.begin < position else "leaves a gap before it"
            raise CorruptModelError(f"{where}: tensor {name!r} starts at byte {info.begin:,} of the data, which "
                                    f"{problem} (expected {position:,})")
        position = info.end
    if position != data_size:
        problem = "truncated" if position > data_size else "trailing bytes after the last tensor"
        raise CorruptModelError(f"{where}: the tensors need {position:,} bytes of data but the file holds "
                                f"{data_size:,} ({problem})")
    return SafetensorsHeader(path, raw, tensors, dict(metadata), size)


# -- configs and tokenizers -----------------------------------------------------------------------


def check_config(config: Mapping[str, Any], where: str) -> None:
    """Refuse a transformers config whose shape fields are not whole numbers in range (nested configs too)."""
    for key, value in config.items():
        if isinstance(value, Mapping):
            if key.endswith("config") or key.endswith("_config"):
                check_config(value, f"{where} ({key})")
            continue
        if key in _SHAPE_LIMITS and value is not None:
            limit = _SHAPE_LIMITS[key]
            if type(value) is not int or not 1 <= value <= limit:
                raise CorruptModelError(f"{where}: {key} is {json.dumps(value)}; a whole number from 1 to "
                                        f"{limit:,} is needed")
        elif key in _TEXT_FIELDS and value is not None and not isinstance(value, str):
            raise CorruptModelError(f"{where}: {key} is {json.dumps(value)}; text is needed")
        elif key == "architectures" and value is not None and (
                not isinstance(value, list) or not all(isinstance(a, str) for a in value)):
            raise CorruptModelError(f"{where}: architectures is {json.dumps(value)[:80]}; a list of names is needed")


def read_model_config(folder: Path | str) -> dict[str, Any]:
    """``config.json`` of a model folder: a bounded, strict JSON object with sane shape fields."""
    path = Path(folder) / "config.json"
    config = read_json_object(path, CONFIG_LIMIT)
    check_config(config, str(path))
    return config


def check_tokenizer_json(path: Path | str) -> None:
    """Refuse a ``tokenizer.json`` that the tokenizers library could not load (bounded read)."""
    data = read_json_object(path, TOKENIZER_LIMIT)
    model = data.get("model")
    if not isinstance(model, dict):
        raise CorruptModelError(f"{path}: no tokenizer \"model\" object (truncated or not a tokenizer file)")
    if not isinstance(data.get("added_tokens", []), list):
        raise CorruptModelError(f"{path}: added_tokens must be a list")


# -- the folders a model is read from -------------------------------------------------------------

LOADER_MARKERS = ("config.json", "adapter_config.json", "modules.json", "config_sentence_transformers.json",
                  "sentence_bert_config.json", "tokenizer_config.json")
"""A folder holding one of these is one a loader reads (a model, an adapter, a sentence-transformers module)."""
LOADER_JSON = (*LOADER_MARKERS, "tokenizer.json", "special_tokens_map.json", "generation_config.json",
               "added_tokens.json", "vocab.json", "processor_config.json", "preprocessor_config.json",
               "model.safetensors.index.json", "adapter_model.safetensors.index.json")
"""JSON files loaders read: each must be strict JSON within its size cap."""
MAX_DEPTH = 16
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class ModelDir:
    """One folder of a model tree and the regular files in it."""

    path: Path
    relative: str
    """Path from the model folder (``""`` for the folder itself)."""
    loaded: bool
    """Whether a loader reads files from it: the model folder, a sentence-transformers module named in
    ``modules.json``, or any folder with a config (``adapter/``, a nested model)."""
    files: tuple[str, ...]
    """Names of the entries that are not folders (links to folders included)."""
    folders: tuple[str, ...] = ()


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def _module_paths(folder: Path) -> list[str]:
    path = folder / "modules.json"
    if not os.path.lexists(path):
        return []
    modules = parse_json(read_bounded(path, CONFIG_LIMIT), path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise CorruptModelError(f"{path}: must be a JSON list of module objects")
    found = []
    for module in modules:
        sub = module.get("path", "")
        if not isinstance(sub, str):
            raise CorruptModelError(f"{path}: module path {sub!r} is not text")
        folded = os.path.normpath(sub.replace("\\", "/")) if sub.strip() else "."
        if folded != "." and not os.path.isabs(folded) and folded != ".." and not folded.startswith("../"):
            found.append(folded)  # names that leave the folder are refused by the trust check
    return found


def model_tree(folder: Path | str) -> list[ModelDir]:
    """Every folder of a model tree a loader could reach, top first.

    Hidden folders (``.git``, ``.cache``) are skipped: loaders never read them, and a git clone keeps
    LFS copies of every weight file there. Linked folders are not followed, except the
    sentence-transformers modules ``modules.json`` names, which the loader follows too.
    """
    top = Path(folder)
    named = {os.path.normpath(p) for p in _module_paths(top)}
    out: list[ModelDir] = []
    seen = 0
    pending: list[tuple[Path, str]] = [(top, "")]
    pending += [(top / p, Path(p).as_posix()) for p in sorted(named) if os.path.islink(top / p)]
    visited: set[str] = set()
    while pending:
        path, relative = pending.pop(0)
        if relative in visited:
            continue
        visited.add(relative)
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            if relative and os.path.normpath(relative) not in named:
                continue  # a folder no loader reads
            raise CorruptModelError(f"{path}: cannot list the folder ({_reason(exc)})") from None
        seen += len(entries)
        if seen > MAX_ENTRIES:
            raise CorruptModelError(f"{top}: more than {MAX_ENTRIES:,} files; point at the model folder itself")
        files = tuple(e.name for e in entries if not _hidden(e.name) and not e.is_dir(follow_symlinks=False))
        folders = tuple(e.name for e in entries if not _hidden(e.name) and e.is_dir(follow_symlinks=False))
        loaded = (not relative or os.path.normpath(relative) in named
                  or any(marker in files for marker in LOADER_MARKERS))
        out.append(ModelDir(path, relative, loaded, files, folders))
        if relative.count("/") + 1 < MAX_DEPTH:
            pending += [(path / name, f"{relative}/{name}" if relative else name) for name in folders]
    return out


@functools.lru_cache(maxsize=256)
def _checked_header(path: str, stamp: tuple[int, int, int]) -> SafetensorsHeader:
    return read_safetensors_header(path)


@functools.lru_cache(maxsize=64)
def _checked_tokenizer(path: str, stamp: tuple[int, int, int]) -> None:
    check_tokenizer_json(path)


def checked_safetensors(path: Path | str) -> SafetensorsHeader:
    """:func:`read_safetensors_header`, remembered while the file is unchanged (checks run once per load)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CorruptModelError(f"{path}: cannot read ({_reason(exc)})") from None
    return _checked_header(str(path), (info.st_ino, info.st_size, info.st_mtime_ns))


def _check_entry(directory: ModelDir, name: str) -> None:
    check_file(directory.path / name, top=directory.relative == "")


def check_file(path: Path, *, top: bool = False) -> None:
    """Refuse one entry of a model folder a loader would read: see :func:`check_model_files`.

    ``top``: the entry lies in the model folder itself (its ``config.json`` is the model's config).
    """
    name = path.name
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        what = "a link to a missing file" if os.path.islink(path) and exc.errno == errno.ENOENT else _reason(exc)
        raise CorruptModelError(f"{path}: cannot read ({what})") from None
    if stat.S_ISDIR(mode):
        if name.endswith(".safetensors") or name in LOADER_JSON:
            raise CorruptModelError(f"{path}: a directory, not a file")
        return
    kind = _not_regular(mode)
    if kind is not None:
        raise CorruptModelError(f"{path}: {kind}, not a file; a model folder holds regular files only")
    if name.endswith(".safetensors"):
        checked_safetensors(path)
    elif name == "tokenizer.json":
        info = os.stat(path)  # parsed once while unchanged: tens of MB for large vocabularies
        _checked_tokenizer(str(path), (info.st_ino, info.st_size, info.st_mtime_ns))
    elif name in LOADER_JSON:
        data = parse_json(read_bounded(path, TOKENIZER_LIMIT if name == "vocab.json" else CONFIG_LIMIT), path)
        if name != "modules.json" and not isinstance(data, dict):
            raise CorruptModelError(f"{path}: must hold a JSON object ({{...}}), not {type(data).__name__}")
        if name == "config.json" and (top or "model_type" in data):
            check_config(data, str(path))
        if name.endswith(".safetensors.index.json"):
            _check_shards(path, data)


def _check_shards(path: Path, index: dict[str, Any]) -> None:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CorruptModelError(f"{path}: weight_map must map tensor names to shard file names")
    for shard in sorted(set(weight_map.values())):
        if os.path.isabs(shard) or ".." in Path(shard).parts:
            continue  # a name leaving the folder is refused by the trust check, with that reason
        if not os.path.isfile(path.parent / shard):
            raise CorruptModelError(f"{path}: names the shard {shard!r}, which is not in {path.parent}")


def check_model_files(folder: Path | str) -> list[ModelDir]:
    """Refuse a model tree with a corrupt file in a folder a loader reads; return the tree.

    Checked in each such folder: every entry is a regular file or a folder (no FIFO, device, dangling
    link or link loop), no folder is named like a weight or config file, every safetensors header
    (:func:`read_safetensors_header`), every JSON file loaders read (strict, bounded, an object;
    ``config.json`` shape fields in range; ``tokenizer.json`` a tokenizer) and every shard a
    safetensors index names.
    """
    tree = model_tree(folder)
    for directory in tree:
        if directory.loaded:
            for name in directory.files:
                _check_entry(directory, name)
            for name in directory.folders:
                if name.endswith(".safetensors") or name in LOADER_JSON:
                    raise CorruptModelError(f"{directory.path / name}: a directory, not a file")
    return tree
