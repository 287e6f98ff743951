"""The KV bitstream (docs/formats.md, "KV bitstream") for the fuzzer: seeds,
a checksum fix-up (so mutations reach the field checks behind the
checksums), and the call under test with its oracle.

Seeds are caches of a tiny Llama config (random weights, real transformers
code) at every bit width, full-precision layers and the three residual
dtypes. After a successful decode, every layer is dequantized and attended
over (fused decode attention included): whatever a stream holds must never
crash a kernel.
"""
from __future__ import annotations

import struct

from fuzz import container

HEADER = 64
LAYER_HEAD = 56
SECTION_HEAD = 32


def _config():
    import transformers

    return transformers.LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                    bos_token_id=None, eos_token_id=None, pad_token_id=0)


def seeds():
    import torch
    import transformers

    import ragkernels as rk

    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(_config()).eval()
    out = {}
    cases = {"2bit": (2, torch.float32), "3bit": (3, torch.float32), "4bit-f16": (4, torch.float16),
             "8bit-bf16": (8, torch.bfloat16), "mixed": ([2, None], torch.float32), "full": (None, torch.float32)}
    for name, (bits, dtype) in cases.items():
        model = model.to(dtype)
        cache = rk.hf.CompressedCache(model.config, key_bits=bits, group_size=8, residual=4)
        with torch.no_grad():
            model(torch.arange(1, 23).view(2, 11), cache=cache)
            model(torch.tensor([[3], [4]]), cache=cache)
        out[name] = rk.kv.encode(cache)
    return out


def reseal(data: bytes) -> bytes:
    """`data` with every checksum it can locate recomputed (header, layer
    heads, sections), walking the structure as far as it parses."""
    data = bytearray(data)
    if len(data) < HEADER:
        return bytes(data)
    data[56:64] = struct.pack("<Q", container.xxh64(bytes(data[:56])))
    at = HEADER
    while at + LAYER_HEAD <= len(data):
        head = at
        chunk = struct.unpack_from("<Q", data, head + 40)[0]
        end = min(len(data), head + chunk) if chunk >= LAYER_HEAD else len(data)
        at = head + LAYER_HEAD
        while at + SECTION_HEAD <= end:
            stored = struct.unpack_from("<Q", data, at + 16)[0]
            payload = bytes(data[at + SECTION_HEAD: min(end, at + SECTION_HEAD + stored)])
            data[at + 24: at + 32] = struct.pack("<Q", container.xxh64(payload))
            at += SECTION_HEAD + stored
        data[head + 48: head + 56] = struct.pack("<Q", container.xxh64(bytes(data[head: head + 48])))
        at = max(end, head + LAYER_HEAD)
    return bytes(data)


def load(path, work):
    import ragkernels as rk

    with open(path, "rb") as f:
        return rk.kv.decode(f, _config())


def load_resealed(path, work):
    path.write_bytes(reseal(path.read_bytes()))
    return load(path, work)


def check(cache) -> None:
    """Every layer dequantizes and attends, whatever its values (NaN included)."""
    import torch

    for layer in cache.layers:
        layer.dequantized()
        if layer.compressed and layer.held:
            batch, heads, _, dim = layer.keys.shape
            query = torch.ones((batch, 2 * heads, 1, dim), dtype=layer.keys.dtype)
            layer.decode_attention(query, None, dim ** -0.5)
