"""Reading the RAG index's binary files (FAISS vectors, NumPy ``.npy`` arrays) with their sizes checked first.

A FAISS or ``.npy`` header states how much data follows, and the loaders allocate that much before
reading it: a forged header (a billion vectors in a 3 KB file) makes them fail with ``MemoryError``,
or on a large machine allocate and zero-fill gigabytes. So each file is opened once, as a regular
file, its header is parsed here, the sizes it declares are compared with the bytes really there,
and only then is that same open file handed to the loader. The manifest's checksums do not make
this redundant: whoever can edit the data files can rewrite the manifest's checksums too.

Every refusal is an :class:`InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tunewise.plugins.bounded_load import InputError, open_regular

_FAISS_HEADER = struct.Struct("<4siqqqBi")
"""An index type's fourcc, then faiss ``write_index_header``: d (int32), ntotal (int64), two unused
int64, is_trained (bool), metric_type (int32); no metric_arg follows for inner product."""
_COUNT = struct.Struct("<Q")
"""The length that precedes a serialized vector (in elements)."""
_METRIC_INNER_PRODUCT = 0
_NPY_MAX_HEADER = 10_000
"""NumPy's own limit on an ``.npy`` header (``max_header_size``); tunewise's arrays have ~120 bytes."""


@contextlib.contextmanager
def open_index_file(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """(binary file, size in bytes) of the regular file ``path``; anything else is an :class:`InputError`."""
    try:
        with open_regular(path) as fh:
            yield fh, os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise InputError(str(path), 0, f"cannot be read ({exc.strerror or exc})") from None


def faiss_file_size(dimension: int, count: int) -> int:
    """Bytes of an IndexIDMap2 over IndexFlatIP holding ``count`` vectors of ``dimension`` floats."""
    return 2 * _FAISS_HEADER.size + _COUNT.size + 4 * dimension * count + _COUNT.size + 8 * count


def read_vectors(path: Path, dimension: int) -> Any:
    """The FAISS index tunewise writes (IndexIDMap2 over IndexFlatIP, ``dimension``-long vectors) at ``path``.

    Its header is checked against the file's size before FAISS allocates anything.
    """
    import faiss

    def refuse(problem: str) -> InputError:
        return InputError(str(path), 0, problem)

    headers = 2 * _FAISS_HEADER.size  # the IDMap's, then the flat index's inside it
    with open_index_file(path) as (fh, size):
        head = fh.read(headers)
        if len(head) < headers:
            raise refuse(f"{size} bytes, shorter than the headers of a FAISS index ({headers} bytes)")
        outer = _FAISS_HEADER.unpack_from(head, 0)
        inner = _FAISS_HEADER.unpack_from(head, _FAISS_HEADER.size)
        if (outer[0], inner[0]) != (b"IxM2", b"IxFI"):
            raise refuse(f"not the FAISS index tunewise writes (IndexIDMap2 over IndexFlatIP, types IxM2/IxFI; "
                         f"found {outer[0]!r}/{inner[0]!r})")
        d, count, metric = outer[1], outer[2], outer[6]
        if (inner[1], inner[2], inner[6], metric) != (d, count, _METRIC_INNER_PRODUCT, _METRIC_INNER_PRODUCT):
            raise refuse(f"inconsistent FAISS headers (outer: dimension {d}, {count} vectors, metric {metric}; "
                         f"inner: dimension {inner[1]}, {inner[2]} vectors, metric {inner[6]})")
        if d != dimension:
            raise refuse(f"vectors of dimension {d}, but the index manifest records dimension {dimension}")
        if count < 0:
            raise refuse(f"a negative vector count ({count}) in its header")
        expected = faiss_file_size(d, count)
        if size != expected:
            raise refuse(f"{size} bytes, but its header declares {count} vectors of dimension {d}, which take "
                         f"{expected} bytes (truncated, padded or forged)")
        vectors_at = headers
        ids_at = vectors_at + _COUNT.size + 4 * d * count
        for offset, wanted, what in ((vectors_at, d * count, "vector values"), (ids_at, count, "ids")):
            fh.seek(offset)
            (found,) = _COUNT.unpack(fh.read(_COUNT.size))
            if found != wanted:
                raise refuse(f"its header declares {wanted} {what}, its data {found}")
        fh.seek(0)
        try:
            # FAISS reads from the file already checked (not the path again), a block at a time.
            return faiss.read_index(faiss.PyCallbackIOReader(fh.read))
        except Exception as exc:  # RuntimeError from FAISS; MemoryError if a real index exceeds memory
            raise refuse(f"unreadable FAISS index ({type(exc).__name__}: {str(exc).strip()[:300]})") from None


def read_npy(path: Path, kinds: str) -> Any:
    """The one-dimensional array in ``.npy`` file ``path``, of a numeric dtype whose kind is in ``kinds``.

    Kinds as :attr:`numpy.dtype.kind` (``"f"``, ``"iu"``). Object and structured dtypes are refused, and
    the declared shape must account for exactly the bytes after the header, before NumPy allocates.
    """
    import numpy as np
    from numpy.lib import format as npy

    def refuse(problem: str) -> InputError:
        return InputError(str(path), 0, problem)

    with open_index_file(path) as (fh, size):
        try:
            version = npy.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise refuse(f".npy format version {version[0]}.{version[1]}; tunewise writes 1.0 and 2.0")
            # The header's length comes first; NumPy would read that many bytes before its own limit applies.
            length_format = "<H" if version == (1, 0) else "<I"
            raw_length = fh.read(struct.calcsize(length_format))
            if len(raw_length) != struct.calcsize(length_format):
                raise refuse(f"{size} bytes, shorter than a .npy header")
            (header_length,) = struct.unpack(length_format, raw_length)
            data_at = fh.tell() + header_length
            if header_length > _NPY_MAX_HEADER or data_at > size:
                raise refuse(f"a .npy header of {header_length} bytes declared in a {size}-byte file "
                             f"(at most {_NPY_MAX_HEADER})")
            fh.seek(fh.tell() - len(raw_length))
            reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = reader(fh)
        except ValueError as exc:
            raise refuse(f"not a NumPy .npy file ({str(exc).splitlines()[0][:200]})") from None
        if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
            raise refuse(f"array of dtype {dtype}; a BM25 index holds only numbers of kind {'/'.join(kinds)}")
        if len(shape) != 1:
            raise refuse(f"array of shape {shape}; a BM25 index holds one-dimensional arrays")
        expected = data_at + shape[0] * dtype.itemsize
        if size != expected:
            raise refuse(f"{size} bytes, but its header declares {shape[0]} values of {dtype.itemsize} bytes, "
                         f"which take {expected} bytes (truncated, padded or forged)")
        fh.seek(0)
        try:
            return np.lib.format.read_array(fh, allow_pickle=False)
        except Exception as exc:  # sizes match, so only an I/O error or exhausted memory is left
            raise refuse(f"unreadable array ({type(exc).__name__}: {str(exc).strip()[:300]})") from None
