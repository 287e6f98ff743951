"""Plain-Python drafters, written from their definitions.

Prompt lookup scans the whole text for the longest earlier occurrence of its
end (brute force); SuffixDecoding counts every substring of up to max_depth
tokens in dicts and grows its draft with heapq. Trees come out as
(tokens, parents, weights) lists, node 0 the root; weights are rounded to
float32 as the compiled drafters store them.
"""
import heapq
import math
from collections import Counter, defaultdict

import numpy as np


def f32(x):
    return float(np.float32(x))


# ---- prompt lookup ---------------------------------------------------------------


def lookup_text(context, sequence):
    """Context pieces, each closed by a separator of its own (-1, -2, ...),
    then the sequence."""
    text, separator = [], -1
    for piece in context:
        if len(piece):
            text += [int(t) for t in piece] + [separator]
            separator -= 1
    return text + [int(t) for t in sequence]


def longest_earlier_match(text):
    """(L, end): the longest L such that text's last L tokens also end at
    some end < len(text) - 1, and the first such end; (0, -1) if none."""
    n = len(text)
    for length in range(n - 1, 0, -1):
        target = text[n - length:]
        for end in range(length - 1, n - 1):
            if text[end - length + 1:end + 1] == target:
                return length, end
    return 0, -1


def prompt_lookup_draft(context, sequence, max_nodes, max_depth, min_match):
    if len(sequence) == 0:
        raise ValueError("empty sequence")
    text = lookup_text(context, sequence)
    n = len(text)
    tokens, parents, weights = [text[-1]], [-1], [1.0]
    length, end = longest_earlier_match(text)
    budget = min(max_nodes, max_depth)
    if length < min_match:
        return tokens, parents, weights
    for k in range(budget):
        pos = end + 1 + k
        token = text[pos] if pos < n else tokens[1 + pos - n]  # past the present: copy the draft
        if token < 0:
            break
        tokens.append(token)
        parents.append(k)
        weights.append(f32((length + 1) / (length + 2 + k)))
    return tokens, parents, weights


# ---- SuffixDecoding ------------------------------------------------------------------


def count_paths(occurrences, max_depth):
    """count[path] = how many (text, start) occurrences begin with path,
    each occurrence being text[start:end] with end - start <= max_depth."""
    counts = Counter()
    roots = 0
    for text, start, end in occurrences:
        roots += 1
        for k in range(1, end - start + 1):
            counts[tuple(text[start:start + k])] += 1
    return counts, roots


def document_occurrences(text, max_depth):
    text = [int(t) for t in text]
    return [(text, s, min(len(text), s + max_depth)) for s in range(len(text))]


def request_occurrences(context, sequence, max_depth):
    """A session's own tree: every suffix of its context pieces, and the
    suffixes of its sequence that are max_depth tokens long already."""
    occ = []
    for piece in context:
        occ += document_occurrences(piece, max_depth)
    seq = [int(t) for t in sequence]
    occ += [(seq, s, s + max_depth) for s in range(len(seq) - max_depth + 1)]
    return occ


class Trie:
    def __init__(self, occurrences, max_depth):
        self.counts, self.roots = count_paths(occurrences, max_depth)
        self.children = defaultdict(list)
        for path in self.counts:
            self.children[path[:-1]].append(path[-1])

    def draft(self, sequence, root, max_nodes, max_match, max_depth, factor, min_probability):
        """(tree, score): score = sum of the drafted counts / count(match)."""
        tokens, parents, weights = [root], [-1], [1.0]
        longest = min(len(sequence), max_match, max_depth - 1)
        match = None
        for length in range(longest, 0, -1):
            m = tuple(int(t) for t in sequence[len(sequence) - length:])
            if m in self.counts and self.children.get(m):
                match = m
                break
        if match is None or max_nodes == 0:
            return (tokens, parents, weights), 0.0
        total = self.counts[match]
        budget = min(max_nodes, math.floor(factor * len(match)))
        heap = []

        def push(path, index, depth):
            for t in self.children.get(path, []):
                c = self.counts[path + (t,)]
                if c / total >= min_probability:
                    # best first: most frequent, shallower, lower token, earlier parent
                    heapq.heappush(heap, (-c, depth + 1, t, index, path + (t,)))

        push(match, 0, 0)
        drafted = 0
        while len(tokens) - 1 < budget and heap:
            neg, depth, t, parent, path = heapq.heappop(heap)
            tokens.append(t)
            parents.append(parent)
            weights.append(f32(-neg / total))
            drafted += -neg
            push(path, len(tokens) - 1, depth)
        return (tokens, parents, weights), drafted / total

    def export(self):
        """Breadth-first (tokens, parents, counts), children by token."""
        tokens, parents, counts = [-1], [-1], [self.roots]
        queue = [()]
        for k, path in enumerate(queue):
            for t in sorted(self.children.get(path, [])):
                tokens.append(t)
                parents.append(k)
                counts.append(self.counts[path + (t,)])
                queue.append(path + (t,))
        return tokens, parents, counts


class SuffixDrafterRef:
    """The shared tree as a list of kept texts, oldest first."""

    def __init__(self, max_depth=32, max_match=None, max_spec_factor=1.0, min_probability=0.1,
                 max_answers=None, max_tokens=2**20):
        self.max_depth = max_depth
        self.max_match = max_depth // 2 if max_match is None else max_match
        self.factor = max_spec_factor
        self.min_probability = min_probability
        self.max_answers = max_answers
        self.max_tokens = max_tokens
        self.texts = []
        self._trie = None  # counts of the current texts, made on demand

    def add(self, tokens):
        tokens = [int(t) for t in tokens]
        if not tokens or self.max_answers == 0 or (self.max_tokens is not None and len(tokens) > self.max_tokens):
            return
        while self.max_answers is not None and len(self.texts) >= self.max_answers:
            self.texts.pop(0)
        while self.max_tokens is not None and sum(map(len, self.texts)) + len(tokens) > self.max_tokens:
            self.texts.pop(0)
        self.texts.append(tokens)
        self._trie = None

    def trie(self):
        if self._trie is None:
            occ = []
            for text in self.texts:
                occ += document_occurrences(text, self.max_depth)
            self._trie = Trie(occ, self.max_depth)
        return self._trie

    def start(self, prompt, context=()):
        return SuffixSessionRef(self, prompt, context)


class SuffixSessionRef:
    def __init__(self, drafter, prompt, context):
        self.drafter = drafter
        self.context = [list(map(int, piece)) for piece in context]
        self.sequence = [int(t) for t in prompt]
        self.prompt_size = len(self.sequence)

    def extend(self, tokens):
        self.sequence += [int(t) for t in tokens]

    def draft(self, max_nodes):
        if not self.sequence:
            raise ValueError("empty sequence")
        d = self.drafter
        args = (self.sequence, self.sequence[-1], max_nodes, d.max_match, d.max_depth, d.factor, d.min_probability)
        own, own_score = Trie(request_occurrences(self.context, self.sequence, d.max_depth), d.max_depth).draft(*args)
        shared, shared_score = d.trie().draft(*args)
        return own if own_score >= shared_score else shared

    def finish(self):
        self.drafter.add(self.sequence[self.prompt_size:])
