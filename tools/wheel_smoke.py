"""Smoke test of an installed ragkernels (cibuildwheel's test-command).

Run from outside the source tree so the installed wheel is what gets
imported: retrieve the demo corpus shipped in the wheel with BM25 and an
exact dense scan, fuse, evaluate, and round-trip an index through a file.
Needs numpy only; runs in about a second.
"""
import pathlib
import sys
import tempfile

import numpy as np

import ragkernels as rk


def main() -> int:
    if pathlib.Path(rk.__file__).resolve().is_relative_to(pathlib.Path(__file__).resolve().parents[1] / "python"):
        print("wheel_smoke: imported the source tree, not an installed wheel", file=sys.stderr)
    demo = rk.data.load_demo()
    texts = demo.corpus.full_texts()
    bm25 = rk.sparse.BM25Index.build(texts, ids=demo.corpus.ids)
    docs, scores = bm25.search(demo.queries.texts, k=10)
    sparse_run = bm25.to_run(docs, scores, demo.queries.ids)
    ndcg = rk.metrics.evaluate(demo.qrels, sparse_run, ["ndcg_cut_10"]).summary["ndcg_cut_10"]
    assert ndcg > 0.3, f"BM25 nDCG@10 on the demo corpus is {ndcg}"

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(texts), 32), dtype=np.float32)
    flat = rk.dense.FlatIndex(vectors, metric="l2", ids=demo.corpus.ids)  # each row is its own nearest
    dense_docs, _ = flat.search(vectors[:3], k=1)
    assert dense_docs[:, 0].tolist() == [0, 1, 2], dense_docs

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "bm25.rk"
        bm25.save(path)
        again = rk.sparse.BM25Index.load(path)
        np.testing.assert_array_equal(again.search(demo.queries.texts, k=10)[0], docs)

    top = rk.topk(np.array([[0.5, 2.0, 2.0, -1.0]], np.float32), 3)[0]
    assert top.tolist() == [[1, 2, 0]], top
    print(f"ragkernels {rk.__version__} wheel smoke test passed (BM25 nDCG@10 {ndcg:.3f} on the demo corpus)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
