"""Nearest neighbours over normalised embeddings with faiss: exact by default, IVF or HNSW for big corpora."""

from __future__ import annotations

import math

import faiss
import numpy as np

from syneg_dspy.errors import InputError

INDEX_KINDS = ("flat", "ivf", "hnsw")


class DenseIndex:
    """Inner-product search (cosine, as rows are L2-normalised) returning doc ids.

    ``flat`` is exact. ``ivf`` clusters into ``nlist`` cells (default ~4·√N, at least 39 training
    points per cell) and scans ``nprobe`` of them; ``hnsw`` is a graph with ``M`` links per node,
    searched with ``ef_search`` candidates. Both trade a little recall for speed on large corpora.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        doc_ids: list[str],
        index: str = "flat",
        nlist: int | None = None,
        nprobe: int | None = None,
        M: int = 32,
        ef_search: int = 128,
    ):
        if index not in INDEX_KINDS:
            raise InputError(f"unknown index {index!r} (choose from {', '.join(INDEX_KINDS)})")
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        n, dim = embeddings.shape
        self.doc_ids = np.asarray(doc_ids, dtype=object)
        self.kind = index
        if index == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif index == "ivf":
            nlist = nlist or max(1, min(round(4 * math.sqrt(n)), n // 39))
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.train(embeddings)
            self.index.nprobe = min(nlist, nprobe or max(8, nlist // 10))
        else:
            self.index = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = max(2 * M, 80)
            self.ef_search = ef_search
        self.index.add(embeddings)

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, query_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, doc_ids)``, each ``(n_queries, k)``, best first; ``k`` is capped at the corpus size.

        An approximate index may find fewer than ``k``: those slots hold score ``-inf`` and id ``None``.
        """
        k = min(k, len(self))
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.ef_search, k)
        scores, idx = self.index.search(np.ascontiguousarray(query_emb, dtype=np.float32), k)
        missing = idx < 0
        scores[missing] = -np.inf
        ids = self.doc_ids[np.where(missing, 0, idx)]
        ids[missing] = None
        return scores, ids
