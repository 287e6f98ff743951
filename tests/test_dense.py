"""ragkernels.dense against the numpy reference, faiss, and bad input."""
import re

import numpy as np
import pytest

import ragkernels as rk
from ragkernels.dense import DTYPES, METRICS, FaissIndex, FlatIndex
from tests.reference import dense as ref

faiss = pytest.importorskip("faiss")


def integer_vectors(rng, n, dim, low=-3, high=4):
    """Small integers: every dot product is exact in float32, so ties are exact too."""
    return rng.integers(low, high, size=(n, dim)).astype(np.float32)


def assert_matches_reference(index, docs, queries, k, metric, dtype, exact):
    ids, scores = index.search(queries, k=k)
    width = min(k, max(len(docs), 1))  # k is capped at the corpus (issue 14)
    ref_ids, ref_scores = (a[:, :width] for a in ref.search_ref(docs, queries, k, metric, dtype))
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (len(queries), width)
    if exact:
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
        return
    # Rounding may swap near-ties: compare score lists, and each returned
    # id's exact score with the score we report for it.
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-4)
    exact_scores = ref.scores_ref(ref.stored_vectors_ref(docs, dtype), queries, metric)
    found = ids >= 0
    np.testing.assert_allclose(scores[found], np.take_along_axis(exact_scores, np.maximum(ids, 0), 1)[found],
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,dim,nq,k", [(1, 1, 1, 1), (37, 7, 5, 4), (300, 16, 9, 20), (1100, 33, 18, 50),
                                        (50, 64, 3, 80)])
def test_search_matches_reference_on_exact_integers(metric, dtype, n, dim, nq, k):
    rng = np.random.default_rng(n + dim + nq)
    docs = integer_vectors(rng, n, dim)
    queries = integer_vectors(rng, nq, dim)
    index = FlatIndex(docs, metric=metric, dtype=dtype)
    # ip and l2 are exact on small integers (int8 codes are the integers
    # themselves scaled; cosine divides): compare exactly where arithmetic is.
    exact = metric in ("ip", "l2") and dtype != "int8"
    assert_matches_reference(index, docs, queries, k, metric, dtype, exact)


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])  # RAGKERNELS_ISA caps the scan's copy
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_search_matches_reference_on_random_floats(metric, dtype, isa, monkeypatch):
    monkeypatch.setenv("RAGKERNELS_ISA", isa)
    rng = np.random.default_rng(7)
    docs = rng.standard_normal((700, 48)).astype(np.float32)
    queries = rng.standard_normal((21, 48)).astype(np.float32)
    assert_matches_reference(FlatIndex(docs, metric=metric, dtype=dtype), docs, queries, 15, metric, dtype, False)


def test_ties_go_to_the_lower_row():
    docs = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0.5, 0]], np.float32)
    ids, scores = FlatIndex(docs).search(np.array([[1, 0]], np.float32), k=4)
    assert ids.tolist() == [[0, 2, 3, 4]]
    assert scores.tolist() == [[1, 1, 1, 0.5]]


GEMM_QUERIES = 24  # from this batch size on, the AVX-512 scan switches to its GEMM kernel


def test_scores_do_not_depend_on_threads_or_on_batches_below_the_gemm_size():
    rng = np.random.default_rng(3)
    docs = rng.standard_normal((5000, 40)).astype(np.float32)
    queries = rng.standard_normal((200, 40)).astype(np.float32)  # 200: split by queries on 2 and 3 threads
    for dtype in DTYPES:
        index = FlatIndex(docs, metric="cosine", dtype=dtype)
        small = index.search(queries[:GEMM_QUERIES - 1], k=25)
        for i in (0, 5, GEMM_QUERIES - 2):
            single = index.search(queries[i], k=25)
            np.testing.assert_array_equal(single[0][0], small[0][i])
            np.testing.assert_array_equal(single[1][0], small[1][i])
        large = index.search(queries, k=25)  # the GEMM kernel on AVX-512: same up to rounding
        np.testing.assert_allclose(large[1][:GEMM_QUERIES - 1], small[1], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(index.search(queries[30:], k=25)[1], large[1][30:])
        threads = rk.get_num_threads()
        try:
            for t in (1, 2, 3):
                rk.set_num_threads(t)
                for batch, expected in ((queries[:GEMM_QUERIES - 1], small), (queries, large)):
                    again = index.search(batch, k=25)
                    np.testing.assert_array_equal(again[0], expected[0])
                    np.testing.assert_array_equal(again[1], expected[1])
        finally:
            rk.set_num_threads(threads)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_batches_match_reference_on_exact_integers(metric, dtype):
    """Batches past the GEMM size, with ragged row tiles, panels and blocks."""
    rng = np.random.default_rng(17)
    docs = integer_vectors(rng, 2531, 24)
    queries = integer_vectors(rng, 75, 24)
    index = FlatIndex(docs, metric=metric, dtype=dtype)
    exact = metric in ("ip", "l2") and dtype != "int8"
    assert_matches_reference(index, docs, queries, 30, metric, dtype, exact)


def test_int8_quantization_matches_reference():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((50, 19)).astype(np.float32)
    x[3] = 0
    x[4, 2] = 5.0
    index = FlatIndex(x, dtype="int8")
    codes, scales = ref.quantize_int8_ref(x)
    np.testing.assert_array_equal(index.vectors, codes)
    np.testing.assert_array_equal(index.scales, scales)
    assert index.vectors.dtype == np.int8 and index.nbytes < x.nbytes / 3


def test_float16_storage_rounds_like_numpy():
    x = np.random.default_rng(2).standard_normal((30, 10)).astype(np.float32) * 1000
    np.testing.assert_array_equal(FlatIndex(x, dtype="float16").vectors, x.astype(np.float16))
    half = x.astype(np.float16)
    assert FlatIndex(half).dtype == "float16" and np.shares_memory(FlatIndex(half).vectors, half)


def test_search_caps_k_at_the_number_of_vectors():
    docs = np.eye(3, dtype=np.float32)
    for k in (3, 5, 10**12, 2**63 - 1):  # 10**12 columns used to be allocated (issue 14)
        ids, scores = FlatIndex(docs).search(np.array([[0, 1, 0]], np.float32), k=k)
        assert ids.tolist() == [[1, 0, 2]] and scores.tolist() == [[1, 0, 0]]


@pytest.mark.parametrize("k,error", [(2**63, ValueError), (-(2**70), ValueError), (np.float32(3), TypeError)])
def test_search_out_of_range_k_gets_a_short_message(k, error):
    queries = np.ones((1000, 4), np.float32)
    with pytest.raises(error, match="search: k must be an int") as e:
        FlatIndex(np.ones((3, 4), np.float32)).search(queries, k=k)
    assert len(str(e.value)) < 200  # not pybind11's dump of every argument


def test_single_document_and_empty_inputs():
    one = FlatIndex(np.ones((1, 4), np.float32), metric="l2")
    ids, scores = one.search(np.zeros((2, 4), np.float32), k=1)
    assert ids.tolist() == [[0], [0]] and scores.tolist() == [[-4.0], [-4.0]]
    empty = FlatIndex(np.zeros((0, 4), np.float32))
    ids, scores = empty.search(np.ones((1, 4), np.float32), k=2)
    assert ids.tolist() == [[-1]] and np.isneginf(scores).all()  # one padding column
    ids, scores = one.search(np.zeros((0, 4), np.float32), k=3)
    assert ids.shape == (0, 1) and scores.shape == (0, 1)


def test_cosine_zero_vectors_score_zero():
    docs = np.array([[0, 0], [1, 0], [-1, 0]], np.float32)
    index = FlatIndex(docs, metric="cosine")
    ids, scores = index.search(np.array([[2, 0]], np.float32), k=3)
    assert ids.tolist() == [[1, 0, 2]] and scores.tolist() == [[1, 0, -1]]
    ids, scores = index.search(np.zeros((1, 2), np.float32), k=3)
    assert ids.tolist() == [[0, 1, 2]] and scores.tolist() == [[0, 0, 0]]
    ids, _ = FlatIndex(docs, metric="cosine", dtype="int8").search(np.array([[2, 0]], np.float32), k=3)
    assert ids.tolist() == [[1, 0, 2]]


def test_torch_tensors_are_used_in_place():
    torch = pytest.importorskip("torch")
    docs = torch.randn(100, 8)
    index = FlatIndex(docs, metric="cosine")
    assert np.shares_memory(index.vectors, docs.numpy())
    ids, _ = index.search(docs[:3], k=1)
    assert ids.ravel().tolist() == [0, 1, 2]


def test_save_and_load_map_the_file(tmp_path):
    rng = np.random.default_rng(5)
    docs = rng.standard_normal((400, 24)).astype(np.float32)
    queries = rng.standard_normal((6, 24)).astype(np.float32)
    names = [f"doc-{i}-é" for i in range(400)]
    for metric in METRICS:
        for dtype in DTYPES:
            index = FlatIndex(docs, metric=metric, dtype=dtype, ids=names)
            path = tmp_path / f"{metric}-{dtype}.rk"
            index.save(path)
            loaded = FlatIndex.load(path)
            assert (loaded.metric, loaded.dtype, loaded.doc_ids) == (metric, dtype, names)
            assert not loaded.vectors.flags.owndata and not loaded.vectors.flags.writeable
            for a, b in zip(index.search(queries, k=7), loaded.search(queries, k=7)):
                np.testing.assert_array_equal(a, b)


def test_load_refuses_corrupt_and_foreign_files(tmp_path):
    path = tmp_path / "i.rk"
    FlatIndex(np.ones((10, 4), np.float32)).save(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "bad.rk").write_bytes(bytes(data))
    with pytest.raises(rk.FormatError):
        FlatIndex.load(tmp_path / "bad.rk")
    (tmp_path / "short.rk").write_bytes(bytes(data[:40]))
    with pytest.raises(rk.FormatError):
        FlatIndex.load(tmp_path / "short.rk")
    rk.save_arrays(tmp_path / "other.rk", {"x": np.arange(3)})
    with pytest.raises(rk.FormatError, match="dense-flat-index"):
        FlatIndex.load(tmp_path / "other.rk")


def test_to_run_names_documents():
    index = FlatIndex(np.eye(3, dtype=np.float32), ids=["a", "b", "c"])
    ids, scores = index.search(np.array([[0, 0, 1]], np.float32), k=5)
    assert index.to_run(ids, scores, ["q1"]) == {"q1": {"c": 1.0, "a": 0.0, "b": 0.0}}
    with pytest.raises(ValueError, match="without ids"):
        FlatIndex(np.eye(3, dtype=np.float32)).to_run(ids, scores, ["q1"])


@pytest.mark.parametrize("bad", [3, -2, 2**40])
def test_to_run_refuses_out_of_range_rows_naming_the_position(bad):
    index = FlatIndex(np.eye(3, dtype=np.float32), ids=["a", "b", "c"])
    ids = np.array([[0, -1], [1, bad]])
    with pytest.raises(ValueError, match=rf"to_run: ids\[1, 1\] is {bad}, expected -1 \(padding\) or a row in \[0, 3\)"):
        index.to_run(ids, np.zeros((2, 2), np.float32), ["q1", "q2"])


def test_float16_overflow_at_build_is_refused_naming_the_row():
    x = np.ones((4, 3), np.float32)
    x[2, 1] = -70000.0  # past float16's 65504: stored as -inf, every score was -inf (issue 14)
    with pytest.raises(ValueError, match=r"vectors overflow float16 \(\|x\| > 65504\) in row 2"):
        FlatIndex(x, dtype="float16")
    x[2, 1] = 65504.0
    assert np.isfinite(FlatIndex(x, dtype="float16").vectors).all()
    with pytest.raises(ValueError, match="NaN or infinity .first in row 2"):
        FlatIndex(np.where(x > 60000, np.inf, x).astype(np.float32))


# ---- loading untrusted files (issue 14): checksums valid, content not -------------

def rewrite(path, **changes):
    """Save `path` again with sections replaced (None drops one): the checksums
    are valid, so only load's own checks can refuse the file."""
    arrays = {k: np.array(v) for k, v in rk.load_arrays(path).items()}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    rk.save_arrays(path, arrays, kind="dense-flat-index")


def saved_index(tmp_path, metric="l2", dtype="int8"):
    path = tmp_path / "i.rk"
    docs = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    FlatIndex(docs, metric=metric, dtype=dtype, ids=["a", "b", "c", "d", "e"]).save(path)
    return path


@pytest.mark.parametrize("changes,match", [
    (dict(id_offsets=np.array([0, 1, 3, 2, 4, 5])), "id_offsets must rise from 0 to 5"),
    (dict(id_offsets=np.array([0, 1, 2, 3, 4, 9])), "id_offsets must rise from 0 to 5"),
    (dict(id_offsets=np.array([-1, 1, 2, 3, 4, 5])), "id_offsets must rise"),
    (dict(id_offsets=np.array([0, 1, 2, 3, 5])), "section 'id_offsets' must hold 6 int64"),
    (dict(id_offsets=np.arange(6, dtype=np.int32)), "section 'id_offsets' must hold 6 int64"),
    (dict(id_bytes=np.frombuffer(b"ab\xffde", np.uint8)), r"ids\[2\] is not valid UTF-8"),
    (dict(id_bytes=np.frombuffer(b"abcda", np.uint8)), "ids are not unique"),
    (dict(id_bytes=None), "'id_bytes' must hold uint8"),
    (dict(meta=np.array([1, -5, 3, 2, 2])), "meta says -5 vectors of dimension 3"),
    (dict(meta=np.array([1, 5, -3, 2, 2])), "meta says 5 vectors of dimension -3"),
    (dict(meta=np.array([1, 2**62, 2**62, 2, 2])), "meta says"),
    (dict(meta=np.array([1, 5, 3, 7, 2])), "unknown metric code 7"),
    (dict(meta=np.array([1, 5, 3, 2, 2], np.int32)), "meta section must hold 5 int64"),
    (dict(vectors=None), "has no 'vectors' section"),
    (dict(vectors=np.zeros(15, np.float32)), "section 'vectors' must hold 15 int8, got 15 float32"),
    (dict(vectors=np.zeros(14, np.int8)), "section 'vectors' must hold 15 int8, got 14 int8"),
    (dict(scales=None), "has no 'scales' section"),
    (dict(scales=np.array([1, 1, np.nan, 1, 1], np.float32)), r"scales\[2\] is nan, expected a finite number >= 0"),
    (dict(scales=np.array([1, 1, 1, np.inf, 1], np.float32)), r"scales\[3\] is inf"),
    (dict(scales=np.array([1, -1, 1, 1, 1], np.float32)), r"scales\[1\] is -1.0"),
    (dict(scales=np.ones(5, np.float64)), "section 'scales' must hold 5 float32"),
    (dict(row_scale=np.array([1, 1, 1, 1, np.nan], np.float32)), r"row_scale\[4\] is nan, expected a finite number >= 0"),
    (dict(row_offset=None), "has no 'row_offset' section"),
    (dict(row_offset=np.array([0, 0, 1, 0, 0], np.float32)), r"row_offset\[2\] is 1.0, expected a number <= 0"),
])
def test_load_refuses_inconsistent_sections_with_valid_checksums(tmp_path, changes, match):
    path = saved_index(tmp_path)
    rewrite(path, **changes)
    with pytest.raises(rk.FormatError, match=f"^{re.escape(str(path))}: .*{match}"):
        FlatIndex.load(path)


@pytest.mark.parametrize("dtype,bad", [("float32", np.nan), ("float32", -np.inf), ("float16", np.inf)])
def test_load_refuses_non_finite_vectors_naming_the_row(tmp_path, dtype, bad):
    path = saved_index(tmp_path, metric="ip", dtype=dtype)
    vectors = np.array(rk.load_arrays(path)["vectors"])
    vectors[3 * 3 + 1] = bad
    rewrite(path, vectors=vectors)
    with pytest.raises(rk.FormatError, match=rf"vectors\[3\] holds NaN or infinity"):
        FlatIndex.load(path)
    assert len(FlatIndex.load(path, verify=False)) == 5  # verify=False skips the O(n dim) scans


def test_load_ignores_terms_the_metric_does_not_use(tmp_path):
    # An ip float32 index has no row terms: a stray row_scale must not scale scores.
    path = saved_index(tmp_path, metric="ip", dtype="float32")
    queries = np.ones((1, 3), np.float32)
    before = FlatIndex.load(path).search(queries, k=5)
    rewrite(path, row_scale=np.array([9, 0, 0, 0, 0], np.float32))
    for a, b in zip(before, FlatIndex.load(path).search(queries, k=5)):
        np.testing.assert_array_equal(a, b)


def test_load_accepts_what_the_constructor_builds_at_the_edges(tmp_path):
    # Huge rows give row_offset -inf under L2; a zero row gets scale 0.
    docs = np.array([[1e20, 1e20], [0, 0], [1, 2]], np.float32)
    for metric in METRICS:
        for dtype in ("float32", "int8"):
            path = tmp_path / f"{metric}-{dtype}.rk"
            FlatIndex(docs, metric=metric, dtype=dtype).save(path)
            assert len(FlatIndex.load(path)) == 3


@pytest.mark.parametrize("make,error,match", [
    (lambda: FlatIndex(np.ones((3, 4), np.float64)), TypeError, "vectors must be float32"),
    (lambda: FlatIndex(np.ones(4, np.float32)), ValueError, "vectors must be 2-D"),
    (lambda: FlatIndex(np.ones((3, 8), np.float32)[:, ::2]), ValueError, "C-contiguous"),
    (lambda: FlatIndex(np.ones((3, 0), np.float32)), ValueError, "at least one dimension"),
    (lambda: FlatIndex(np.array([[1, np.nan]], np.float32)), ValueError, "NaN or infinity"),
    (lambda: FlatIndex(np.array([[1, np.inf]], np.float16)), ValueError, "NaN or infinity"),
    (lambda: FlatIndex(np.ones((3, 4), np.float32), metric="dot"), ValueError, "metric must be"),
    (lambda: FlatIndex(np.ones((3, 4), np.float32), dtype="int4"), ValueError, "dtype must be"),
    (lambda: FlatIndex(np.ones((3, 4), np.float16), dtype="int8"), TypeError, "vectors must be float32"),
    (lambda: FlatIndex(np.ones((3, 4), np.float32), ids=["a"]), ValueError, "ids must name every vector"),
    (lambda: FlatIndex(np.ones((2, 4), np.float32), ids=["a", "a"]), ValueError, "unique"),
])
def test_bad_index_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("queries,k,error,match", [
    (np.ones((2, 5), np.float32), 3, ValueError, "dimension 4"),
    (np.ones((2, 4), np.float64), 3, TypeError, "queries must be float32"),
    (np.ones((2, 8), np.float32)[:, ::2], 3, ValueError, "queries must be C-contiguous"),
    (np.array([[np.nan, 0, 0, 0]], np.float32), 3, ValueError, "NaN or infinity"),
    (np.ones((2, 4), np.float32), 0, ValueError, r"k must be an int in \[1, "),
    (np.ones((2, 4), np.float32), 2.5, TypeError, "k must be an int"),
    ([[1.0, 2.0, 3.0, 4.0]], 1, TypeError, "queries"),
])
def test_bad_search_input(queries, k, error, match):
    index = FlatIndex(np.ones((3, 4), np.float32))
    with pytest.raises(error, match=match):
        index.search(queries, k=k)


# ---- faiss parity ------------------------------------------------------------

def test_flat_matches_faiss_flat_ip(scifact_embeddings):
    docs, queries = scifact_embeddings["docs"], scifact_embeddings["queries"]
    ids, scores = FlatIndex(docs).search(queries, k=100)
    flat = faiss.IndexFlatIP(docs.shape[1])
    flat.add(docs)
    f_scores, f_ids = flat.search(queries, 100)
    np.testing.assert_allclose(scores, f_scores, rtol=0, atol=2e-6)
    # Same ids where the scores are not tied within rounding.
    distinct = np.abs(np.diff(f_scores, axis=1)) > 1e-5
    mismatch = (ids != f_ids) & np.concatenate([distinct, distinct[:, -1:]], axis=1)
    assert mismatch.sum() <= 0.001 * ids.size
    assert (ids[:, 0] == f_ids[:, 0]).mean() > 0.99


def test_flat_matches_faiss_l2_on_random_data():
    rng = np.random.default_rng(1)
    docs = rng.standard_normal((3000, 32)).astype(np.float32)
    queries = rng.standard_normal((40, 32)).astype(np.float32)
    ids, scores = FlatIndex(docs, metric="l2").search(queries, k=10)
    flat = faiss.IndexFlatL2(32)
    flat.add(docs)
    f_dist, f_ids = flat.search(queries, 10)
    np.testing.assert_array_equal(ids, f_ids)
    np.testing.assert_allclose(-scores, f_dist, rtol=1e-5, atol=1e-4)


def test_int8_recall_on_real_embeddings(scifact_embeddings):
    docs, queries = scifact_embeddings["docs"], scifact_embeddings["queries"]
    exact, _ = FlatIndex(docs).search(queries, k=10)
    approx, _ = FlatIndex(docs, dtype="int8").search(queries, k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    assert recall >= 0.99


def test_faiss_index_wraps_factory_strings():
    rng = np.random.default_rng(4)
    docs = rng.standard_normal((2000, 16)).astype(np.float32)
    queries = rng.standard_normal((10, 16)).astype(np.float32)
    exact_ids, exact_scores = FlatIndex(docs, metric="l2").search(queries, k=5)
    ivf = FaissIndex("IVF16,Flat", dim=16, metric="l2", ids=[str(i) for i in range(2000)])
    ivf.train(docs)
    ivf.add(docs)
    ids, scores = ivf.search(queries, k=5, nprobe=16)  # every list probed: exact
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-4, atol=1e-3)
    assert ivf.to_run(ids, scores, [f"q{i}" for i in range(10)])["q0"] == {
        str(d): s for d, s in zip(ids[0].tolist(), scores[0].tolist())}
    hnsw = FaissIndex(faiss.IndexHNSWFlat(16, 16, faiss.METRIC_INNER_PRODUCT), metric="cosine")
    hnsw.add(docs)
    h_ids, _ = hnsw.search(queries, k=1, efSearch=256)
    c_ids, _ = FlatIndex(docs, metric="cosine").search(queries, k=1)
    assert (h_ids == c_ids).mean() >= 0.9


def test_faiss_index_caps_k_like_flat_index():
    index = FaissIndex("Flat", dim=2)
    index.add(np.eye(2, dtype=np.float32))
    ids, scores = index.search(np.array([1, 0], np.float32), k=10**12)
    assert ids.tolist() == [[0, 1]] and scores.tolist() == [[1, 0]]


def test_faiss_index_pads_what_it_could_not_fill():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 4)).astype(np.float32)
    index = FaissIndex("IVF8,Flat", dim=4, metric="l2")
    index.train(x)
    index.add(x)
    ids, scores = index.search(x[:1], k=200, nprobe=1)  # one list of 8 probed: fewer than 200 found
    assert (ids[0] == -1).any() and np.isneginf(scores[ids == -1]).all()


@pytest.mark.parametrize("call,error,match", [
    (lambda: FaissIndex("Flat"), ValueError, "needs dim"),
    (lambda: FaissIndex(42), TypeError, "faiss.Index or a factory string"),
    (lambda: FaissIndex(faiss.IndexFlatL2(4), metric="ip"), ValueError, "metric"),
    (lambda: FaissIndex("Flat", dim=4).add(np.ones((2, 4))), TypeError, "float32"),
    (lambda: FaissIndex("Flat", dim=4).add(np.ones((2, 3), np.float32)), ValueError, r"shape \(n, 4\)"),
    (lambda: FaissIndex("IVF4,Flat", dim=4).add(np.ones((2, 4), np.float32)), ValueError, "trained"),
    (lambda: FaissIndex("Flat", dim=4).search(np.ones((1, 4), np.float32), k=0), ValueError, "k must be"),
])
def test_faiss_index_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("metric,dtype,key", [("cosine", "float32", "row_scale"), ("cosine", "int8", "row_scale"),
                                              ("l2", "float16", "row_scale"), ("l2", "float32", "row_offset"),
                                              ("l2", "int8", "row_offset")])
def test_load_recomputes_the_norm_terms_from_the_vectors(tmp_path, metric, dtype, key):
    # Found by the fuzzer (flat_fixed): a forged row_scale of 1e-38 ranked the
    # best vector last; sign checks alone let it through.
    path = saved_index(tmp_path, metric, dtype)
    terms = np.array(rk.load_arrays(path)[key])
    terms[3] *= 0.5
    rewrite(path, **{key: terms})
    with pytest.raises(rk.FormatError, match=rf"{key}\[3\] is .*, but the stored vectors give"):
        FlatIndex.load(path)
    FlatIndex.load(path, verify=False)  # without verify nothing reads the vectors: documented


def test_cosine_refuses_a_vector_too_short_for_float32(tmp_path):
    # Found by the fuzzer (flat_fixed): 1/|v| of a denormal vector overflows
    # float32, and the vector scored -inf against itself instead of 1.
    docs = np.array([[1, 2], [1e-45, 0]], np.float32)
    with pytest.raises(ValueError, match=r"vectors\[1\] is too short for a float32 cosine"):
        FlatIndex(docs, metric="cosine")
    assert len(FlatIndex(docs, metric="ip")) == 2  # inner product and L2 have no 1/|v|
    path = saved_index(tmp_path, metric="cosine", dtype="float32")
    terms = np.array(rk.load_arrays(path)["row_scale"])
    terms[2] = np.inf
    rewrite(path, row_scale=terms)
    with pytest.raises(rk.FormatError, match=r"row_scale\[2\] is inf, expected a finite number >= 0"):
        FlatIndex.load(path, verify=False)
