"""Slow, obvious references for the retrieval datastore (csrc/spec/datastore.h):
the text layout, the suffix array of the reversed sequences by sorted(), the
longest matching suffix by scanning every position, and the draft tree by
counting every continuation prefix in a dict."""
import numpy as np


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
