"""What a dataset looks like before training on it: sizes, judgements per query, text lengths."""

from __future__ import annotations

import statistics

from syneg_dspy.data.dataset import Dataset


def _lengths(texts) -> dict[str, float]:
    """Length in words: mean / median / 95th percentile (0 for no texts)."""
    words = sorted(len(t.split()) for t in texts)
    if not words:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0}
    p95 = statistics.quantiles(words, n=20, method="inclusive")[-1] if len(words) > 1 else float(words[0])
    return {"mean": round(statistics.fmean(words), 2), "median": float(statistics.median(words)), "p95": round(p95, 2)}


def stats(ds: Dataset) -> dict:
    """Plain numbers (JSON-ready) for ``syneg data stats`` and reports."""
    splits = {}
    for name, judged in sorted(ds.qrels.items()):
        per_query = [len(docs) for docs in judged.values()]
        splits[name] = {
            "queries": len(judged),
            "pairs": sum(per_query),
            "relevant": sum(g > 0 for docs in judged.values() for g in docs.values()),
            "judged_per_query": {
                "mean": round(statistics.fmean(per_query), 2) if per_query else 0.0,
                "max": max(per_query, default=0),
            },
        }
    return {
        "name": ds.name,
        "path": ds.path,
        "docs": len(ds.corpus),
        "queries": len(ds.queries),
        "empty_titles": sum(not doc.get("title", "").strip() for doc in ds.corpus.values()),
        "doc_words": _lengths(ds.doc_text(d) for d in ds.corpus),
        "query_words": _lengths(ds.queries.values()),
        "splits": splits,
    }
