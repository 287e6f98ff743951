"""Slow, obvious references for the core ops."""
import math

import numpy as np


def topk_ref(scores, k):
    """Per row: sort by (NaN last, score desc, index asc); pad with -1/-inf."""
    scores = np.asarray(scores)
    ids = np.full((scores.shape[0], k), -1, np.int64)
    out = np.full((scores.shape[0], k), -np.inf, scores.dtype)
    for r, row in enumerate(scores.tolist()):
        order = sorted(range(len(row)), key=lambda i: (math.isnan(row[i]), -row[i] if not math.isnan(row[i]) else 0, i))
        best = order[:k]
        ids[r, :len(best)] = best
        out[r, :len(best)] = [row[i] for i in best]
    return ids, out


# ---- the file format (docs/formats.md), to forge files whose checksums are valid

_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                           0x27D4EB2F165667C5)
_MASK = 2**64 - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _MASK


def _round(acc, lane):
    return (_rotl((acc + lane * _P2) & _MASK, 31) * _P1) & _MASK


def _merge(acc, v):
    return ((acc ^ _round(0, v)) * _P1 + _P4) & _MASK


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 as the reference implementation computes it (slow; for small files)."""
    n, p = len(data), 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & _MASK, (seed + _P2) & _MASK, seed, (seed - _P1) & _MASK]
        while p + 32 <= n:
            for i in range(4):
                v[i] = _round(v[i], int.from_bytes(data[p + 8 * i:p + 8 * i + 8], "little"))
            p += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _MASK
        for x in v:
            h = _merge(h, x)
    else:
        h = (seed + _P5) & _MASK
    h = (h + n) & _MASK
    while p + 8 <= n:
        h = (_rotl(h ^ _round(0, int.from_bytes(data[p:p + 8], "little")), 27) * _P1 + _P4) & _MASK
        p += 8
    if p + 4 <= n:
        h = (_rotl(h ^ (int.from_bytes(data[p:p + 4], "little") * _P1 & _MASK), 23) * _P2 + _P3) & _MASK
        p += 4
    while p < n:
        h = (_rotl(h ^ (data[p] * _P5 & _MASK), 11) * _P1) & _MASK
        p += 1
    h = ((h ^ (h >> 33)) * _P2) & _MASK
    h = ((h ^ (h >> 29)) * _P3) & _MASK
    return h ^ (h >> 32)


def file_sections(data: bytes) -> dict:
    """{section name: (payload offset, size)} of a ragkernels file."""
    count = int.from_bytes(data[48:52], "little")
    out = {}
    for i in range(count):
        entry = data[128 + 64 * i:192 + 64 * i]
        name = entry[:32].rstrip(b"\0").decode("utf-8", "replace")
        out[name] = (int.from_bytes(entry[40:48], "little"), int.from_bytes(entry[48:56], "little"))
    return out


def reseal(data: bytes) -> bytes:
    """`data` with every checksum (payloads, table, header) recomputed, so that
    a loader gets past them to its own checks of the content."""
    data = bytearray(data)
    count = int.from_bytes(data[48:52], "little")
    for i in range(count):
        entry = 128 + 64 * i
        offset = int.from_bytes(data[entry + 40:entry + 48], "little")
        size = int.from_bytes(data[entry + 48:entry + 56], "little")
        data[entry + 56:entry + 64] = xxh64(bytes(data[offset:offset + size])).to_bytes(8, "little")
    data[64:72] = xxh64(bytes(data[128:128 + 64 * count])).to_bytes(8, "little")
    data[120:128] = xxh64(bytes(data[:120])).to_bytes(8, "little")
    return bytes(data)


def patch_section(data: bytes, name: str, payload: bytes) -> bytes:
    """`data` with section `name`'s payload replaced by `payload` of the same
    size, checksums recomputed."""
    offset, size = file_sections(data)[name]
    assert len(payload) == size, (name, len(payload), size)
    return reseal(data[:offset] + payload + data[offset + size:])
