"""Retrieved hard negatives: the baseline SyNeg improves on, and the pool the hybrid mixer draws from.

Selection follows ``sentence_transformers.util.mine_hard_negatives`` so results are comparable:
each query's candidate pool is its top ``range_max + J`` docs by raw score (``J``: the most judged
docs any query has); docs judged for the query (any grade, any split) and docs too close to the
positive are removed; the survivors ranked ``range_min .. range_max-1`` form the window; ``top``
takes the first ``n`` of it, ``random`` samples ``n`` and keeps them in rank order. Margins compare
with the query's lowest-scoring positive ("harder positive"), in the source's own score space:
``margin``: ``neg <= pos - margin``; ``relative_margin``: ``neg <= pos - |pos| * relative_margin``
(NV-Retriever's TopK-PercPos is ``relative_margin=0.05``). A query with several positives gets the
same negatives for each (query, positive) pair, one row set per pair.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from syneg_dspy.data.dataset import Dataset
from syneg_dspy.errors import InputError
from syneg_dspy.retrieval.bm25 import BM25Index
from syneg_dspy.retrieval.dense import DenseIndex
from syneg_dspy.retrieval.embeddings import SHARD_SIZE, corpus_embeddings, encode_queries
from syneg_dspy.retrieval.encoder import load_encoder

SOURCES = ("dense", "bm25")
SAMPLINGS = ("top", "random")
DEEP_RANK = 1000  # deepen(): with the 5 % margin, 914 of 919 SciFact train pairs get a negative this deep (779 by rank 50)

# (candidate scores, candidate ids) for all queries, and the score of one (query index, doc id)
Retrieved = tuple[np.ndarray, np.ndarray, Callable[[int, str], float]]


def mine_negatives(
    ds: Dataset,
    split: str,
    encoder: SentenceTransformer | str | Path | None = None,
    sources: Sequence[str] = ("dense",),
    n: int = 1,
    range_min: int = 10,
    range_max: int = 50,
    margin: float | None = None,
    relative_margin: float | None = None,
    sampling: str = "top",
    seed: int = 0,
    index: str = "flat",
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
    shard_size: int = SHARD_SIZE,
    processes: int = 1,
) -> list[dict]:
    """Rows ``{qid, pos_id, doc_id, text, source, rank, score, pos_score}``, up to ``n`` per (query, positive).

    ``rank`` is the 0-based position among the query's surviving candidates for that source (the list
    the window indexes), so ``range_min <= rank < range_max``. With both sources the two windows are
    interleaved (dense first) and deduplicated before picking. BM25 never offers a doc scoring 0.
    ``shard_size`` and ``processes`` go to :func:`corpus_embeddings` (resumable shards, a process pool).
    """
    _check(sources, n, range_min, range_max, sampling)
    pairs = ds.positives(split)
    positives: dict[str, list[str]] = {}
    for qid, pos_id in pairs:
        positives.setdefault(qid, []).append(pos_id)
    qids = list(positives)
    missing = [q for q in qids if q not in ds.queries]
    if missing:
        raise InputError(f"split {split!r} judges {len(missing)} queries with no text, e.g. {missing[0]!r}", ds.path)
    judged = {q: {d for qrels in ds.qrels.values() for d in qrels.get(q, {})} for q in qids}
    depth = range_max + max((len(j) for j in judged.values()), default=0)

    windows = {}
    for source in sources:
        if source == "dense":
            emb_options = dict(cache_dir=cache_dir, show_progress=show_progress, shard_size=shard_size, processes=processes)
            retrieved = _dense(ds, qids, load_encoder(encoder), depth, index, emb_options)
        else:
            retrieved = _bm25(ds, qids, depth)
        windows[source] = _windows(source, qids, positives, judged, retrieved, range_min, range_max, margin, relative_margin)

    rows = []
    for qid in qids:
        candidates = _interleave([windows[s][qid][0] for s in sources])
        picked = _pick(candidates, n, sampling, random.Random(f"{seed}:{qid}"))
        for pos_id in positives[qid]:
            for c in picked:
                pos_score = windows[c["source"]][qid][1][pos_id]
                rows.append(
                    {
                        "qid": qid,
                        "pos_id": pos_id,
                        "doc_id": c["doc_id"],
                        "text": ds.doc_text(c["doc_id"]),
                        "source": c["source"],
                        "rank": c["rank"],
                        "score": c["score"],
                        "pos_score": pos_score,
                    }
                )
    return rows


def deepen(rows: Sequence[dict], ds: Dataset, split: str, encoder=None, depth: int = DEEP_RANK, **options) -> list[dict]:
    """``rows`` plus, for each pair of ``split`` they leave without a negative, the rows the same mining
    (``options``, as given to :func:`mine_negatives`) finds when its window runs down to rank ``depth``.

    What ``rewrite_mined`` edits: a pair whose positive scores low keeps few candidates under the margin
    among the top 50 (127 of 802 SciFact train pairs at 5 %), and without a source it falls back to free
    writing, which the 0.5B fails. Deeper candidates are easier, but an edit of one is a one-call negative.
    """
    have = {(r["qid"], r["pos_id"]) for r in rows}
    if all(pair in have for pair in ds.positives(split)):
        return list(rows)
    options = {**options, "range_max": max(depth, options.get("range_max", depth)), "show_progress": False}
    return [*rows, *(r for r in mine_negatives(ds, split, encoder, **options) if (r["qid"], r["pos_id"]) not in have)]


def _check(sources, n, range_min, range_max, sampling) -> None:
    if not sources or any(s not in SOURCES for s in sources):
        raise InputError(f"sources must be a non-empty subset of {SOURCES}, got {tuple(sources)}")
    if sampling not in SAMPLINGS:
        raise InputError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    if not 0 <= range_min < range_max:
        raise InputError(f"need 0 <= range_min < range_max, got {range_min} and {range_max}")
    if n > range_max - range_min:
        raise InputError(f"cannot pick {n} negatives from a window of {range_max - range_min} ranks")


def _dense(ds, qids, encoder, depth, index, emb_options: dict) -> Retrieved:
    emb = corpus_embeddings(encoder, ds, **emb_options)
    queries = encode_queries(encoder, [ds.queries[q] for q in qids])
    scores, ids = DenseIndex(emb.matrix, emb.doc_ids, index=index).search(queries, depth)
    row = emb.row_of()
    return scores, ids, lambda qi, doc_id: float(queries[qi] @ emb.matrix[row[doc_id]])


def _bm25(ds, qids, depth) -> Retrieved:
    bm25 = BM25Index.from_dataset(ds)
    texts = [ds.queries[q] for q in qids]
    scores, ids = bm25.search(texts, depth)
    ids = np.where(scores > 0, ids, None)  # a doc sharing no term with the query is random, not a hard negative
    row = {d: i for i, d in enumerate(bm25.doc_ids)}
    full = {}  # one full score vector per query, computed on demand

    def pos_score(qi: int, doc_id: str) -> float:
        if qi not in full:
            full[qi] = bm25.scores(texts[qi])
        return float(full[qi][row[doc_id]])

    return scores, ids, pos_score


def _windows(source, qids, positives, judged, retrieved: Retrieved, range_min, range_max, margin, relative_margin):
    """Per query: (window candidates, {pos_id: pos_score})."""
    scores, ids, score_of = retrieved
    out = {}
    for qi, qid in enumerate(qids):
        pos_scores = {p: score_of(qi, p) for p in positives[qid]}
        ref = np.float32(min(pos_scores.values()))
        survivors = [
            (d, s)
            for d, s in zip(ids[qi], scores[qi])
            if d is not None
            and d not in judged[qid]
            and (margin is None or not s + margin > ref)
            and (relative_margin is None or not s > ref - abs(ref) * relative_margin)
        ]
        window = [
            {"doc_id": d, "source": source, "rank": r, "score": float(s)}
            for r, (d, s) in enumerate(survivors[:range_max])
            if r >= range_min
        ]
        out[qid] = (window, pos_scores)
    return out


def _interleave(windows: list[list[dict]]) -> list[dict]:
    """Round-robin over the sources' windows, keeping each doc's first appearance."""
    out, seen = [], set()
    for i in range(max((len(w) for w in windows), default=0)):
        for w in windows:
            if i < len(w) and w[i]["doc_id"] not in seen:
                seen.add(w[i]["doc_id"])
                out.append(w[i])
    return out


def _pick(candidates: list[dict], n: int, sampling: str, rng: random.Random) -> list[dict]:
    if sampling == "top" or len(candidates) <= n:
        return candidates[:n]
    return [candidates[i] for i in sorted(rng.sample(range(len(candidates)), n))]
