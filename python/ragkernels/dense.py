"""Dense retrieval: an exact flat index of our own, and faiss behind the same API.

`FlatIndex` scans every vector with the top-k fused into the scan (the score
matrix is never built), in float32, float16 or int8 (per-vector scales), under
inner product, cosine or L2, in parallel with the GIL released. `FaissIndex`
wraps any faiss index (IVF, HNSW, PQ ... from a factory string) and returns
results in the same form.

Both return ``(ids, scores)``: int64 row numbers and float32 scores, one row
per query, best first (higher score first, ties to the lower row). k is capped
at the number of vectors (an empty index gives one column), so the output has
``min(k, len(index))`` columns and a huge k allocates nothing; -1 / -inf pad
only what an approximate faiss index could not fill. For ``metric="l2"`` the
score is the *negative* squared distance, so higher is better under every
metric.

    >>> import numpy as np, ragkernels as rk
    >>> docs = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    >>> index = rk.dense.FlatIndex(docs, metric="cosine")
    >>> ids, scores = index.search(np.array([[1, 0.1]], dtype=np.float32), k=2)
    >>> ids
    array([[0, 2]])
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ragkernels import _backend, _core
from ragkernels._checks import check_int
from ragkernels._ops import load_arrays, save_arrays

__all__ = ["FaissIndex", "FlatIndex", "METRICS", "DTYPES"]

METRICS = ("ip", "cosine", "l2")
DTYPES = ("float32", "float16", "int8")
_FILE_KIND = "dense-flat-index"
_FILE_VERSION = 1

Results = Tuple[np.ndarray, np.ndarray]


def _check_k(k: Any, n: int) -> int:
    """k capped at the n vectors (issue 14: k=10**12 must not allocate)."""
    return min(check_int(k, "k", "search"), max(n, 1))


def _check_choice(value: Any, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ValueError(f"FlatIndex: {what} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _check_ids(ids: Optional[Sequence[str]], n: int) -> Optional[List[str]]:
    if ids is None:
        return None
    ids = list(ids)
    if len(ids) != n:
        raise ValueError(f"FlatIndex: ids must name every vector: {n} vectors, {len(ids)} ids")
    for i, doc_id in enumerate(ids):
        if not isinstance(doc_id, str):
            raise TypeError(f"FlatIndex: ids[{i}] must be str, got {type(doc_id).__name__}")
    if len(set(ids)) != n:
        raise ValueError("FlatIndex: ids must be unique")
    return ids


def _as_queries(queries: Any) -> Any:
    """A single query vector becomes a batch of one; arrays pass untouched."""
    ndim = getattr(queries, "ndim", None)
    if ndim == 1:
        return queries[None, :] if _backend.device_of(queries) == "cuda" else np.asarray(queries)[None, :]
    return queries


def _runs(ids: Any, scores: Any, query_ids: Sequence[str],
          doc_ids: Sequence[str]) -> Dict[str, Dict[str, float]]:
    ids, scores = np.asarray(ids), np.asarray(scores)
    if ids.ndim != 2 or ids.shape != scores.shape or ids.dtype.kind not in "iu":
        raise ValueError(f"to_run: ids and scores must be 2-D of one shape, ids integers; got ids "
                         f"{ids.dtype} {ids.shape} and scores {scores.dtype} {scores.shape}")
    if len(query_ids) != ids.shape[0]:
        raise ValueError(f"to_run: {len(query_ids)} query ids for {ids.shape[0]} result rows")
    bad = np.argwhere((ids < -1) | (ids >= len(doc_ids)))
    if len(bad):
        q, c = bad[0].tolist()
        raise ValueError(f"to_run: ids[{q}, {c}] is {ids[q, c]}, expected -1 (padding) or a row in "
                         f"[0, {len(doc_ids)}) of this index")
    run: Dict[str, Dict[str, float]] = {}
    for qid, row_ids, row_scores in zip(query_ids, ids.tolist(), scores.tolist()):
        run[qid] = {doc_ids[d]: s for d, s in zip(row_ids, row_scores) if d >= 0}
    return run


class FlatIndex:
    """Exact search over a matrix of vectors, with the top-k fused into the scan.

    Parameters
    ----------
    vectors : array (n, dim)
        float32 (or float16 for ``dtype="float16"``), C-contiguous: a numpy
        array or any CPU tensor speaking DLPack (torch ...). With the matching
        dtype it is used in place, not copied; keep it unmodified while the
        index lives. Every value must be finite.
    metric : {"ip", "cosine", "l2"}
        Inner product, cosine similarity (a zero vector scores 0), or the
        negative squared L2 distance.
    dtype : {"float32", "float16", "int8"}, optional
        Storage. float16 halves the memory; int8 quarters it (one float32
        scale per vector: ``v ~ scale * q`` with ``scale = max|v| / 127``,
        rounded half to even). Queries stay float32. Default: the dtype of
        `vectors`.
    ids : sequence of str, optional
        Document ids, for `to_run` and kept by `save`.

    Notes
    -----
    Memory: the stored vectors, their int8 scales, and one or two float32
    per vector for cosine / L2 (their norm terms). A search needs
    O(queries x k) more. Scores of one (query, vector) pair are the same
    whatever the batch or thread count.

    Built from a CUDA tensor (float32 or float16), the index stays on that
    device and searches CUDA queries there (ragkernels._cuda: a fused scan
    for small batches, cuBLAS GEMM + top-k for large ones when built with
    cuBLAS), returning tensors of the queries' framework.
    """

    def __init__(self, vectors: Any, *, metric: str = "ip", dtype: Optional[str] = None,
                 ids: Optional[Sequence[str]] = None) -> None:
        _check_choice(metric, METRICS, "metric")
        if dtype is None:
            dtype = "float16" if str(getattr(vectors, "dtype", "")).endswith("float16") else "float32"
        _check_choice(dtype, DTYPES, "dtype")
        if _backend.device_of(vectors) == "cuda":
            self._init_cuda(vectors, metric, dtype, ids)
            return
        prepared = _core.dense_prepare(vectors, metric, dtype)
        if metric == "cosine" and not (finite := np.isfinite(prepared["row_scale"])).all():
            row = int(np.argmin(finite))
            raise ValueError(f"FlatIndex: vectors[{row}] is too short for a float32 cosine (1/|v| overflows "
                             f"float32 below |v| ~ 3e-39); scale it up or drop it")
        self._init(prepared["vectors"], prepared["scales"], prepared["row_scale"], prepared["row_offset"],
                   metric, dtype, _check_ids(ids, len(prepared["vectors"])))

    def _init(self, vectors, scales, row_scale, row_offset, metric, dtype, ids, device="cpu") -> None:
        self._vectors = vectors
        self._scales = scales
        self._row_scale = row_scale
        self._row_offset = row_offset
        self._metric = metric
        self._dtype = dtype
        self._ids = ids
        self._device = device
        self._docs_checked = device == "cpu"  # CPU vectors are checked by dense_prepare

    def _init_cuda(self, vectors, metric: str, dtype: str, ids) -> None:
        # A CUDA tensor stays on its device, used in place: the norm terms are
        # computed there, the finiteness of the vectors checked by the first search.
        stored = str(getattr(vectors, "dtype", "")).rsplit(".", 1)[-1]
        if stored not in ("float32", "float16") or stored != dtype:
            raise TypeError(f"FlatIndex: CUDA vectors are stored as they are (float32 or float16) and dtype must "
                            f"match them; got {stored} vectors and dtype={dtype!r} (int8 indexes are built on "
                            f"the CPU)")
        cuda = _backend.cuda_module("FlatIndex")
        row_scale, row_offset = _backend.as_framework_tensors(vectors, cuda.dense_row_terms(vectors, metric, None))
        self._init(vectors, None, row_scale, row_offset, metric, dtype, _check_ids(ids, len(vectors)), "cuda")

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    @property
    def doc_ids(self) -> Optional[List[str]]:
        return self._ids

    @property
    def vectors(self) -> np.ndarray:
        """The stored vectors (int8 codes for ``dtype="int8"``)."""
        return self._vectors

    @property
    def scales(self) -> Optional[np.ndarray]:
        """Per-vector int8 scales, or None."""
        return self._scales

    @property
    def nbytes(self) -> int:
        """Bytes held: vectors, scales and norm terms."""
        parts = {id(p): p for p in (self._vectors, self._scales, self._row_scale, self._row_offset) if p is not None}
        return int(sum(p.nbytes for p in parts.values()))

    def __len__(self) -> int:
        return int(self._vectors.shape[0])

    def __repr__(self) -> str:
        return f"FlatIndex({len(self)} x {self.dim}, metric={self._metric!r}, dtype={self._dtype!r})"

    def search(self, queries: Any, *, k: int = 10) -> Results:
        """The k best vectors for each query.

        Parameters
        ----------
        queries : array (m, dim) or (dim,)
            float32, C-contiguous, finite (numpy or a CPU DLPack tensor; not
            cast: float64 raises TypeError).
        k : int
            Results per query, >= 1; capped at ``len(self)``.

        Returns
        -------
        ids : int64 array (m, min(k, len(self)))
        scores : float32 array (m, min(k, len(self)))
            An empty index gives one column of -1 / -inf.
        """
        k = _check_k(k, len(self))
        queries = _as_queries(queries)
        where = _backend.device_of(queries)
        if where != self._device:
            raise ValueError(f"search: the queries are on {where} but the index is on {self._device}; "
                             f"move them to the index's device")
        if where == "cpu":
            return _core.dense_search(self._vectors, self._dtype, self._metric, self._row_scale, self._row_offset,
                                      queries, k)
        cuda = _backend.cuda_module("search")
        found = cuda.dense_search(queries, self._vectors, k, self._metric, self._row_scale, self._row_offset, None,
                                  not self._docs_checked)
        self._docs_checked = True
        return _backend.as_framework_tensors(queries, found)

    def to_run(self, ids: np.ndarray, scores: np.ndarray, query_ids: Sequence[str]) -> Dict[str, Dict[str, float]]:
        """Search results as a ``{query_id: {doc_id: score}}`` run (needs `ids`).

        -1 entries are skipped; an id outside ``[0, len(self))`` raises
        ValueError naming its position.
        """
        if self._ids is None:
            raise ValueError("to_run: the index was built without ids")
        return _runs(ids, scores, query_ids, self._ids)

    def save(self, path: "str | os.PathLike[str]") -> None:
        """Write the index atomically to `path` (docs/formats.md, kind "dense-flat-index")."""
        if self._device != "cpu":
            raise ValueError("save: the index is on CUDA; build it from CPU vectors to save it")
        n, dim = self._vectors.shape
        arrays = {
            "meta": np.array([_FILE_VERSION, n, dim, METRICS.index(self._metric), DTYPES.index(self._dtype)],
                             dtype=np.int64),
            "vectors": np.ascontiguousarray(self._vectors).reshape(-1),
        }
        for name in ("scales", "row_scale", "row_offset"):
            value = getattr(self, "_" + name)
            if value is not None and not (name == "row_scale" and value is self._scales):
                arrays[name] = value
        if self._ids is not None:
            encoded = [s.encode("utf-8") for s in self._ids]
            arrays["id_offsets"] = np.cumsum([0] + [len(b) for b in encoded], dtype=np.int64)
            arrays["id_bytes"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        save_arrays(path, arrays, kind=_FILE_KIND)

    @classmethod
    def load(cls, path: "str | os.PathLike[str]", *, verify: bool = True) -> "FlatIndex":
        """Map a saved index: the vectors are read from the file as needed, not copied.

        The file is untrusted: besides the checksums (`verify`), every
        section is checked against what search relies on (sizes, dtypes,
        id offsets, finite non-negative scales and norm terms), and with
        `verify` the vectors are scanned for NaN/inf (as the constructor
        does) and the norm terms recomputed from them, bit for bit (both
        read every vector, which the checksums do anyway). Any fault
        raises `ragkernels.FormatError` naming the file.
        """
        name = os.fspath(path)
        arrays = load_arrays(path, kind=_FILE_KIND, verify=verify)
        version, n, dim, metric, dtype = _load_meta(arrays, name)
        vectors = _section(arrays, "vectors", np.dtype(dtype), n * dim, name)
        vectors = vectors.reshape(n, dim)
        if verify and (row := _core.dense_first_non_finite_row(vectors, dtype)) >= 0:
            raise _core.FormatError(f"{name}: vectors[{row}] holds NaN or infinity")
        scales, row_scale, row_offset = _load_terms(arrays, n, metric, dtype, name)
        if verify:
            _check_row_terms(vectors, dtype, metric, scales, row_scale, row_offset, name)
        index = cls.__new__(cls)
        index._init(vectors, scales, row_scale, row_offset, metric, dtype, _load_ids(arrays, n, name))
        return index


def _section(arrays: Dict[str, np.ndarray], key: str, dtype: np.dtype, size: int, name: str) -> np.ndarray:
    """arrays[key], refused unless it holds `size` values of `dtype`."""
    array = arrays.get(key)
    if array is None:
        raise _core.FormatError(f"{name}: dense index has no '{key}' section")
    if array.dtype != dtype or array.shape != (size,):
        raise _core.FormatError(f"{name}: section '{key}' must hold {size} {dtype}, got {array.size} "
                                f"{array.dtype}")
    return array


def _load_meta(arrays: Dict[str, np.ndarray], name: str) -> Tuple[int, int, int, str, str]:
    meta = arrays.get("meta")
    if meta is None or meta.dtype != np.int64 or meta.shape != (5,):
        raise _core.FormatError(f"{name}: not a dense index (the meta section must hold 5 int64)")
    version, n, dim, metric, dtype = (int(x) for x in meta)
    if version != _FILE_VERSION:
        raise _core.FormatError(f"{name}: dense index version {version}; this ragkernels reads "
                                f"version {_FILE_VERSION} (upgrade ragkernels)")
    if not (0 <= metric < len(METRICS) and 0 <= dtype < len(DTYPES)):
        raise _core.FormatError(f"{name}: unknown metric code {metric} or dtype code {dtype}")
    # The constructor's limits; they also keep n * dim far from overflowing.
    if not (0 <= n < 2**32 and 1 <= dim < 2**31):
        raise _core.FormatError(f"{name}: meta says {n} vectors of dimension {dim}; expected "
                                f"0 <= n < 2**32 and 1 <= dim < 2**31")
    return version, n, dim, METRICS[metric], DTYPES[dtype]


def _load_terms(arrays: Dict[str, np.ndarray], n: int, metric: str, dtype: str,
                name: str) -> Tuple[Optional[np.ndarray], ...]:
    """The int8 scales and the metric's per-row terms, each of the range the
    constructor gives it; sections the index does not use are ignored."""
    f32 = np.dtype(np.float32)
    scales = _section(arrays, "scales", f32, n, name) if dtype == "int8" else None
    row_scale = None
    if dtype == "int8" and metric == "ip":
        row_scale = scales  # saved once: the same array
    elif dtype == "int8" or metric != "ip":
        row_scale = _section(arrays, "row_scale", f32, n, name)
    row_offset = _section(arrays, "row_offset", f32, n, name) if metric == "l2" else None
    # scales = max|v| / 127 is finite; row_scale (1/|row| under cosine, which
    # the constructor refuses to let overflow, or 2 * scale) too; row_offset =
    # -|row|^2 may overflow to -inf (the row ranks last), never NaN or the
    # wrong sign, which would reorder results.
    checks = (("scales", scales, lambda a: np.isfinite(a) & (a >= 0), "a finite number >= 0"),
              ("row_scale", row_scale, lambda a: np.isfinite(a) & (a >= 0), "a finite number >= 0"),
              ("row_offset", row_offset, lambda a: a <= 0, "a number <= 0"))
    for key, array, valid, expected in checks:
        if array is not None and not (ok := valid(array)).all():
            bad = int(np.argmin(ok))
            raise _core.FormatError(f"{name}: {key}[{bad}] is {array[bad]}, expected {expected}")
    return scales, row_scale, row_offset


def _check_row_terms(vectors, dtype, metric, scales, row_scale, row_offset, name: str) -> None:
    """The stored norm terms equal those the constructor computes from the
    stored vectors, bit for bit: a forged row_scale ranks the best vector last."""
    expected = _core.dense_row_terms(vectors, dtype, metric, scales)
    for key, stored, want in (("row_scale", row_scale, expected[0]), ("row_offset", row_offset, expected[1])):
        if want is not None and not np.array_equal(stored.view(np.uint32), want.view(np.uint32)):
            bad = int(np.argmax(stored.view(np.uint32) != want.view(np.uint32)))
            raise _core.FormatError(f"{name}: {key}[{bad}] is {stored[bad]}, but the stored vectors give "
                                    f"{want[bad]} (file corrupt)")


def _load_ids(arrays: Dict[str, np.ndarray], n: int, name: str) -> Optional[List[str]]:
    """The saved ids, or None; offsets must rise from 0 to the byte count."""
    if "id_offsets" not in arrays and "id_bytes" not in arrays:
        return None
    offsets = _section(arrays, "id_offsets", np.dtype(np.int64), n + 1, name)
    data = arrays.get("id_bytes")
    if data is None or data.dtype != np.uint8 or data.ndim != 1:
        raise _core.FormatError(f"{name}: section 'id_bytes' must hold uint8")
    if offsets[0] != 0 or offsets[-1] != data.size or (n and (np.diff(offsets) < 0).any()):
        raise _core.FormatError(f"{name}: id_offsets must rise from 0 to {data.size} (the id bytes), "
                                f"never decreasing")
    data, bounds = data.tobytes(), offsets.tolist()
    ids = []
    for i in range(n):
        try:
            ids.append(data[bounds[i]:bounds[i + 1]].decode("utf-8"))
        except UnicodeDecodeError as e:
            raise _core.FormatError(f"{name}: ids[{i}] is not valid UTF-8 ({e.reason})") from None
    if len(set(ids)) != n:
        raise _core.FormatError(f"{name}: the ids are not unique")
    return ids


class FaissIndex:
    """Any faiss index behind the `FlatIndex` API.

    Parameters
    ----------
    index : faiss.Index or str
        A built faiss index, or a factory string (``"IVF1024,Flat"``,
        ``"HNSW32"``, ``"IVF256,PQ32"`` ...) with `dim` and `metric`.
    dim : int, optional
        Needed with a factory string.
    metric : {"ip", "cosine", "l2"}
        With a factory string: faiss's METRIC_INNER_PRODUCT or METRIC_L2.
        "cosine" normalizes added and query vectors (a copy; faiss works in
        place). Results follow our conventions: L2 scores are negative
        squared distances, ids -1 / scores -inf pad missing results.
    ids : sequence of str, optional
        Document ids for `to_run`, in the order vectors are added.

    Examples
    --------
    >>> import numpy as np, ragkernels as rk
    >>> x = np.random.default_rng(0).standard_normal((500, 16)).astype(np.float32)
    >>> index = rk.dense.FaissIndex("HNSW16", dim=16, metric="l2")
    >>> index.add(x)
    >>> ids, _ = index.search(x[:2], k=1)
    >>> ids.ravel().tolist()
    [0, 1]
    """

    def __init__(self, index: Any, *, dim: Optional[int] = None, metric: str = "ip",
                 ids: Optional[Sequence[str]] = None) -> None:
        try:
            import faiss
        except ImportError as e:  # pragma: no cover - faiss is in the test extra
            raise ImportError('FaissIndex needs faiss: pip install "ragkernels[faiss]"') from e
        _check_choice(metric, METRICS, "metric")
        self._faiss = faiss
        if isinstance(index, str):
            if dim is None or isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
                raise ValueError(f"FaissIndex: a factory string needs dim >= 1, got {dim!r}")
            faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
            index = faiss.index_factory(int(dim), index, faiss_metric)
        elif not isinstance(index, faiss.Index):
            raise TypeError(f"FaissIndex: index must be a faiss.Index or a factory string, got {type(index).__name__}")
        expected = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if index.metric_type != expected:
            raise ValueError(f"FaissIndex: metric={metric!r} but the faiss index uses metric type {index.metric_type}")
        self.index = index
        self._metric = metric
        self._ids = None if ids is None else list(ids)

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def doc_ids(self) -> Optional[List[str]]:
        return self._ids

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __repr__(self) -> str:
        return f"FaissIndex({type(self.index).__name__}, {len(self)} x {self.dim}, metric={self._metric!r})"

    def _vectors(self, x: Any, what: str) -> np.ndarray:
        x = _as_queries(x)
        array = x if isinstance(x, np.ndarray) else np.from_dlpack(x)
        if array.dtype != np.float32:
            raise TypeError(f"FaissIndex: {what} must be float32, got {array.dtype}; convert with .astype(numpy.float32)")
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"FaissIndex: {what} must have shape (n, {self.dim}), got {array.shape}")
        if not array.flags.c_contiguous:
            raise ValueError(f"FaissIndex: {what} must be C-contiguous; pass numpy.ascontiguousarray({what})")
        if self._metric == "cosine":
            array = array.copy()
            self._faiss.normalize_L2(array)
        return array

    def train(self, vectors: Any) -> None:
        """Train the index (IVF centroids, PQ codebooks) on float32 vectors."""
        self.index.train(self._vectors(vectors, "vectors"))

    def add(self, vectors: Any) -> None:
        """Add float32 vectors (passed to faiss without a copy unless cosine)."""
        array = self._vectors(vectors, "vectors")
        if not self.index.is_trained:
            raise ValueError("FaissIndex: the index must be trained first: call train(vectors)")
        self.index.add(array)

    def search(self, queries: Any, *, k: int = 10, **params: Any) -> Results:
        """The k best vectors for each query, as `FlatIndex.search` returns them.

        Extra keyword arguments set faiss search parameters on the index
        (``nprobe=16``, ``efSearch=128``) through faiss.ParameterSpace; they
        stay set for later calls.
        """
        k = _check_k(k, len(self))
        array = self._vectors(queries, "queries")
        if params:
            space = self._faiss.ParameterSpace()
            for name, value in params.items():
                space.set_index_parameter(self.index, name, value)
        distances, ids = self.index.search(array, k)
        scores = -distances if self._metric == "l2" else distances
        scores = np.where(ids < 0, np.float32(-np.inf), scores).astype(np.float32, copy=False)
        return ids.astype(np.int64, copy=False), scores

    def to_run(self, ids: np.ndarray, scores: np.ndarray, query_ids: Sequence[str]) -> Dict[str, Dict[str, float]]:
        """Search results as a ``{query_id: {doc_id: score}}`` run (needs `ids`)."""
        if self._ids is None:
            raise ValueError("to_run: the index was built without ids")
        return _runs(ids, scores, query_ids, self._ids)
