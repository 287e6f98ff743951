"""The ragkernels container (docs/formats.md) as the fuzzer sees it.

`fix_checksums` rewrites the header and table checksums, every payload
checksum and ``file_size`` of any byte string that starts like a container,
so that a mutated file gets past the container checks into the loader's
own validation (issue 14: "a file whose checksums are valid is trusted").
`parse` / `serialize` read and write a file as a list of sections, and
`mutate` changes one field the way a corrupt or crafted file would
(a count, an offset, a NaN, a missing or renamed section ...), then lays
the file out again with valid checksums.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Callable, List, Optional

try:
    import xxhash as _xxhash

    def xxh64(data: bytes) -> int:
        """XXH64 with seed 0 (the `xxhash` package)."""
        return _xxhash.xxh64_intdigest(data)
except ImportError:  # pragma: no cover - depends on the environment
    _xxhash = None

    def xxh64(data: bytes) -> int:
        """XXH64 with seed 0, pure Python (the `xxhash` package is faster)."""
        return _xxh64_py(bytes(data))


MAGIC = b"RKIDX\r\n\x1a"
HEADER = 128
ENTRY = 64
ALIGN = 64
# dtype code -> (name, struct letter, element size); docs/formats.md "Element types".
DTYPES = {0: ("bytes", "B", 1), 1: ("u8", "B", 1), 2: ("i8", "b", 1), 3: ("u16", "H", 2), 4: ("i16", "h", 2),
          5: ("u32", "I", 4), 6: ("i32", "i", 4), 7: ("u64", "Q", 8), 8: ("i64", "q", 8), 9: ("f16", "e", 2),
          10: ("bf16", "H", 2), 11: ("f32", "f", 4), 12: ("f64", "d", 8)}

_M = (1 << 64) - 1
_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                           0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P2) & _M, 31) * _P1) & _M


def _merge(acc: int, val: int) -> int:
    return ((acc ^ _round(0, val)) * _P1 + _P4) & _M


def _xxh64_py(data: bytes) -> int:
    """XXH64, seed 0, after the spec (github.com/Cyan4973/xxHash doc/xxhash_spec.md)."""
    n, i = len(data), 0
    if n >= 32:
        v = [(_P1 + _P2) & _M, _P2, 0, (-_P1) & _M]
        while i + 32 <= n:
            lanes = struct.unpack_from("<4Q", data, i)
            v = [_round(a, b) for a, b in zip(v, lanes)]
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
        for a in v:
            h = _merge(h, a)
    else:
        h = _P5
    h = (h + n) & _M
    while i + 8 <= n:
        h = (_rotl(h ^ _round(0, struct.unpack_from("<Q", data, i)[0]), 27) * _P1 + _P4) & _M
        i += 8
    if i + 4 <= n:
        h = (_rotl(h ^ (struct.unpack_from("<I", data, i)[0] * _P1 & _M), 23) * _P2 + _P3) & _M
        i += 4
    while i < n:
        h = (_rotl(h ^ (data[i] * _P5 & _M), 11) * _P1) & _M
        i += 1
    h = ((h ^ (h >> 33)) * _P2) & _M
    h = ((h ^ (h >> 29)) * _P3) & _M
    return h ^ (h >> 32)


def _align(x: int) -> int:
    return (x + ALIGN - 1) // ALIGN * ALIGN


def fix_checksums(data: bytes) -> bytes:
    """Make every checksum and ``file_size`` of `data` match its bytes.

    Anything that does not start with the magic and a whole header is
    returned unchanged; table entries and payloads are fixed as far as
    the file holds them (a payload past the end keeps its checksum).
    """
    if len(data) < HEADER or not data.startswith(MAGIC):
        return data
    buf = bytearray(data)
    struct.pack_into("<Q", buf, 56, len(buf))
    count = struct.unpack_from("<I", buf, 48)[0]
    whole = min(count, max(0, (len(buf) - HEADER) // ENTRY))
    for i in range(whole):
        entry = HEADER + ENTRY * i
        offset, size = struct.unpack_from("<QQ", buf, entry + 40)
        if offset + size <= len(buf):
            struct.pack_into("<Q", buf, entry + 56, xxh64(bytes(buf[offset:offset + size])))
    table_end = min(len(buf), HEADER + ENTRY * count)
    struct.pack_into("<Q", buf, 64, xxh64(bytes(buf[HEADER:table_end])))
    struct.pack_into("<Q", buf, 120, xxh64(bytes(buf[:120])))
    return bytes(buf)


@dataclass
class Section:
    name: bytes
    dtype: int
    payload: bytes
    flags: int = 0


@dataclass
class Container:
    kind: bytes
    sections: List[Section] = field(default_factory=list)
    version: int = 1
    endian: int = 0x01020304
    flags: int = 0


def parse(data: bytes) -> Optional[Container]:
    """Read a well-laid-out container (checksums are not checked), or None."""
    if len(data) < HEADER or not data.startswith(MAGIC):
        return None
    version, endian = struct.unpack_from("<II", data, 8)
    kind = data[16:48].rstrip(b"\0")
    count, flags = struct.unpack_from("<II", data, 48)
    if HEADER + ENTRY * count > len(data):
        return None
    sections = []
    for i in range(count):
        entry = HEADER + ENTRY * i
        name = data[entry:entry + 32].rstrip(b"\0")
        dtype, sflags, offset, size = struct.unpack_from("<IIQQ", data, entry + 32)
        if offset + size > len(data):
            return None
        sections.append(Section(name, dtype, data[offset:offset + size], sflags))
    return Container(kind, sections, version, endian, flags)


def serialize(c: Container) -> bytes:
    """Lay `c` out as `write_file` does, with valid checksums."""
    table = bytearray()
    offset = _align(HEADER + ENTRY * len(c.sections))
    body = bytearray(offset - HEADER - ENTRY * len(c.sections))
    for s in c.sections:
        start = _align(offset)
        body += bytes(start - offset) + s.payload
        table += s.name[:32].ljust(32, b"\0") + struct.pack("<IIQQQ", s.dtype, s.flags, start, len(s.payload),
                                                            xxh64(s.payload))
        offset = start + len(s.payload)
    head = bytearray(HEADER)
    head[:8] = MAGIC
    struct.pack_into("<II", head, 8, c.version, c.endian)
    head[16:48] = c.kind[:32].ljust(32, b"\0")
    struct.pack_into("<IIQQ", head, 48, len(c.sections), c.flags, HEADER + len(table) + len(body),
                     xxh64(bytes(table)))
    struct.pack_into("<Q", head, 120, xxh64(bytes(head[:120])))
    return bytes(head + table + body)


# --- structure-aware mutation ---------------------------------------------------------------

_INT_EDGES = (0, 1, 2, 3, 7, 8, 127, 128, 129, 255, 256, 2**15, 2**16, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1,
              2**32, 2**53, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -1, -2, -128, -(2**31), -(2**63))
_FLOAT_EDGES = (0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-45, 1e-38, 65504.0, 65520.0, 3.4e38, 1e300,
                float("nan"), float("inf"), float("-inf"), -1e30)
_BYTE_EDGES = (b"\xff", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80", b"\x00", b"\n", b" ", b"\xef\xbb\xbf")


def _elements(s: Section) -> List:
    name, letter, size = DTYPES.get(s.dtype, ("?", "B", 1))
    n = len(s.payload) // size
    return list(struct.unpack(f"<{n}{letter}", s.payload[:n * size]))


def _pack(s: Section, values: List) -> bytes:
    _, letter, size = DTYPES.get(s.dtype, ("?", "B", 1))
    out = bytearray()
    for v in values:
        try:
            out += struct.pack("<" + letter, v)
        except (struct.error, OverflowError, ValueError):
            # Out of the type's range: a float overflows to +-inf, an int keeps its low bytes.
            if letter in "efd":
                out += struct.pack("<" + letter, float("-inf") if v < 0 else float("inf"))
                continue
            if isinstance(v, float):
                v = 0 if v != v or v in (float("inf"), float("-inf")) else int(v)
            out += (int(v) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(out)


def _new_value(rng: random.Random, s: Section, old):
    _, letter, _ = DTYPES.get(s.dtype, ("?", "B", 1))
    if letter in "efd":
        choice = rng.random()
        if choice < 0.5:
            return rng.choice(_FLOAT_EDGES)
        old = float(old) if old is not None else 1.0
        return rng.choice((-old, old * 2, old / 2, old + 1, old - 1, old * (1 + 1e-6), old * 1e10))
    old = int(old) if old is not None else 0
    choice = rng.random()
    if choice < 0.45:
        return rng.choice(_INT_EDGES)
    if choice < 0.8:
        return old + rng.choice((-1, 1, -2, 2, 127, 128, -128))
    return rng.choice((old * 2, old // 2, -old, rng.randrange(0, 1 << 10)))


def _mutate_values(rng: random.Random, s: Section, others: List[Section]) -> None:
    values = _elements(s)
    op = rng.random()
    if not values or op < 0.1:  # grow
        extra = [_new_value(rng, s, values[-1] if values else None) for _ in range(rng.choice((1, 1, 2, 8)))]
        values = values + extra if rng.random() < 0.7 else extra + values
    elif op < 0.55:  # one element
        i = rng.randrange(len(values))
        values[i] = _new_value(rng, s, values[i])
    elif op < 0.65:  # swap
        i, j = rng.randrange(len(values)), rng.randrange(len(values))
        values[i], values[j] = values[j], values[i]
    elif op < 0.75:  # shrink
        cut = rng.choice((1, 1, 2, len(values)))
        values = values[:-cut] if rng.random() < 0.7 else values[cut:]
    elif op < 0.8:
        values.reverse()
    elif op < 0.9:  # the same element in a run (a constant section, repeated offsets)
        i = rng.randrange(len(values))
        j = min(len(values), i + rng.randrange(1, 5))
        values[i:j] = [values[i]] * (j - i)
    else:  # copy another section's bytes in (a size taken from elsewhere)
        donor = rng.choice(others)
        s.payload = donor.payload[: len(s.payload)] if rng.random() < 0.5 else donor.payload
        return
    s.payload = _pack(s, values)


def _mutate_bytes_section(rng: random.Random, s: Section, byte_mutator: Callable[[bytes, int], bytes]) -> None:
    p = bytearray(s.payload)
    op = rng.random()
    if op < 0.5 or not p:
        at = rng.randrange(len(p) + 1)
        edge = rng.choice(_BYTE_EDGES)
        p[at:at + (len(edge) if rng.random() < 0.5 else 0)] = edge
        s.payload = bytes(p)
    else:
        s.payload = byte_mutator(bytes(p), max(16, 2 * len(p)))


def mutate(data: bytes, rng: random.Random, byte_mutator: Callable[[bytes, int], bytes]) -> Optional[bytes]:
    """One to three field-level changes of a parsed container, re-laid out with
    valid checksums; None when `data` is not a parsable container."""
    c = parse(data)
    if c is None:
        return None
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.random()
        if not c.sections or op < 0.03:
            c.sections.append(Section(rng.choice((b"meta", b"vectors", b"x" * 32, b"\xff", b"")), rng.randrange(14),
                                      bytes(rng.randrange(0, 64))))
        elif op < 0.70:
            s = rng.choice(c.sections)
            if s.dtype == 0:
                _mutate_bytes_section(rng, s, byte_mutator)
            else:
                _mutate_values(rng, s, c.sections)
        elif op < 0.78:
            s = rng.choice(c.sections)
            s.payload = byte_mutator(s.payload, max(16, 2 * len(s.payload)))
        elif op < 0.82:
            del c.sections[rng.randrange(len(c.sections))]
        elif op < 0.85:
            i, j = rng.randrange(len(c.sections)), rng.randrange(len(c.sections))
            c.sections[i], c.sections[j] = c.sections[j], c.sections[i]
        elif op < 0.88:
            s = rng.choice(c.sections)
            s.dtype = rng.choice((rng.randrange(14), s.dtype ^ 1, 0, 2**31, 2**32 - 1))
        elif op < 0.91:
            s = rng.choice(c.sections)
            name = bytearray(s.name or b"x")
            name[rng.randrange(len(name))] = rng.choice((0xFF, 0x00, ord("x"), 0x80))
            s.name = bytes(name) if rng.random() < 0.8 else rng.choice((b"", b"y" * 33, s.name + b"\xc3"))
        elif op < 0.93:
            c.sections.append(Section(*(lambda s: (s.name, s.dtype, s.payload))(rng.choice(c.sections))))
        elif op < 0.95:
            rng.choice(c.sections).flags = rng.choice((1, 2**31))
        elif op < 0.97:
            c.kind = rng.choice((b"", c.kind + b"x", c.kind[:-1], b"\xff" * 4, b"arrays"))
        else:
            field_ = rng.choice(("version", "flags", "endian"))
            setattr(c, field_, rng.choice((0, 1, 2, 7, 2**32 - 1, 0x04030201)))
    return serialize(c)
