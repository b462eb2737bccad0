"""Forged RAG index files: every size a header declares is checked against the file before a loader allocates.

A real index is built with ``tunewise rag index``; each case then forges one data file (FAISS
vectors, a bm25s ``.npy`` array or JSON file, the chunk store) and rewrites the manifest's
checksums to match, as a forger would, so only the loaders' own checks stand between the file
and ``faiss.read_index`` / NumPy. ``tunewise rag search`` then runs under a 3 GiB address-space
limit and must exit 1 naming the file, with its peak memory far below what the header declares.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy
from support import REPO, run_cli
from tunewise.methods.rag.index_files import read_npy, read_vectors
from tunewise.plugins.bounded_load import InputError

DOCS = {
    "volcano.txt": "Volcanoes\nA volcano is a rupture in the crust where lava, ash and gases escape.",
    "bread.md": "# Baking bread\nBread dough needs flour, water, salt and yeast. Knead it and let it rise.",
    "chess.txt": "Chess\nThe king moves one square in any direction.",
}
DIMENSION = 384  # all-MiniLM-L6-v2
CHUNKS = len(DOCS)  # one chunk each
HEADER = 37  # a FAISS index type's fourcc + write_index_header; the flat index's follows the IDMap's
PEAK_LIMIT_KB = 512 << 10
"""Far above the CLI's own peak (~100 MiB with FAISS loaded), far below the 1 GiB the "large" forgeries declare."""

# The CLI under an address-space limit (a forged size then fails fast instead of swapping), reporting
# its own peak resident memory (VmHWM: this process image's, not the forking test's) as its last line.
WRAPPER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from tunewise.advisor.cli import main
try:
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status:
        print("peak_kb=" + next(line.split()[1] for line in status if line.startswith("VmHWM:")), file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rag-files")
    docs = root / "kb"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    proc = run_cli("rag", "index", str(docs), "--index", str(root / "index"))
    assert proc.returncode == 0, proc.stderr
    return root / "index"


def copy_index(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(index folder, data folder) of a fresh copy of the built index."""
    index = tmp_path / "index"
    shutil.copytree(built, index)
    manifest = json.loads((index / "manifest.json").read_text())
    return index, index / manifest["data_dir"]


def rehash(index: Path) -> None:
    """Rewrite the manifest's checksums to match the (forged) data files, as a forger would."""
    manifest = json.loads((index / "manifest.json").read_text())
    data_dir = index / manifest["data_dir"]
    for name in manifest["data_files"]:
        path = data_dir / name
        if path.is_file():
            manifest["data_files"][name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (index / "manifest.json").write_text(json.dumps(manifest))


def set_manifest(index: Path, **embedding: object) -> None:
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["embedding_model"].update(embedding)
    (index / "manifest.json").write_text(json.dumps(manifest))


def patch(path: Path, offset: int, fmt: str, *values: object) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, *values)
    path.write_bytes(bytes(raw))


def forge_faiss(path: Path, d: int = DIMENSION, count: int = CHUNKS) -> None:
    """Declare ``count`` vectors of ``d`` floats everywhere the file states a size (both headers, the lengths
    of the vector values and of the ids), leaving the data as it is: only the file's size gives it away."""
    ids_length_at = 2 * HEADER + 8 + 4 * DIMENSION * CHUNKS
    for offset in (0, HEADER):
        patch(path, offset + 4, "<i", d)
        patch(path, offset + 8, "<q", count)
    patch(path, 2 * HEADER, "<q", d * count)
    patch(path, ids_length_at, "<q", count)


def write_npy(path: Path, payload: bytes, descr: object, shape: tuple[int, ...]) -> None:
    with path.open("wb") as fh:
        npy.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(payload)


def npy_payload(path: Path) -> bytes:
    return np.load(path, allow_pickle=False).tobytes()


def reshape_npy(path: Path, shape: tuple[int, ...], descr: object = None) -> None:
    array = np.load(path, allow_pickle=False)
    write_npy(path, array.tobytes(), descr or npy.dtype_to_descr(array.dtype), shape)


def replace_with_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def huge_header_length(path: Path) -> None:
    """A version 2.0 header declaring a 4 GiB header (NumPy would read that much before its own limit)."""
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFF_FFF0) + b"{'descr': '<f4'}")


def edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def forge(path: Path) -> None:
        value = json.loads(path.read_text())
        change(value)
        path.write_text(json.dumps(value))
    forge.__name__ = name
    return forge


def extra_chunk(path: Path) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[-1])
    path.write_text("\n".join([*lines, json.dumps({**record, "id": 999})]) + "\n")


# name: (file under the data folder, forgery, what the message must say besides the file)
FAISS = "vectors.faiss"
DATA, INDICES, INDPTR = "bm25/data.csc.index.npy", "bm25/indices.csc.index.npy", "bm25/indptr.csc.index.npy"
CASES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "faiss-ntotal-huge": (FAISS, lambda p: forge_faiss(p, count=1 << 40), "truncated, padded or forged"),
    "faiss-ntotal-1GiB": (FAISS, lambda p: forge_faiss(p, count=(1 << 30) // (4 * DIMENSION)), "truncated, padded or forged"),
    "faiss-ntotal-negative": (FAISS, lambda p: forge_faiss(p, count=-5), "negative vector count"),
    "faiss-d-huge": (FAISS, lambda p: forge_faiss(p, d=1 << 30), "dimension 1073741824"),
    "faiss-ids-length": (FAISS, lambda p: patch(p, p.stat().st_size - 8 * CHUNKS - 8, "<Q", 1 << 40), "declares 3 ids"),
    "faiss-ids-differ": (FAISS, lambda p: patch(p, p.stat().st_size - 8, "<q", 12345), "their ids differ"),
    "faiss-truncated": (FAISS, lambda p: p.write_bytes(p.read_bytes()[:-1000]), "truncated, padded or forged"),
    "faiss-trailing-garbage": (FAISS, lambda p: p.write_bytes(p.read_bytes() + b"\0" * 64), "truncated, padded"),
    "faiss-empty": (FAISS, lambda p: p.write_bytes(b""), "0 bytes, shorter than the headers"),
    "faiss-other-type": (FAISS, lambda p: p.write_bytes(b"IxF2" + p.read_bytes()[4:]), "not the FAISS index"),
    "faiss-directory": (FAISS, replace_with_dir, "a folder, not a regular file"),
    "faiss-fifo": (FAISS, replace_with_fifo, "a FIFO (named pipe), not a regular file"),
    "npy-shape-huge": (DATA, lambda p: reshape_npy(p, (1 << 40,)), "truncated, padded or forged"),
    "npy-shape-1GiB": (DATA, lambda p: reshape_npy(p, (1 << 28,)), "truncated, padded or forged"),
    "npy-shape-2d": (DATA, lambda p: reshape_npy(p, (1, 9)), "one-dimensional"),
    "npy-object-dtype": (INDICES, lambda p: reshape_npy(p, (9,), "|O"), "dtype object"),
    "npy-structured-dtype": (DATA, lambda p: reshape_npy(p, (9,), [("a", "<f4")]), "dtype"),
    "npy-truncated": (INDPTR, lambda p: p.write_bytes(p.read_bytes()[:-8]), "truncated, padded or forged"),
    "npy-header-length": (DATA, huge_header_length, "a .npy header of 4294967280 bytes"),
    "npy-not-numpy": (DATA, lambda p: p.write_bytes(b"PK\x03\x04 not an array"), "not a NumPy .npy file"),
    "npy-empty": (INDICES, lambda p: p.write_bytes(b""), "not a NumPy .npy file"),
    "npy-fifo": (INDPTR, replace_with_fifo, "a FIFO (named pipe), not a regular file"),
    "npy-document-out-of-range": (
        INDICES, lambda p: write_npy(p, np.full(len(np.load(p)), 10**6, "<i4").tobytes(), "<i4", (len(np.load(p)),)),
        "names documents outside 0..2"),
    "npy-offsets-past-end": (
        INDPTR, lambda p: write_npy(p, (np.load(p) * 50).astype("<i8").tobytes(), "<i8", (len(np.load(p)),)),
        "must rise from 0"),
    "bm25-params-method": (
        "bm25/params.index.json", edit_json("bm25l", lambda v: v.update(method="bm25l")), "method is 'bm25l'"),
    "bm25-params-unknown": (
        "bm25/params.index.json", edit_json("unknown", lambda v: v.update(corpus=[1])), "unknown BM25 parameters"),
    "bm25-params-num-docs": (
        "bm25/params.index.json", edit_json("num_docs", lambda v: v.update(num_docs=10**9)), "1000000000 documents"),
    "bm25-vocab-column": (
        "bm25/vocab.index.json", edit_json("column", lambda v: v.update(lava=10**9)), "maps 'lava' to 1000000000"),
    "bm25-vocab-list": ("bm25/vocab.index.json", lambda p: p.write_text("[1, 2]"), "must be a JSON object"),
    "chunks-extra-record": ("chunks.jsonl", extra_chunk, f"more chunk records than the {CHUNKS} vectors"),
    "chunks-text-not-string": (
        "chunks.jsonl", lambda p: p.write_text(p.read_text().replace('"text": "', '"text": ["', 1).replace(
            '"}\n', '"]}\n', 1)), "must be strings"),
}


def run_search(index: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    proc = subprocess.run([sys.executable, "-c", WRAPPER, "rag", "search", "--index", str(index), "lava"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    *lines, last = proc.stderr.rstrip("\n").split("\n")
    assert last.startswith("peak_kb="), proc.stderr
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, "\n".join(lines)), int(last[8:])


def test_the_built_index_searches_under_the_same_limit(built: Path) -> None:
    """The wrapper does not itself break the CLI: an unforged index is searched."""
    proc, _ = run_search(built)
    assert proc.returncode == 0, proc.stderr
    assert "kb/volcano.txt" in proc.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_forged_index_file_is_refused_naming_it(case: str, built: Path, tmp_path: Path) -> None:
    relative, forge, expected = CASES[case]
    index, data_dir = copy_index(built, tmp_path)
    forge(data_dir / relative)
    rehash(index)
    proc, peak_kb = run_search(index)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("tunewise rag: error: "), proc.stderr
    assert str(data_dir / relative) in proc.stderr or (
        # a disagreement between files names their folder and the file names
        str(data_dir) in proc.stderr and Path(relative).name in proc.stderr), proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert "--rebuild" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr.lower()
    assert peak_kb < PEAK_LIMIT_KB, f"peak {peak_kb} kB"


def test_forged_dimension_in_manifest_and_file_is_refused(built: Path, tmp_path: Path) -> None:
    """Manifest and vectors agree on a large dimension: the file is still too small for it."""
    index, data_dir = copy_index(built, tmp_path)
    forge_faiss(data_dir / FAISS, d=60_000)
    set_manifest(index, dimension=60_000)
    rehash(index)
    proc, peak_kb = run_search(index)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{data_dir / FAISS}: " in proc.stderr, proc.stderr
    assert "its header declares 3 vectors of dimension 60000, which take" in proc.stderr
    assert peak_kb < PEAK_LIMIT_KB
    set_manifest(index, dimension=1 << 30)
    proc = run_cli("rag", "search", "--index", str(index), "lava")
    assert proc.returncode == 1 and "embedding_model.dimension must be a whole number from 1 to" in proc.stderr


@pytest.mark.parametrize("edit", [
    lambda m: m.update(data_files=["chunks.jsonl"]),
    lambda m: m["data_files"].pop("vectors.faiss"),
    lambda m: m.update(embedding_model="all-MiniLM-L6-v2"),
    lambda m: m["embedding_model"].update(dimension="384"),
    lambda m: m.update(files={"kb/a.txt": {"sha256": "x", "chunk_ids": "0"}}),
    lambda m: m.update(next_id=None),
], ids=["data_files-list", "vectors-unlisted", "model-string", "dimension-string", "chunk_ids-string", "next_id"])
def test_manifest_fields_of_the_wrong_shape_are_named(edit: Callable[[dict], None], built: Path,
                                                        tmp_path: Path) -> None:
    index, _ = copy_index(built, tmp_path)
    manifest = json.loads((index / "manifest.json").read_text())
    edit(manifest)
    (index / "manifest.json").write_text(json.dumps(manifest))
    proc = run_cli("rag", "search", "--index", str(index), "lava")
    assert proc.returncode == 1, proc.stdout
    assert f"{index / 'manifest.json'}: " in proc.stderr and "the index is corrupted" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr.lower()


def test_ask_refuses_a_forged_index_before_loading_a_model(built: Path, tmp_path: Path) -> None:
    index, data_dir = copy_index(built, tmp_path)
    reshape_npy(data_dir / DATA, (1 << 40,))
    rehash(index)
    proc = run_cli("rag", "ask", "--index", str(index), "What escapes from a volcano?", "--model",
                   str(tmp_path / "no-model-needed"))
    assert proc.returncode == 1
    assert f"{data_dir / DATA}: " in proc.stderr and "truncated, padded or forged" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_loaders_check_files_on_their_own(built: Path, tmp_path: Path) -> None:
    """Without any manifest: the readers refuse what is not a regular file, or does not fit its header."""
    _, data_dir = copy_index(built, tmp_path)
    assert read_vectors(data_dir / FAISS, DIMENSION).ntotal == 3
    assert read_npy(data_dir / DATA, "f").dtype == np.float32
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for call in (lambda: read_vectors(fifo, DIMENSION), lambda: read_npy(fifo, "f"),
                 lambda: read_vectors(tmp_path, DIMENSION), lambda: read_npy(tmp_path / "missing.npy", "f")):
        with pytest.raises(InputError) as caught:
            call()
        assert str(caught.value).startswith(str(tmp_path))
    with pytest.raises(InputError, match="dimension 384, but the index manifest records dimension 768"):
        read_vectors(data_dir / FAISS, 768)
    with pytest.raises(InputError, match="numbers of kind i/u"):
        read_npy(data_dir / DATA, "iu")
