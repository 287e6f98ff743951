"""Constrained decoding for transformers models: only sequences of a
:class:`ragkernels.spec.Trie` (issue 16).

:class:`TrieConstraint` is a logits processor (``__call__(input_ids,
scores)``, as ``model.generate(logits_processor=[...])`` calls it): each row's
tokens after the prompt are a path in the trie, and every token that would
leave it gets ``-inf``. Rows are followed by their content, not their index:
a state is looked up by the row's generated tokens (cached per prefix), so
beam search may reorder, drop and duplicate rows between steps. After a
whole allowed sequence, the EOS token is allowed too (alone at a leaf);
a row that has ended (or left the trie) may only emit EOS, so its
distribution stays defined. Under beam search scores arrive as log-probs;
``-inf`` masks them the same way. Under ``rk.hf.speculative_generate`` the
processor runs on every node's path, so drafts are cut where they leave
the trie.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ragkernels._checks import check_int

__all__ = ["TrieConstraint"]


class TrieConstraint:
    """Mask every token that leaves ``trie`` (a ``LogitsProcessor``).

    Parameters
    ----------
    trie : ragkernels.spec.Trie
        The allowed sequences, tokenized for the model.
    eos_token_id : int, optional
        Allowed after a whole sequence (and the only token once a row has
        ended). Without it, a row that has ended (at a leaf, or off the
        trie) is left unmasked: stop generation with ``max_new_tokens`` or a
        stopping criterion.
    prompt_length : int, optional
        Width of the prompt in ``input_ids``; default: the width at the first
        call (so use one processor per ``generate`` call).

    Raises ValueError when the logits are narrower than the trie's
    vocabulary (a trie built for another tokenizer).
    """

    def __init__(self, trie: Any, eos_token_id: Optional[int] = None, prompt_length: Optional[int] = None):
        from ragkernels.spec import Trie

        if not isinstance(trie, Trie):
            raise TypeError(f"TrieConstraint: trie must be a ragkernels.spec.Trie, got {type(trie).__name__}")
        self.trie = trie
        self.eos_token_id = None if eos_token_id is None else check_int(eos_token_id, "eos_token_id",
                                                                        "TrieConstraint", minimum=0)
        self.prompt_length = None if prompt_length is None else check_int(prompt_length, "prompt_length",
                                                                          "TrieConstraint", minimum=0)
        self._states: Dict[Tuple[int, ...], int] = {(): 0}

    def _step(self, states: List[int], tokens: List[int]) -> List[int]:
        """States after tokens, in one compiled call; a token past the trie's
        vocabulary (a padded logits column) leaves the trie. Lists: a step's
        few rows cost less as Python ints than as numpy temporaries."""
        vocab = self.trie.vocab_size
        after = self.trie.advance(np.array(states, np.int32),
                                  np.array([t if t < vocab else 0 for t in tokens], np.int32)).tolist()
        return [a if t < vocab else -1 for a, t in zip(after, tokens)]

    def _state(self, generated: Tuple[int, ...]) -> int:
        """The trie state after `generated` (-1: left the trie or ended),
        stepped on from its longest known prefix (one token, each step of a
        generation; never recursion, whatever the prompt_length)."""
        known = len(generated)
        while generated[:known] not in self._states:  # () is always known
            known -= 1
        state = self._states[generated[:known]]
        for i in range(known, len(generated)):
            state = self._step([state], [generated[i]])[0]
            self._states[generated[:i + 1]] = state
        return state

    def _row_states(self, rows: List[Tuple[int, ...]]) -> np.ndarray:
        """Each row's state; the rows one token past a known prefix (every
        row, each step of a generation) advance in one batched call."""
        states = [0] * len(rows)
        one_step = []  # rows whose prefix without the last token is known
        for i, row in enumerate(rows):
            state = self._states.get(row)
            if state is not None:
                states[i] = state
            elif row[:-1] in self._states:
                one_step.append(i)
            else:
                states[i] = self._state(row)
        if one_step:
            after = self._step([self._states[rows[i][:-1]] for i in one_step], [rows[i][-1] for i in one_step])
            for i, state in zip(one_step, after):
                self._states[rows[i]] = states[i] = state
        return np.array(states, np.int32)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        width = scores.shape[-1]
        if width < self.trie.vocab_size:
            raise ValueError(f"TrieConstraint: the logits have {width} columns but the trie's vocabulary has "
                             f"{self.trie.vocab_size} tokens; was the trie built for another tokenizer?")
        if self.eos_token_id is not None and self.eos_token_id >= width:
            raise ValueError(f"TrieConstraint: eos_token_id {self.eos_token_id} is outside the {width} logits")
        if self.prompt_length is None:
            self.prompt_length = int(input_ids.shape[1])
        states = self._row_states([tuple(r) for r in input_ids[:, self.prompt_length:].tolist()])
        # A processor leaves its input alone (generate may keep it as the raw
        # logits): the masked copy is written in one pass, from the numpy
        # views of a CPU float32 / float16 tensor (torch's __dlpack__ costs
        # ~10 µs), through DLPack for bfloat16; on a GPU a copy is masked.
        if scores.device.type != "cpu":
            return self.trie.mask_logits(states, scores.clone(), eos_token_id=self.eos_token_id)
        masked = torch.empty_like(scores, memory_format=torch.contiguous_format)
        if scores.dtype in (torch.float32, torch.float16) and scores.stride(-1) == 1:
            self.trie.mask_logits(states, scores.numpy(), eos_token_id=self.eos_token_id, out=masked.numpy())
        else:
            self.trie.mask_logits(states, scores.contiguous(), eos_token_id=self.eos_token_id, out=masked)
        return masked

    def __repr__(self) -> str:
        return f"TrieConstraint({self.trie!r}, eos_token_id={self.eos_token_id}, prompt_length={self.prompt_length})"
