"""What tunewise agrees to load from disk: safetensors weights, no remote code, no references out of a folder.

A model folder, a plan or an index manifest may come from someone else. Loading a pickle
(``pytorch_model.bin``, ``*.pt``) or a config's ``auto_map`` runs code that the folder's author
wrote; a file name such as ``../../.ssh/id_rsa`` in a tokenizer config or a plan makes tunewise read
(and maybe train on, quote and publish) a file its user never meant to share. Each is refused with a
message saying what was found and how to opt in when the user really means it:

- remote code: ``tunewise run --trust-remote-code`` (sets :data:`REMOTE_CODE_ENV` for the run and
  the processes it starts); only then is ``trust_remote_code=True`` handed to transformers.
- any path a plan names (data, model folder, output_dir, every config setting marked with
  :data:`PATH_MARKER`) outside the plan's folder and the working directory: ``--allow-outside-paths``
  (:data:`OUTSIDE_PATHS_ENV`).

Neither opt-in can come from a plan file: a plan is itself material from someone else.
Everything here reads small JSON files only (no torch).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError
from tunewise.plugins.model_files import ModelDir, check_file, check_model_files, model_tree
from tunewise.plugins.pickles import covered, pickle_kind
from tunewise.plugins.redaction import redacted_repr

REMOTE_CODE_ENV = "TUNEWISE_TRUST_REMOTE_CODE"
OUTSIDE_PATHS_ENV = "TUNEWISE_ALLOW_OUTSIDE_PATHS"


CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")
"""Files whose ``auto_map`` makes transformers import Python modules from the model folder."""

REFERENCE_CONFIGS = (*CODE_CONFIGS, "special_tokens_map.json", "generation_config.json", "adapter_config.json",
                     "modules.json", "sentence_bert_config.json", "model.safetensors.index.json")
"""JSON files that may name other files to read."""

# Keys that hold a file name to read. ``*name_or_path`` keys are provenance notes written by
# save_pretrained (often an absolute path on the author's machine), and ``special_tokens_map_file``
# is a leftover many hub tokenizer configs still carry (an absolute path on the author's machine)
# that transformers never opens (it reads special_tokens_map.json by name): refusing those would
# refuse half the hub for nothing.
_FILE_KEY = re.compile(r"(^|_)(file|files|path|paths|dir)$")
_PROVENANCE_KEYS = frozenset({"_name_or_path", "name_or_path", "_model_name_or_path", "base_model_name_or_path",
                              "special_tokens_map_file"})


class UntrustedArtifactError(TunewiseError):
    """A model, plan or manifest that would run foreign code or read outside its folder."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def remote_code_allowed() -> bool:
    """Whether the user opted in to code shipped with a model (``--trust-remote-code``)."""
    return _flag(REMOTE_CODE_ENV)


def outside_paths_allowed() -> bool:
    """Whether the user opted in to plan paths outside the plan's folder and the working directory."""
    return _flag(OUTSIDE_PATHS_ENV)


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def is_inside(path: Path | str, root: Path | str) -> bool:
    """Whether ``path`` lies in ``root``, judged on the names (``..`` folded, symlinks not followed).

    Links are the folder owner's own choice (the Hugging Face cache links every snapshot file into
    ``../../blobs``); what is refused is a *name* that climbs out.
    """
    path, root = _absolute(path), _absolute(root)
    return path.is_relative_to(root) or path.is_relative_to(root.resolve())


def escapes(reference: str) -> bool:
    """Whether a file name written in a manifest or config leaves the folder it is written in."""
    text = reference.strip()
    if not text:
        return False
    if text.startswith("~") or os.path.isabs(text) or re.match(r"^[A-Za-z]:[\\/]", text):
        return True
    folded = os.path.normpath(text.replace("\\", "/"))
    return folded == ".." or folded.startswith("../")


def check_reference(reference: str, folder: Path, *, where: str) -> Path:
    """``folder / reference`` when its name stays in ``folder``; else refuse, naming ``where``."""
    target = folder / reference
    if escapes(reference) or not is_inside(target, folder):
        raise UntrustedArtifactError(
            f"{where}: {reference!r} points outside {folder}; tunewise reads only files inside the folder that "
            "names them (a copied or downloaded folder must not make tunewise read your other files)")
    return target


def _file_references(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key path, string) for every value under a file-naming key, at any depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            k = str(k)
            child = f"{key}.{k}" if key else k
            if k in _PROVENANCE_KEYS:
                continue
            if k == "weight_map" and isinstance(v, dict):  # sharded safetensors: tensor -> shard file
                yield from ((f"{child}.{name}", str(shard)) for name, shard in v.items())
            elif _FILE_KEY.search(k.lower()) and isinstance(v, str):
                yield child, v
            elif _FILE_KEY.search(k.lower()) and isinstance(v, list):
                yield from ((f"{child}[{i}]", item) for i, item in enumerate(v) if isinstance(item, str))
            else:
                yield from _file_references(v, child)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _file_references(item, f"{key}[{i}]")


def _read_json(path: Path) -> Any:
    from tunewise.plugins.bounded_load import InputError, read_json

    try:  # bounded: size, nesting and text checked before _file_references walks it
        return read_json(path, what="a model JSON file")
    except InputError as exc:
        raise UntrustedArtifactError(f"{path}: unreadable JSON ({exc.problem})") from None
    except OSError as exc:
        raise UntrustedArtifactError(f"{path}: unreadable JSON ({exc.strerror or exc})") from None


def _pickles(tree: Sequence[ModelDir]) -> list[str]:
    """``relative/path: why`` for each pickle a loader could read in ``tree`` (see :mod:`~tunewise.plugins.pickles`)."""
    found = []
    for directory in tree:
        safe = [name for name in directory.files if name.lower().endswith((".safetensors", ".safetensors.index.json"))]
        for name in directory.files:
            path = directory.path / name
            if not os.path.isfile(path) or covered(name, safe):
                continue  # a non-file in a loaded folder is refused by check_model_files
            kind = pickle_kind(path, loader_folder=directory.loaded)
            if kind:
                found.append(f"{directory.relative + '/' if directory.relative else ''}{name}: {kind}")
    return found


def pickle_only_weights(folder: Path) -> list[str]:
    """Pickle files of the model tree that a loader would read, ``relative/path: why``; ``[]`` when none.

    The whole tree counts (sentence-transformers modules, adapters, nested models), folder by folder: a
    pickle is left alone only beside the safetensors its loader takes instead (:func:`covered`).
    """
    return _pickles(model_tree(folder))


def remote_code_entries(folder: Path) -> dict[str, Any]:
    """Code a loader would import from ``folder``: ``auto_map`` of each config file that has one, and
    ``modules.json`` types outside sentence-transformers (file name -> what it names)."""
    found: dict[str, Any] = {}
    for name in CODE_CONFIGS:
        path = folder / name
        if path.is_file():
            data = _read_json(path)
            if isinstance(data, dict) and data.get("auto_map"):
                found[name] = data["auto_map"]
    modules = folder / "modules.json"
    if modules.is_file():
        data = _read_json(modules)
        foreign = [m.get("type") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
        foreign = [t for t in foreign if not (isinstance(t, str) and t.startswith("sentence_transformers."))]
        if foreign:
            found["modules.json"] = {"type": foreign}
    return found


def check_model_folder(folder: Path, *, need_weights: bool = False) -> bool:
    """Refuse a model folder tunewise must not load; return the ``trust_remote_code`` to pass.

    The whole tree a loader reads is checked (the folder, its sentence-transformers modules, adapter
    and nested model folders), before any loader opens a file. Refused: a corrupt file
    (:func:`~tunewise.plugins.model_files.check_model_files`: FIFOs, devices, link loops, bad
    safetensors headers, malformed configs), config/tokenizer files naming files outside the folder,
    pickles a loader would read (:func:`pickle_only_weights`), and code shipped with the model
    (``auto_map``, foreign ``modules.json`` types) without the user's opt-in. With ``need_weights`` a
    folder without safetensors weights is refused too (before transformers fails less helpfully).
    """
    folder = Path(folder)
    tree = check_model_files(folder)
    for directory in tree:
        if not directory.loaded:
            continue
        for name in REFERENCE_CONFIGS:
            if name not in directory.files:
                continue
            path = directory.path / name
            for key, reference in _file_references(_read_json(path)):
                joined = os.path.join(directory.relative, reference) if directory.relative and not escapes(reference) \
                    else reference
                target = check_reference(joined, folder, where=f"{path} ({key})")
                if os.path.lexists(target):  # a named file outside the loaded folders gets their checks too
                    check_file(target)
    pickles = _pickles(tree)
    if pickles:
        raise UntrustedArtifactError(
            f"{folder}: the only weights are pickle files ({'; '.join(pickles)}); unpickling runs whatever code "
            "the file's author put in it, so tunewise loads weights only from .safetensors. Convert the model on "
            "a machine you trust (load it there and call save_pretrained(..., safe_serialization=True)), or use "
            "a release that ships model.safetensors")
    if need_weights and not any(name.endswith(".safetensors") for name in tree[0].files):
        raise UntrustedArtifactError(f"{folder}: no .safetensors weights; tunewise loads weights only from "
                                     "safetensors files")
    remote = {(f"{d.relative}/{name}" if d.relative else name): entries
              for d in tree if d.loaded for name, entries in remote_code_entries(d.path).items()}
    if not remote:
        return False
    if remote_code_allowed():
        return True
    listed = "; ".join(f"{name}: {'' if name.endswith('modules.json') else 'auto_map '}{json.dumps(entries)}"
                       for name, entries in remote.items())
    raise UntrustedArtifactError(
        f"{folder}: {listed}. Loading this model would import and run Python code shipped in the model folder. "
        "tunewise runs no such code unless you read it and opt in with `tunewise run --trust-remote-code` "
        f"({REMOTE_CODE_ENV}=1 for the other commands)")


PATH_MARKER = "path"
"""Dataclass field ``metadata`` key that marks a plan setting naming a file or folder: ``"read"`` (a file
or folder tunewise reads) or ``"write"`` (one it creates, writes or deletes). Plan loading checks every
marked field of ``config:`` and ``training:`` with the same rule as ``data:``."""


def path_fields(cls: type | None) -> dict[str, str]:
    """``{field: "read" | "write"}`` for the fields of dataclass ``cls`` marked with :data:`PATH_MARKER`.

    Any true marker other than ``"write"`` counts as ``"read"``: a misspelt kind still gets checked.
    """
    if cls is None or not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: "write" if f.metadata.get(PATH_MARKER) == "write" else "read"
            for f in dataclasses.fields(cls) if f.metadata.get(PATH_MARKER)}


def plan_path_target(value: str, plan_dir: Path | None, kind: str = "read") -> Path:
    """Where a path from a plan's settings leads: ``~`` expanded; a relative *read* path beside the plan
    when it exists there, else (and every relative *write* path) in the working directory, like ``output_dir``.
    """
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    if kind != "write" and plan_dir is not None:
        beside = Path(plan_dir) / path
        if beside.exists():
            return beside
    return Path.cwd() / path


def plan_roots(plan_dir: Path | str | None) -> tuple[Path, ...]:
    """The folders a plan may name paths in: its own folder (when it has one) and the working directory."""
    return (Path(plan_dir), Path.cwd()) if plan_dir is not None else (Path.cwd(),)


_OUTSIDE_RULE = ("a plan may name files and folders only in its own folder or the working directory unless you "
                 "run it with --allow-outside-paths (a plan from someone else must not make tunewise read, quote, "
                 "overwrite or delete your other files)")

LINKS_SHOWN = 3
"""Links out of a folder named in a refusal (the first ones found)."""


def outside_problem(value: str, target: Path | str, roots: Sequence[Path]) -> str | None:
    """Why ``target`` (where the plan's ``value`` leads) lies outside every root, or None when it is inside.

    Judged on the name (``~`` expanded, ``..`` folded) *and* on where it really leads (links followed,
    also for paths that do not exist yet): a copied or cloned folder can carry a link such as
    ``data.jsonl -> ~/.ssh/id_rsa``. A folder is searched for such links too (loaders read the files
    in it; runs write into it, through any link planted at a file name). Raises ``ValueError`` for
    names the system cannot use (NUL byte).
    """
    name = _absolute(target)
    real = Path(os.path.realpath(Path(target).expanduser()))  # unfolded: the system resolves a link before its ..
    named_inside = any(is_inside(name, root) for root in roots)
    shown = " and ".join(str(_absolute(root)) for root in roots)
    if not (named_inside and any(is_inside(real, root) for root in roots)):
        via = f" (a link to {real})" if named_inside else ""
        return f"{value}{via} is outside {shown}; {_OUTSIDE_RULE}"
    links = links_out(real, roots) if real.is_dir() else []
    if links:
        listed = ", ".join(f"{link.relative_to(real)} -> {dest}" for link, dest in links)
        return f"{value} holds links to files outside {shown} ({listed}); {_OUTSIDE_RULE}"
    return None


def links_out(folder: Path, roots: Sequence[Path], limit: int = LINKS_SHOWN) -> list[tuple[Path, Path]]:
    """(link, where it leads) for the first ``limit`` links under ``folder`` that lead outside every root.

    Linked folders are not entered (no loader enters them either), but a link to a folder outside counts.
    """
    found: list[tuple[Path, Path]] = []
    for top, dirs, files in os.walk(folder):  # never follows links; unreadable folders are skipped
        for entry in sorted(dirs) + sorted(files):
            path = Path(top) / entry
            if path.is_symlink():
                dest = Path(os.path.realpath(path))
                if not any(is_inside(dest, root) for root in roots):
                    found.append((path, dest))
                    if len(found) >= limit:
                        return found
    return found


def confine_plan_path(value: str, plan_source: str | None, *, field: str = "", kind: str = "read") -> Path:
    """:func:`plan_path_target` of a plan setting, refused outside the plan's folder and the working directory
    unless the user opted in with ``--allow-outside-paths`` (:func:`outside_paths_allowed`).

    The runtime twin of the check plan loading does, for plans built in code and settings a plugin never marked.
    """
    plan_dir = Path(plan_source).expanduser().resolve().parent if plan_source else None
    where = ", ".join(part for part in (plan_source or "", f"config.{field}" if field else "") if part) or "plan"
    try:
        target = plan_path_target(value, plan_dir, kind)
        problem = None if outside_paths_allowed() else outside_problem(value, target, plan_roots(plan_dir))
    except (ValueError, OSError, RuntimeError) as exc:  # NUL byte, name too long, ~unknown-user
        raise UntrustedArtifactError(f"{where}: not a usable path ({exc}): {redacted_repr(value, 80)}") from None
    if problem:
        raise UntrustedArtifactError(f"{where}: {problem}")
    return target


def check_plan_paths(paths: Sequence[str], base_dir: Path, roots: Sequence[Path]) -> list[tuple[int, str]]:
    """(index, problem) for each plan data path (relative ones start at ``base_dir``) outside every root."""
    problems = []
    for i, item in enumerate(paths):
        problem = outside_problem(item, Path(base_dir) / Path(item).expanduser(), roots)
        if problem:
            problems.append((i, problem))
    return problems
