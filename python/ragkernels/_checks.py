"""Argument checks shared by the Python modules (one wording everywhere)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, List, Sequence, Union

import numpy as np

Texts = Union[str, Sequence[str]]


def as_texts(texts: Any, op: str, name: str = "texts", allow_str: bool = True) -> List[str]:
    """`texts` as a list of str (one str is one text when `allow_str`); TypeError
    naming `op`, `name` and the first item that is not a str otherwise."""
    if allow_str and isinstance(texts, str):
        return [texts]
    if isinstance(texts, (str, bytes, bytearray)) or not isinstance(texts, Iterable):
        expected = "str or a sequence of str" if allow_str else "a sequence of str"
        raise TypeError(f"{op}: {name} must be {expected}, got {type(texts).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{op}: {name}[{i}] must be str, got {type(text).__name__}")
    return texts


def check_positive_int(value: Any, name: str, op: str) -> None:
    """ValueError naming `op` and `name` unless `value` is an int >= 1 (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{op}: {name} must be an int >= 1, got {value!r}")


INT64_MAX = 2**63 - 1


def check_int(value: Any, name: str, op: str, *, minimum: int = 1, maximum: int = INT64_MAX) -> int:
    """`value` as a Python int in [minimum, maximum]; TypeError for a non-integer
    (bools and floats included), ValueError naming `op` and `name` otherwise.

    Run before a value reaches the compiled core, whose int64/int32 arguments
    would otherwise fail with pybind11's "incompatible function arguments"."""
    if type(value) is int and minimum <= value <= maximum:  # the common case, on per-step paths
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__} {value!r}"[:200])
    value = int(value)
    if not minimum <= value <= maximum:
        upper = "2**63 - 1" if maximum == INT64_MAX else str(maximum)
        raise ValueError(f"{op}: {name} must be an int in [{minimum}, {upper}], got {value}")
    return value
