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
