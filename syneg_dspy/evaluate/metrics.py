"""BEIR-style retrieval metrics with pytrec_eval: nDCG@10, MRR@10, Recall@k, MAP over the top-k run."""

from __future__ import annotations

from pathlib import Path

import pytrec_eval
from sentence_transformers import SentenceTransformer

from syneg_dspy.data.dataset import Dataset
from syneg_dspy.errors import InputError
from syneg_dspy.retrieval.dense import DenseIndex
from syneg_dspy.retrieval.embeddings import corpus_embeddings, encode_queries
from syneg_dspy.retrieval.encoder import load_encoder, model_id

Run = dict[str, dict[str, float]]


def score_run(qrels: dict[str, dict[str, int]], run: Run, k: int = 100) -> dict:
    """Mean metrics over the judged queries present in ``run``; grades > 0 count as relevant.

    MRR@10 is pytrec_eval's ``recip_rank`` on the run cut to its 10 best docs (BEIR's MRR@10).
    """
    run = {q: docs for q, docs in run.items() if q in qrels}
    if not run:
        raise InputError("no judged query has a retrieval result")
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", f"recall.{k}", "map"}).evaluate(run)
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)

    def mean(results: dict, measure: str) -> float:
        return sum(r[measure] for r in results.values()) / len(results)

    return {
        "ndcg@10": mean(full, "ndcg_cut_10"),
        "mrr@10": mean(rr, "recip_rank"),
        f"recall@{k}": mean(full, f"recall_{k}"),
        "map": mean(full, "map"),
        "n_queries": len(full),
    }


def ndcg_per_query(qrels: dict[str, dict[str, int]], run: Run) -> dict[str, float]:
    """nDCG@10 of each judged query in ``run`` (their mean is ``score_run``'s ``ndcg@10``)."""
    run = {q: docs for q, docs in run.items() if q in qrels}
    if not run:
        raise InputError("no judged query has a retrieval result")
    return {q: r["ndcg_cut_10"] for q, r in pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run).items()}


def retrieve(
    encoder: SentenceTransformer,
    ds: Dataset,
    qids: list[str],
    k: int = 100,
    index: str = "flat",
    cache_dir=None,
    bf16: bool = False,
) -> Run:
    """Top-``k`` docs per query by cosine; a doc whose id equals the query id is skipped (BEIR)."""
    emb = corpus_embeddings(encoder, ds, cache_dir=cache_dir, bf16=bf16)
    scores, ids = DenseIndex(emb.matrix, emb.doc_ids, index=index).search(
        encode_queries(encoder, [ds.queries[q] for q in qids], bf16=bf16), k + 1
    )
    run = {}
    for qid, row_scores, row_ids in zip(qids, scores, ids):
        hits = [(d, float(s)) for d, s in zip(row_ids, row_scores) if d is not None and d != qid]
        run[qid] = dict(hits[:k])
    return run


def evaluate(
    encoder: SentenceTransformer | str | Path | None,
    ds: Dataset,
    split: str = "test",
    k: int = 100,
    index: str = "flat",
    cache_dir: str | Path | None = None,
    bf16: bool = False,
) -> dict:
    """``{split, ndcg@10, mrr@10, recall@k, map, n_queries, model, data, precision}`` for ``encoder`` on ``ds``'s ``split``.

    ``bf16=True`` encodes under bfloat16 autocast (faster on AMX CPUs; its embeddings are cached apart)."""
    if k < 10:
        raise InputError(f"k must be at least 10 (nDCG@10 and MRR@10 need 10 results), got {k}")
    qrels = ds.split(split)
    missing = [q for q in qrels if q not in ds.queries]
    if missing:
        raise InputError(f"split {split!r} judges {len(missing)} queries with no text, e.g. {missing[0]!r}", ds.path)
    encoder = load_encoder(encoder)
    run = retrieve(encoder, ds, list(qrels), k=k, index=index, cache_dir=cache_dir, bf16=bf16)
    return {"split": split, **score_run(qrels, run, k), "model": model_id(encoder), "data": ds.path or ds.name,
            "precision": "bf16" if bf16 else "fp32"}
