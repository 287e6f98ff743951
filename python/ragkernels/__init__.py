"""ragkernels: fast, exact compiled operators for retrieval-augmented generation.

The hot loops live in a C++17 core (``ragkernels._core``); this package holds
signatures, defaults, docstrings and the CPU/CUDA dispatch. Arrays cross into
the core without copies (numpy buffers, DLPack tensors) and every long op
releases the GIL.
"""
from ragkernels._version import __version__
from ragkernels._core import FormatError, get_num_threads
from ragkernels._ops import load_arrays, save_arrays, set_num_threads, topk
from ragkernels import data, metrics
from ragkernels import dense, fusion, hf, kv, prf, rerank, select, sparse, spec, text

__all__ = [
    "FormatError",
    "__version__",
    "data",
    "dense",
    "fusion",
    "get_num_threads",
    "hf",
    "kv",
    "load_arrays",
    "metrics",
    "prf",
    "rerank",
    "save_arrays",
    "select",
    "set_num_threads",
    "sparse",
    "spec",
    "text",
    "topk",
]
