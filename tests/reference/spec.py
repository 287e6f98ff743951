"""Plain-Python references of ragkernels.spec (csrc/spec), written from
their definitions, in three parts: token trees and verification, the
drafters, the retrieval datastore. Each part's own notes are below its header.
"""
import heapq
import math
from collections import Counter, defaultdict

import numpy as np


# ==== Token trees: merge, masks, positions, greedy and sampling verification ====
#
# Plain-Python token trees: merge, masks, positions, greedy and sampling
# verification, written from their definitions on lists of paths.
#
# A tree is given as (tokens, parents, weights) lists, node 0 the root.


MASK64 = (1 << 64) - 1


def path_of(parents, tokens, i):
    """The tokens from the root's child down to node i (the root's token left out)."""
    path = []
    while i > 0:
        path.append(tokens[i])
        i = parents[i]
    return tuple(reversed(path))


def depths(parents):
    return [len(ancestors(parents, i)) - 1 for i in range(len(parents))]


def ancestors(parents, i):
    """i and every node above it, the root included."""
    out = []
    while i >= 0:
        out.append(i)
        i = parents[i]
    return out


def attention_mask(parents, past_length, allowed=0.0, masked=None):
    n = len(parents)
    masked = np.finfo(np.float32).min if masked is None else masked
    out = np.full((n, past_length + n), masked, dtype=np.float64)
    out[:, :past_length] = allowed
    for i in range(n):
        for a in ancestors(parents, i):
            out[i, past_length + a] = allowed
    return out


def merge(trees, budget):
    """Union of the trees' paths (max weight per path, then each path's weight
    capped by its prefix's), the `budget` best kept (weight desc, depth asc,
    first appearance), laid out depth-first with children by (-weight, token)."""
    weight = {}
    found = {}
    for tokens, parents, weights in trees:
        for i in range(1, len(tokens)):
            p = path_of(parents, tokens, i)
            weight[p] = max(weight.get(p, 0.0), weights[i])
            found.setdefault(p, len(found))
    for p in sorted(weight, key=len):  # prefixes first
        if len(p) > 1:
            weight[p] = min(weight[p], weight[p[:-1]])
    ranked = sorted(weight, key=lambda p: (-weight[p], len(p), found[p]))
    kept = set(ranked[:budget])
    root = trees[0][0][0]
    tokens, parents, weights = [root], [-1], [1.0]

    def visit(prefix, index):
        children = [p for p in kept if len(p) == len(prefix) + 1 and p[:-1] == prefix]
        children.sort(key=lambda p: (-weight[p], p[-1]))
        for c in children:
            tokens.append(c[-1])
            parents.append(index)
            weights.append(weight[c])
            visit(c, len(tokens) - 1)

    visit((), 0)
    return tokens, parents, weights


def children_of(parents, u):
    return [i for i in range(1, len(parents)) if parents[i] == u]


def verify_greedy(tokens, parents, argmax):
    nodes, out = [0], []
    u = 0
    while True:
        out.append(argmax[u])
        match = [c for c in children_of(parents, u) if tokens[c] == argmax[u]]
        if not match:
            return nodes, out
        u = match[0]
        nodes.append(u)


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * 2.0**-53


def verify_sampling(tokens, parents, probs, seed):
    """The same draws as the compiled op: a uniform per child with mass > 0
    tried, a uniform for the final draw from the residual."""
    rng = SplitMix64(seed)
    nodes, out = [0], []
    u = 0
    vocab = len(probs[0])
    while True:
        p = [float(x) for x in probs[u]]
        total = sum_left_to_right(p)
        residual = total
        rejected = set()
        accepted = None
        last_with_mass = None
        for c in children_of(parents, u):
            t = tokens[c]
            mass = p[t] if t < vocab else 0.0
            if mass > 0.0 and rng.uniform() * residual < mass:
                accepted = c
                break
            if t < vocab:
                rejected.add(t)
            if mass > 0.0:
                last_with_mass = t
            residual -= mass
        if accepted is not None:
            out.append(tokens[accepted])
            nodes.append(accepted)
            u = accepted
            continue
        residual = sum_left_to_right([x for v, x in enumerate(p) if v not in rejected])
        if residual <= 0.0:
            out.append(last_with_mass)
            return nodes, out
        target = rng.uniform() * residual
        cumulative, chosen = 0.0, None
        for v, x in enumerate(p):
            if x == 0.0 or v in rejected:
                continue
            chosen = v
            cumulative += x
            if target < cumulative:
                break
        out.append(chosen)
        return nodes, out


def sum_left_to_right(values):
    total = 0.0
    for v in values:
        total += v
    return total


def sequential_distribution(tokens, parents, probs, u=0):
    """Exact probability of each emitted first token at node u under the
    rejection scheme (for the distribution test): must equal probs[u] normalized."""
    p = np.asarray(probs[u], np.float64)
    p = p / p.sum()
    out = np.zeros_like(p)
    reach = 1.0
    residual = p.copy()
    for c in children_of(parents, u):
        t = tokens[c]
        if t >= len(p):
            continue
        s = residual.sum()
        accept = residual[t] / s if s > 0 else 0.0
        out[t] += reach * accept
        reach *= 1 - accept
        residual[t] = 0.0
    if residual.sum() > 0:
        out += reach * residual / residual.sum()
    return out


# ==== Drafters: prompt lookup and the suffix tree ====
#
# Plain-Python drafters, written from their definitions.
#
# Prompt lookup scans the whole text for the longest earlier occurrence of its
# end (brute force); SuffixDecoding counts every substring of up to max_depth
# tokens in dicts and grows its draft with heapq. Trees come out as
# (tokens, parents, weights) lists, node 0 the root; weights are rounded to
# float32 as the compiled drafters store them.


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


# ==== The retrieval datastore ====
#
# Slow, obvious references for the retrieval datastore (csrc/spec/datastore.h):
# the text layout, the suffix array of the reversed sequences by sorted(), the
# longest matching suffix by scanning every position, and the draft tree by
# counting every continuation prefix in a dict.


def text_ref(sequences):
    """The sequences concatenated, each followed by -1."""
    out = []
    for seq in sequences:
        out.extend(int(t) for t in seq)
        out.append(-1)
    return np.array(out, np.int32)


def _backward(text, e):
    """text[e], text[e - 1], ... down to the start of e's sequence."""
    out = []
    while e >= 0 and text[e] >= 0:
        out.append(int(text[e]))
        e -= 1
    return tuple(out)


def token_start_ref(text, vocab_size=None):
    """Where each token's entries start in the suffix array (ids < vocab_size,
    or < 1 + the largest id); None when that is over 2**22 ids."""
    ids = vocab_size if vocab_size is not None and vocab_size <= 2**22 else max(int(t) for t in text) + 1
    if ids > 2**22:
        return None
    counts = np.bincount(np.asarray([t for t in text if t >= 0], np.int64), minlength=ids)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)


def suffix_array_ref(text):
    """Token positions sorted by their backward prefix (a prefix of another
    first: tuple order), equal ones by position."""
    text = [int(t) for t in text]
    positions = [e for e, t in enumerate(text) if t >= 0]
    return np.array(sorted(positions, key=lambda e: (_backward(text, e), e)), np.int32)


def longest_match_ref(text, sa, context, max_match):
    """(length, start, stop): the longest suffix of `context` (at most
    max_match tokens) that ends at some token of `text` within one sequence,
    and the slice of `sa` holding its occurrences."""
    text = [int(t) for t in text]
    context = [int(t) for t in context]
    for length in range(min(max_match, len(context)), 0, -1):
        want = tuple(reversed(context[-length:]))
        hits = [r for r, e in enumerate(sa.tolist()) if _backward(text, e)[:length] == want]
        if hits:
            assert hits == list(range(hits[0], hits[-1] + 1)), "occurrences are one slice"
            return length, hits[0], hits[-1] + 1
    return 0, 0, 0


def draft_ref(text, sa, context, max_nodes, *, max_match=16, min_match=1, max_depth=16, max_candidates=64,
              min_weight=0.0):
    """(tokens, parents, weights) of RetrievalSession.draft, by brute force.

    Occurrences counted: every entry of the match's slice, or max_candidates
    of them at start + j * count // m. Every prefix of each continuation
    (up to max_depth tokens, to the separator) is a node counted once per
    occurrence; weight = float32(count) / float32(m). The first max_nodes
    nodes by (-count, depth, path) with weight >= min_weight, output depth
    first, children by (-count, token)."""
    text = [int(t) for t in text]
    root = int(context[-1])
    length, start, stop = longest_match_ref(text, sa, context, max_match) if max_nodes > 0 else (0, 0, 0)
    if max_nodes == 0 or length < min_match:
        return [root], [-1], [1.0]
    count = stop - start
    m = min(count, max_candidates)
    counts = {}
    for j in range(m):
        e = int(sa[start + j * count // m])
        path = []
        for q in range(e + 1, min(e + 1 + max_depth, len(text))):
            if text[q] < 0:
                break
            path.append(text[q])
            counts[tuple(path)] = counts.get(tuple(path), 0) + 1

    def weight(c):
        return float(np.float32(c) / np.float32(m))

    nodes = [p for p, c in counts.items() if weight(c) >= min_weight]
    kept = set(sorted(nodes, key=lambda p: (-counts[p], len(p), p))[:max_nodes])
    tokens, parents, weights = [root], [-1], [1.0]

    def visit(path, index):
        children = sorted((p for p in kept if len(p) == len(path) + 1 and p[:-1] == path),
                          key=lambda p: (-counts[p], p[-1]))
        for child in children:
            tokens.append(child[-1])
            parents.append(index)
            weights.append(weight(counts[child]))
            visit(child, len(tokens) - 1)

    visit((), 0)
    return tokens, parents, weights


# ---- cross-vocabulary bridge (csrc/spec/vocab_bridge.*) ---------------------------------------

class ByteVocabRef:
    """Greedy longest match over a vocabulary's byte strings, by brute force."""

    def __init__(self, pieces):
        self.pieces = list(pieces)
        self.ids = {}
        for i, piece in enumerate(self.pieces):
            if piece:
                self.ids.setdefault(piece, i)  # the lowest id of equal bytes

    def longest(self, text):
        """(id, length, open): open when all of `text` is a proper prefix of a piece."""
        best = (-1, 0)
        for n in range(1, len(text) + 1):
            if text[:n] in self.ids:
                best = (self.ids[text[:n]], n)
        is_open = any(len(p) > len(text) and p.startswith(text) for p in self.ids)
        return best[0], best[1], is_open

    def encode(self, text, draft=False):
        """(ids, ends): commit mode skips bytes no piece spells; draft mode stops
        there and drops a last token whose match the end of `text` cut short."""
        ids, ends, pos = [], [], 0
        while pos < len(text):
            i, n, is_open = self.longest(text[pos:])
            if i < 0:
                if draft:
                    break
                pos += 1
                continue
            if draft and is_open:
                break
            pos += n
            ids.append(i)
            ends.append(pos)
        return ids, ends

    def decode(self, ids):
        return b"".join(self.pieces[i] for i in ids)


def commit_point(pending, max_pending=16):
    """Start of the last whitespace run (not at 0); when more than
    max_pending bytes would stay, a UTF-8 character start 8 bytes from the
    end; else 0."""
    space = b" \n\t\r"
    cut = next((i for i in range(len(pending) - 1, 0, -1) if pending[i] in space and pending[i - 1] not in space), 0)
    if len(pending) - cut <= max_pending:
        return cut
    cut = len(pending) - 8
    while cut > 0 and pending[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


class BridgeSessionRef:
    def __init__(self, drafter_pieces, target_pieces):
        self.drafter, self.target = ByteVocabRef(drafter_pieces), ByteVocabRef(target_pieces)
        self.pending, self.last, self.size = b"", -1, 0

    def extend(self, ids):
        if not ids:
            return []
        self.pending += self.target.decode(ids)
        self.last, self.size = ids[-1], self.size + len(ids)
        cut = commit_point(self.pending)
        committed = self.drafter.encode(self.pending[:cut])[0]
        self.pending = self.pending[cut:]
        return committed

    def flush(self):
        committed = self.drafter.encode(self.pending)[0]
        self.pending = b""
        return committed

    def map(self, tokens, parents, weights, budget):
        """The target tree (tokens, parents, weights) of a drafter tree."""
        p, n = len(self.pending), len(tokens)
        path, ok = [b""] * n, [True] + [False] * (n - 1)
        for i in range(1, n):
            if ok[parents[i]]:
                path[i] = path[parents[i]] + self.drafter.pieces[tokens[i]]
                m = min(len(path[i]), p)
                ok[i] = path[i][:m] == self.pending[:m]
        chains = []
        for leaf in range(1, n):
            if not ok[leaf] or any(ok[c] for c in children_of(parents, leaf)) or len(path[leaf]) <= p:
                continue
            ids, ends = self.target.encode(path[leaf][p:], draft=True)
            line = [a for a in ancestors(parents, leaf) if a != 0][::-1]
            chain_tokens, chain_parents, chain_weights = [self.last], [-1], [1.0]
            for j, (token, end) in enumerate(zip(ids, ends)):
                cover = next(a for a in line if len(path[a]) >= p + end)
                chain_tokens.append(token)
                chain_parents.append(j)
                chain_weights.append(weights[cover])
            chains.append((chain_tokens, chain_parents, chain_weights))
        return merge(chains or [([self.last], [-1], [1.0])], budget)


# ---- the constrained-decoding trie (csrc/spec/trie.*) ---------------------------------------

class TrieRef:
    """A dict-of-dicts trie, numbered depth-first with children by token: the
    CSR arrays the compiled build must produce, and the step ops on them."""

    def __init__(self, sequences, vocab_size):
        self.vocab_size = vocab_size
        root = {}
        ends = set()
        for seq in sequences:
            node = root
            for t in seq:
                node = node.setdefault(t, {})
            ends.add(id(node))
        self.row_ptr, self.tokens, self.child, self.terminal = [0], [], [], []
        self.num_sequences = len({tuple(s) for s in sequences})
        self.children = []  # per node: {token: child id}
        order = []

        def number(node):
            order.append(node)
            me = len(order) - 1
            self.terminal.append(1 if id(node) in ends else 0)
            self.children.append({})
            for t in sorted(node):
                self.children[me][t] = number(node[t])
            return me

        number(root)
        for v in range(len(order)):
            for t in sorted(self.children[v]):
                self.tokens.append(t)
                self.child.append(self.children[v][t])
            self.row_ptr.append(len(self.tokens))

    def bitmask(self, states):
        words = (self.vocab_size + 31) // 32
        out = []
        for s in states:
            row = [0] * words
            for t in (self.children[s] if s >= 0 else {}):
                row[t // 32] |= 1 << (t % 32)
            out.append([w - (1 << 32) if w >= 1 << 31 else w for w in row])  # as int32
        return out

    def advance(self, states, tokens):
        return [self.children[s].get(t, -1) if s >= 0 else -1 for s, t in zip(states, tokens)]

    def is_terminal(self, states):
        return [s >= 0 and bool(self.terminal[s]) for s in states]

    def mask_logits(self, states, logits, eos=None):
        """A masked copy of numpy `logits`: -inf outside each row's allowed
        tokens (plus eos after a whole sequence, and alone when dead); a row
        that allows nothing is kept when there is no eos."""
        out = logits.copy()
        for r, s in enumerate(states):
            allowed = set(self.children[s]) if s >= 0 else set()
            if eos is not None and (s < 0 or self.terminal[s]):
                allowed.add(eos)
            if allowed:
                keep = np.zeros(out.shape[1], bool)
                keep[sorted(allowed)] = True
                out[r, ~keep] = -np.inf
        return out
