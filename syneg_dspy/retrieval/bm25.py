"""Lexical retrieval with bm25s: a second, differently-biased source of hard negatives."""

from __future__ import annotations

import bm25s
import numpy as np

from syneg_dspy.data.dataset import Dataset


def english_stemmer():
    """PyStemmer's Snowball English stemmer when installed, else None (bm25s then matches surface forms)."""
    try:
        import Stemmer
    except ImportError:
        return None
    return Stemmer.Stemmer("english")


class BM25Index:
    """BM25 (Lucene variant, bm25s defaults k1=1.5, b=0.75) over ``texts``, English stopwords removed."""

    def __init__(self, texts: list[str], doc_ids: list[str], stemmer="auto", stopwords: str | None = "en"):
        self.doc_ids = np.asarray(doc_ids, dtype=object)
        self.tokenizer = bm25s.tokenization.Tokenizer(
            stopwords=stopwords, stemmer=english_stemmer() if stemmer == "auto" else stemmer
        )
        self.retriever = bm25s.BM25()
        self.retriever.index(self.tokenizer.tokenize(list(texts), show_progress=False), show_progress=False)

    @classmethod
    def from_dataset(cls, ds: Dataset, **kw) -> "BM25Index":
        doc_ids = sorted(ds.corpus)
        return cls([ds.doc_text(d) for d in doc_ids], doc_ids, **kw)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def _tokens(self, queries: list[str]) -> list[list[int]]:
        # Words unseen in the corpus are dropped; an all-unknown query becomes the empty token (scores 0).
        return self.tokenizer.tokenize(list(queries), update_vocab=False, show_progress=False)

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, doc_ids)``, each ``(n_queries, k)``, best first; ``k`` is capped at the corpus size."""
        k = min(k, len(self))
        idx, scores = self.retriever.retrieve(self._tokens(queries), k=k, show_progress=False)
        return scores.astype(np.float32), self.doc_ids[idx]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every doc (row order of ``doc_ids``) for one query."""
        return self.retriever.get_scores_from_ids(self._tokens([query])[0]).astype(np.float32)
