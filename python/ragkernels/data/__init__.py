"""Dataset readers (BEIR, MS MARCO, TREC) and a small shipped demo corpus.

Pure Python: importing this package needs no compiled code.
"""
from ragkernels.data.beir import *  # noqa: F401,F403 (the public names are beir.__all__)
from ragkernels.data.beir import __all__  # noqa: F401
