"""Speculative drafting: compiled drafters, token trees and lossless verification.

A drafter proposes, for each sequence being generated, a tree of likely
continuations (:class:`TokenTree`); one forward pass of the target model scores
every node, and :func:`verify_greedy` or :func:`verify_sampling` keeps the
longest path the target agrees with. The output is exactly what the target
alone would produce. ``ragkernels.hf.speculative_generate`` runs the loop for
transformers models; docs/spec.md describes the design.
"""
from ragkernels.spec.datastore import Datastore, Match, RetrievalDrafter, RetrievalSession
from ragkernels.spec.drafters import PromptLookupDrafter, PromptLookupSession, SuffixDrafter, SuffixSession
from ragkernels.spec.tree import Accepted, TokenTree, merge, verify_greedy, verify_sampling

__all__ = ["Accepted", "Datastore", "Match", "PromptLookupDrafter", "PromptLookupSession", "RetrievalDrafter",
           "RetrievalSession", "SuffixDrafter", "SuffixSession", "TokenTree", "merge", "verify_greedy", "verify_sampling"]
