"""Plain-Python token trees: merge, masks, positions, greedy and sampling
verification, written from their definitions on lists of paths.

A tree is given as (tokens, parents, weights) lists, node 0 the root.
"""

import numpy as np

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
