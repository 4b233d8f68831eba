"""Corpus embeddings, encoded once per (model, corpus, max_seq_length, precision) and kept on disk.

Mining, evaluation, the guard and later stages all ask for the same matrix; only the first caller
pays for encoding. Rows follow ``sorted(ds.corpus)``, the order ``corpus_fingerprint`` hashes.

A corpus larger than ``shard_size`` docs is encoded shard by shard: each shard is saved atomically in
a folder beside the final file, so a killed encoding resumes with the shards it has not finished, and
the final ``.npy`` (the same path and contents as unsharded) is assembled at the end. ``processes > 1``
spreads the encoding over sentence-transformers' own multi-process pool. ``bf16=True`` encodes under
bfloat16 autocast: 2.2x faster on CPUs with AMX (cosine to fp32 > 0.9999, bench/RESULTS.md), cached apart.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from syneg_dspy.data.dataset import Dataset
from syneg_dspy.env import cache_dir as syneg_cache_dir
from syneg_dspy.errors import InputError
from syneg_dspy.retrieval.encoder import model_id
from syneg_dspy.store import atomic_path, write_json

BATCH_SIZE = 64  # CPU: large enough to amortise overhead, small enough that padding to the longest text stays cheap
SHARD_SIZE = 50_000  # docs per shard: minutes of CPU encoding, ~75 MiB of float32 at 384 dims


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


def cache_path(
    encoder: SentenceTransformer, ds: Dataset, cache_dir: str | Path | None = None, bf16: bool = False
) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / model_id(encoder) / f"{ds.corpus_fingerprint()}-L{encoder.max_seq_length}{'-bf16' if bf16 else ''}.npy"


def precision(bf16: bool):
    """The context to encode in: bfloat16 autocast on CPU, or nothing (fp32)."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def shard_dir(path: Path, shard_size: int) -> Path:
    """Where the shards of the cache file ``path`` go; the shard size is in the name, so shards of
    another size are never mixed in."""
    return path.with_name(f"{path.stem}.shards-{shard_size}")


def corpus_embeddings(
    encoder: SentenceTransformer,
    ds: Dataset,
    cache_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    show_progress: bool = True,
    shard_size: int = SHARD_SIZE,
    processes: int = 1,
    bf16: bool = False,
) -> CorpusEmbeddings:
    """The corpus matrix for ``encoder``: from the cache if present, else encoded and cached atomically.

    Corpora above ``shard_size`` docs are encoded in resumable shards; ``processes > 1`` encodes with a
    pool of that many CPU processes. Neither changes the cache path or the matrix.
    """
    if shard_size < 1 or processes < 1:
        raise InputError(f"shard_size and processes must be at least 1, got {shard_size} and {processes}")
    if bf16 and processes > 1:  # autocast is per process: the pool's workers would encode in fp32
        raise InputError("bf16 encoding runs in one process; drop processes or bf16")
    doc_ids = sorted(ds.corpus)
    path = cache_path(encoder, ds, cache_dir, bf16)
    if path.exists():
        return CorpusEmbeddings(doc_ids, np.load(path), path, encoded=False)
    texts = [ds.doc_text(d) for d in doc_ids]
    pool = None

    def encode(chunk: list[str]) -> np.ndarray:
        nonlocal pool
        if processes > 1 and pool is None:  # started on first use: a resume with every shard done needs none
            pool = encoder.start_multi_process_pool(["cpu"] * processes)
        with precision(bf16):
            matrix = encoder.encode_document(
                chunk, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=show_progress, pool=pool,
            )
        return matrix.astype(np.float32, copy=False)

    try:
        if len(texts) <= shard_size:
            matrix = encode(texts)
        else:
            matrix = _encode_in_shards(encode, texts, shard_dir(path, shard_size), shard_size)
    finally:
        if pool is not None:
            encoder.stop_multi_process_pool(pool)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.save(f, matrix)
    write_json(path.with_suffix(".json"), {"model": path.parent.name, "data": ds.path or ds.name, "docs": len(doc_ids)})
    shutil.rmtree(shard_dir(path, shard_size), ignore_errors=True)
    return CorpusEmbeddings(doc_ids, matrix, path, encoded=True)


def _encode_in_shards(encode, texts: list[str], folder: Path, shard_size: int) -> np.ndarray:
    """Encode the shards not yet in ``folder`` (each saved atomically), then stack all of them in order.

    A shard file that does not load or has the wrong number of rows is encoded again.
    """
    shards = []
    for start in range(0, len(texts), shard_size):
        chunk = texts[start : start + shard_size]
        file = folder / f"{start // shard_size:05d}.npy"
        matrix = _load_shard(file, len(chunk))
        if matrix is None:
            matrix = encode(chunk)
            with atomic_path(file) as tmp, tmp.open("wb") as f:
                np.save(f, matrix)
        shards.append(matrix)
    return np.concatenate(shards)


def _load_shard(file: Path, rows: int) -> np.ndarray | None:
    try:
        matrix = np.load(file)
    except (OSError, ValueError):
        return None
    return matrix if matrix.ndim == 2 and len(matrix) == rows else None


def encode_queries(
    encoder: SentenceTransformer,
    texts: list[str],
    batch_size: int = BATCH_SIZE,
    show_progress: bool = False,
    bf16: bool = False,
) -> np.ndarray:
    """Query embeddings (not cached: queries are few and short), normalised like the corpus."""
    with precision(bf16):
        matrix = encoder.encode_query(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
    return matrix.astype(np.float32, copy=False)
