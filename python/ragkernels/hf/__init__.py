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

__all__ = ["CrossEncoder", "Encoder", "ListwiseReranker", "SparseEncoder", "SparseVectors", "SpecStats",
           "SpeculativeDecoding", "SpeculativeOutput", "TrieConstraint", "document_text", "parse_permutation",
           "speculative_decoding", "speculative_generate"]
