"""Corpus embeddings, encoded once per (model, corpus, max_seq_length) and kept on disk.

Mining, evaluation, the guard and later stages all ask for the same matrix; only the first caller
pays for encoding. Rows follow ``sorted(ds.corpus)``, the order ``corpus_fingerprint`` hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from syneg_dspy.data.dataset import Dataset
from syneg_dspy.env import cache_dir as syneg_cache_dir
from syneg_dspy.retrieval.encoder import model_id
from syneg_dspy.store import atomic_path, write_json

BATCH_SIZE = 64  # CPU: large enough to amortise overhead, small enough that padding to the longest text stays cheap


@dataclass
class CorpusEmbeddings:
    """``matrix[i]`` is the float32, L2-normalised embedding of ``doc_ids[i]``."""

    doc_ids: list[str]
    matrix: np.ndarray
    path: Path
    encoded: bool  # False when read from the cache

    def row_of(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.doc_ids)}


def default_cache_dir() -> Path:
    return syneg_cache_dir() / "embeddings"


def cache_path(encoder: SentenceTransformer, ds: Dataset, cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / model_id(encoder) / f"{ds.corpus_fingerprint()}-L{encoder.max_seq_length}.npy"


def corpus_embeddings(
    encoder: SentenceTransformer,
    ds: Dataset,
    cache_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    show_progress: bool = True,
) -> CorpusEmbeddings:
    """The corpus matrix for ``encoder``: from the cache if present, else encoded and cached atomically."""
    doc_ids = sorted(ds.corpus)
    path = cache_path(encoder, ds, cache_dir)
    if path.exists():
        return CorpusEmbeddings(doc_ids, np.load(path), path, encoded=False)
    matrix = encoder.encode_document(
        [ds.doc_text(d) for d in doc_ids],
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress,
    ).astype(np.float32, copy=False)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.save(f, matrix)
    write_json(path.with_suffix(".json"), {"model": path.parent.name, "data": ds.path or ds.name, "docs": len(doc_ids)})
    return CorpusEmbeddings(doc_ids, matrix, path, encoded=True)


def encode_queries(
    encoder: SentenceTransformer, texts: list[str], batch_size: int = BATCH_SIZE, show_progress: bool = False
) -> np.ndarray:
    """Query embeddings (not cached: queries are few and short), normalised like the corpus."""
    return encoder.encode_query(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress,
    ).astype(np.float32, copy=False)
