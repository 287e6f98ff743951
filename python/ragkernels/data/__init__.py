"""Dataset readers (BEIR, MS MARCO, TREC) and a small shipped demo corpus.

Pure Python: importing this package needs no compiled code.
"""
from ragkernels.data.beir import (
    BeirDataset,
    Corpus,
    Queries,
    demo_path,
    load_beir,
    load_demo,
    read_msmarco_collection,
    read_trec_topics_tsv,
    write_trec_run,
)

__all__ = [
    "BeirDataset",
    "Corpus",
    "Queries",
    "demo_path",
    "load_beir",
    "load_demo",
    "read_msmarco_collection",
    "read_trec_topics_tsv",
    "write_trec_run",
]
