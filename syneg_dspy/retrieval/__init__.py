"""Encoders, the on-disk corpus-embedding cache, and the dense (faiss) and lexical (bm25s) indexes."""

from syneg_dspy.retrieval.bm25 import BM25Index
from syneg_dspy.retrieval.dense import DenseIndex
from syneg_dspy.retrieval.embeddings import CorpusEmbeddings, corpus_embeddings, encode_queries
from syneg_dspy.retrieval.encoder import embedded_model_path, load_encoder, model_id

__all__ = [
    "BM25Index",
    "CorpusEmbeddings",
    "DenseIndex",
    "corpus_embeddings",
    "embedded_model_path",
    "encode_queries",
    "load_encoder",
    "model_id",
]
