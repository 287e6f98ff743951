"""The Examples sections of the public docstrings run as doctests."""
import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["ragkernels._ops", "ragkernels.metrics", "ragkernels.data.beir",
                                    "ragkernels.sparse", "ragkernels.text", "ragkernels.hf.sparse_encoder",
                                    "ragkernels.dense", "ragkernels.fusion", "ragkernels.prf",
                                    "ragkernels.hf.encoder", "ragkernels.rerank", "ragkernels.hf.listwise",
                                    "ragkernels.hf.cross_encoder", "ragkernels.select",
                                    "ragkernels.spec", "ragkernels._spec_drafters",
                                    "ragkernels._spec_datastore", "ragkernels._spec_trie", "ragkernels.hf.spec",
                                    "ragkernels.hf.cache", "ragkernels.kv"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0
