"""CPU/CUDA dispatch: the backend follows where the input lives.

A CUDA tensor (DLPack device type 2) goes to ``ragkernels._cuda`` when that
module was built; everything else goes to the CPU core. There is no global
switch: the same call runs where its data is.
"""
from __future__ import annotations

import importlib
from typing import Any

from ragkernels import _core

_KDL_CUDA = 2


def _cuda_module():
    try:
        return importlib.import_module("ragkernels._cuda")
    except ImportError:
        return None


def device_of(array: Any) -> str:
    """Return ``"cuda"`` for a CUDA DLPack tensor, else ``"cpu"``."""
    dev = getattr(array, "__dlpack_device__", None)
    if dev is not None and not hasattr(array, "__array_interface__"):
        if dev()[0] == _KDL_CUDA:
            return "cuda"
    return "cpu"


def cuda_available() -> bool:
    """True when the CUDA module was built and sees a GPU."""
    mod = _cuda_module()
    return bool(mod is not None and mod.device_count() > 0)


def cuda_module(op: str) -> Any:
    """``ragkernels._cuda``, or a RuntimeError naming `op` when it was not built."""
    mod = _cuda_module()
    if mod is None:
        raise RuntimeError(
            f"{op}: the input is a CUDA tensor but ragkernels was built "
            "without CUDA (install where nvcc is on PATH)")
    return mod


def call(op: str, first_array: Any, *args: Any) -> Any:
    """Run ``op`` on the backend where ``first_array`` lives."""
    if device_of(first_array) == "cuda":
        return as_framework_tensors(first_array, getattr(cuda_module(op), op)(first_array, *args))
    return getattr(_core, op)(first_array, *args)


def as_framework_tensors(like: Any, capsules: Any) -> Any:
    """Wrap the CUDA module's DLPack capsules as tensors of `like`'s framework."""
    module = type(like).__module__.split(".")[0]
    if module == "torch":
        from torch.utils.dlpack import from_dlpack
    elif module == "cupy":
        from cupy import fromDlpack as from_dlpack
    else:
        return capsules
    if isinstance(capsules, tuple):
        return tuple(None if c is None else from_dlpack(c) for c in capsules)
    return from_dlpack(capsules)
