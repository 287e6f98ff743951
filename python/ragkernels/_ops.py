"""Core operators exposed at the package top level."""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping

import numpy as np

from ragkernels import _backend, _core
from ragkernels._checks import check_int

MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Set the number of threads every parallel op of ragkernels uses.

    Parameters
    ----------
    n : int
        1 to 1024. Results are identical for any thread count.

    Raises
    ------
    TypeError
        `n` is not an int.
    ValueError
        `n` is outside [1, 1024] (each parallel call may start up to `n`
        threads, so a count far above the machine's cores only costs).

    Examples
    --------
    >>> import ragkernels as rk
    >>> before = rk.get_num_threads()
    >>> rk.set_num_threads(2); rk.get_num_threads()
    2
    >>> rk.set_num_threads(before)
    """
    _core.set_num_threads(check_int(n, "n", "set_num_threads", maximum=MAX_THREADS))


def topk(scores: Any, k: int):
    """Select the k best entries of every row.

    Parameters
    ----------
    scores : ndarray of float32 or float64, shape (n_rows, n)
        Or any DLPack tensor (CPU, or CUDA when the CUDA module is built).
        Sliced (strided) views are read in place, without a copy.
    k : int
        Entries to keep per row, ``k >= 1``; ``k > n`` is allowed.

    Returns
    -------
    ids : ndarray of int64, shape (n_rows, k)
        Column indices, best first; -1 pads when ``k > n``.
    top_scores : ndarray, same dtype as `scores`, shape (n_rows, k)
        The selected scores; -inf where `ids` is -1.

    Raises
    ------
    TypeError
        `scores` is not float32/float64 or not an array.
    ValueError
        `scores` is not 2-D, or ``k < 1``.

    Notes
    -----
    Order: higher score first, equal scores by lower index; -0.0 equals
    0.0; NaN ranks below every number (-inf included). The result is the
    same for any thread count. Rows run in parallel.

    Examples
    --------
    >>> import numpy as np, ragkernels as rk
    >>> rk.topk(np.array([[0.5, 2.0, 2.0, -1.0]], np.float32), 3)[0]
    array([[1, 2, 0]])
    """
    return _backend.call("topk", scores, check_int(k, "k", "topk"))


def save_arrays(path: "str | os.PathLike[str]", arrays: Mapping[str, Any], *, kind: str = "arrays") -> None:
    """Write named 1-D arrays to a checksummed ragkernels file, atomically.

    Parameters
    ----------
    path : str or path-like
        Target file. It is written as a temporary file in the same
        directory, fsynced and renamed, so a crash never leaves a
        half-written file under this name.
    arrays : mapping of str to ndarray
        1-D contiguous arrays of (u)int8/16/32/64 or float16/32/64; names
        of 1 to 32 bytes.
    kind : str, default "arrays"
        File kind recorded in the header; `load_arrays` can insist on it.

    Raises
    ------
    TypeError
        An unsupported dtype.
    ValueError
        Not 1-D, not contiguous, a bad name or kind.
    OSError
        The file cannot be written (no temporary file is left behind).

    Notes
    -----
    Layout, checksums (XXH64) and versioning: docs/formats.md.
    """
    _core.save_arrays(os.fspath(path), dict(arrays), kind)


def load_arrays(path: "str | os.PathLike[str]", *, kind: str = "", verify: bool = True) -> Dict[str, np.ndarray]:
    """Map a ragkernels file and view its sections as numpy arrays.

    Parameters
    ----------
    path : str or path-like
    kind : str, optional
        When given, a file of another kind is refused.
    verify : bool, default True
        Check every section's checksum (header, table and size are always
        checked).

    Returns
    -------
    dict of str to ndarray
        Read-only arrays viewing the memory-mapped file (no copy); the
        mapping lives as long as any of them.

    Raises
    ------
    ragkernels.FormatError
        Truncated, corrupt, wrong magic or kind, or a newer format
        version; the message names the file and the fault.
    OSError
        The file cannot be opened.

    Examples
    --------
    >>> import numpy as np, ragkernels as rk, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.rk")
    >>> rk.save_arrays(p, {"ids": np.arange(3)})
    >>> rk.load_arrays(p)["ids"]
    array([0, 1, 2])
    """
    return _core.load_arrays(os.fspath(path), kind, verify)
