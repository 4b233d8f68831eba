"""Datasets in: BEIR folders and (query, positive) pair files, validated line by line.

Every loader returns a :class:`Dataset`; every problem with the input is an ``InputError`` that names
the file and the 1-based line.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from syneg_dspy.data.beir import load_beir
from syneg_dspy.data.dataset import Dataset
from syneg_dspy.data.pairs import load_pairs
from syneg_dspy.data.sample import SAMPLE_PATH
from syneg_dspy.data.stats import stats
from syneg_dspy.errors import InputError

__all__ = ["Dataset", "SAMPLE_PATH", "carve_dev", "load_beir", "load_dataset", "load_pairs", "stats"]


def load_dataset(path: str | Path | None = None, corpus: str | Path | None = None) -> Dataset:
    """A folder is read as BEIR, a file as pairs (plus an optional extra ``corpus``); None is the bundled sample."""
    path = Path(path) if path is not None else SAMPLE_PATH
    if path.is_dir():
        if corpus is not None:
            raise InputError("an extra corpus applies to pair files only; a BEIR folder has its own corpus.jsonl", path)
        return load_beir(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    return load_pairs(path, corpus)


def carve_dev(ds: Dataset, n_queries: int | float, seed: int = 0, source: str = "train") -> Dataset:
    """A copy of ``ds`` where a seeded subset of ``source`` queries (a count, or a fraction if float) forms "dev".

    The queries leave ``source``, so training never sees them; "test" is never touched and ``ds`` is
    not modified. A dataset that already has a "dev" split is an InputError: its dev set is kept.
    """
    if "dev" in ds.qrels:
        raise InputError("already has a 'dev' split", ds.path)
    judged = ds.split(source)
    qids = sorted(judged)
    fraction = isinstance(n_queries, float)
    n = max(1, round(n_queries * len(qids))) if fraction else n_queries
    if not 0 < n < len(qids) or fraction and not 0 < n_queries < 1:
        raise InputError(f"cannot move {n_queries} of {len(qids)} {source!r} queries to 'dev' (keep at least one)", ds.path)
    picked = set(random.Random(seed).sample(qids, n))
    qrels = {**ds.qrels, source: {q: d for q, d in judged.items() if q not in picked}}
    qrels["dev"] = {q: d for q, d in judged.items() if q in picked}
    return dataclasses.replace(ds, qrels=qrels)
