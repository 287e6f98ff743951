"""Hugging Face integrations (the ``[hf]`` extra: torch and transformers).

torch and transformers are imported only when a model is loaded or run, so
importing this package, or ``ragkernels``, never pulls them in.
"""
from ragkernels.hf.cross_encoder import CrossEncoder
from ragkernels.hf.encoder import Encoder, document_text
from ragkernels.hf.listwise import ListwiseReranker, parse_permutation
from ragkernels.hf.sparse_encoder import SparseEncoder, SparseVectors
from ragkernels.hf.spec import (SpecStats, SpeculativeDecoding, SpeculativeOutput, speculative_decoding,
                                speculative_generate)
from ragkernels.hf.trie import TrieConstraint

__all__ = ["CompressedCache", "CrossEncoder", "Encoder", "ListwiseReranker", "SparseEncoder", "SparseVectors", "SpecStats",
           "SpeculativeDecoding", "SpeculativeOutput", "TrieConstraint", "document_text", "parse_permutation",
           "speculative_decoding", "speculative_generate", "enable_fused_attention", "sentence_starts"]


def __getattr__(name):
    # The KV caches subclass transformers' classes, so they are defined when first asked for.
    if name in ("CompressedCache", "CompressedLayer", "enable_fused_attention", "sentence_starts"):
        from ragkernels.hf import compressed_cache
        return getattr(compressed_cache, name)
    raise AttributeError(f"module 'ragkernels.hf' has no attribute {name!r}")
