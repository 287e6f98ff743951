"""Slow, obviously-correct references that the fast ops are tested against."""
import os
import pathlib


def data_dir():
    """Return the shared data folder as a Path, or None when it is absent.

    ``$RAGKERNELS_DATA`` wins; otherwise ``<repo>/../shared/data``.
    """
    env = os.environ.get("RAGKERNELS_DATA")
    repo_root = pathlib.Path(__file__).resolve().parents[2]
    path = pathlib.Path(env) if env else repo_root.parent / "shared" / "data"
    return path if path.is_dir() else None
