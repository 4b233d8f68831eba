"""The metric a SyNeg program is compiled for: how much its negatives improve a retriever on a dev split.

A real fine-tune per candidate program costs minutes of CPU (and the dev corpus re-encoded); this one
costs seconds. It trains a residual linear adapter, ``f(x) = normalize(x + x·A)``, shared by queries and
passages, on top of the frozen base encoder's cached embeddings, with the same in-batch contrastive loss
as MultipleNegativesRankingLoss (scale 20), then ranks the whole corpus for the dev queries.

    gain = dev nDCG@10 (adapter trained on the hybrid mix of the candidate's negatives)
         − dev nDCG@10 (the same adapter, pairs, order and seeds, trained on retrieved negatives only)

Both mixes come from the real hybrid sampler with the same seed, so they differ only in the slots where
a synthetic negative was drawn, and in the pairs only a synthetic negative brings into training. Batches
are cut from a seeded order of all train pairs, each pair keeping its place (a pair without a negative
leaves a gap), so such a pair changes its own batch, not the composition of every later one (four such
pairs among SciFact's 802 moved 36 of 100 dev queries with the order re-cut around them, 25 with the gaps;
the rest is what training on four more pairs does). ``bench/bench_metric.py`` checks that this ranks
negative pools the way full fine-tuning does. The gain is also kept per dev query, so that two
candidates can be compared with a paired test over the dev queries (``GainSelect``): a handful of
negatives among hundreds of pairs moves a few queries, and a difference carried by two queries is not
evidence.

Inputs: a Dataset with the train and dev splits, the retrieved negatives of the train pairs (rows of
``syneg mine``) and an encoder. Call it with synthetic rows (rows of ``syneg generate``; only accepted
ones count). Output: a :class:`GainResult`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from syneg_dspy.data.dataset import Dataset
from syneg_dspy.errors import InputError
from syneg_dspy.evaluate.metrics import ndcg_per_query
from syneg_dspy.mix import mix_negatives
from syneg_dspy.retrieval.embeddings import corpus_embeddings, encode_queries
from syneg_dspy.retrieval.encoder import load_encoder

SCALE = 20.0  # MultipleNegativesRankingLoss's default similarity scale


@dataclass
class GainResult:
    gain: float  # mean over seeds of hybrid − retrieved-only dev nDCG@10
    hybrid_ndcg: float
    retrieved_ndcg: float
    zero_shot_ndcg: float
    synthetic_share: float  # of negative slots in the hybrid mix
    accepted_synthetic: int
    per_seed: list[float] = field(default_factory=list)
    per_query: dict[str, float] = field(default_factory=dict)  # dev qid → gain, mean over seeds

    def to_dict(self) -> dict:
        return asdict(self)


class RetrieverGain:
    """``metric(synthetic_rows) -> GainResult``; everything but the synthetic texts is encoded once.

    ``ratio`` is the hybrid sampler's synthetic probability; ``seeds`` average out the adapter's
    initial order (the gain of one seed is the paired difference of two runs with that seed).
    """

    def __init__(
        self,
        ds: Dataset,
        retrieved_rows: Sequence[dict],
        *,
        encoder=None,
        train_split: str = "train",
        dev_split: str = "dev",
        ratio: float = 0.5,
        seeds: Sequence[int] = (0, 1, 2),
        epochs: int = 3,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        k: int = 100,
    ):
        self.ds, self.retrieved = ds, list(retrieved_rows)
        self.pairs = ds.positives(train_split)
        self.place = {pair: k for k, pair in enumerate(self.pairs)}
        self.dev = ds.split(dev_split)
        if not self.pairs or not self.dev:
            raise InputError(f"the retriever gain needs {train_split!r} pairs and {dev_split!r} queries", ds.path)
        if not self.retrieved:
            raise InputError("the retriever gain needs retrieved negatives for the train pairs", ds.path)
        self.ratio, self.seeds, self.epochs, self.batch_size = ratio, tuple(seeds), epochs, batch_size
        self.lr, self.weight_decay, self.k = lr, weight_decay, k
        self.encoder = load_encoder(encoder)
        emb = corpus_embeddings(self.encoder, ds, show_progress=False)
        self.doc_ids, self.docs = emb.doc_ids, torch.from_numpy(emb.matrix)
        self.row = emb.row_of()
        qids = sorted({q for q, _ in self.pairs} | set(self.dev))
        self.qrow = {q: i for i, q in enumerate(qids)}
        self.queries = torch.from_numpy(encode_queries(self.encoder, [ds.queries[q] for q in qids]))
        self._texts: dict[str, torch.Tensor] = {}  # synthetic text → base embedding
        self._baseline: dict[int, dict[str, float]] = {}  # seed → retrieved-only dev nDCG@10 per query
        self.zero_shot = _mean(self._dev_ndcg(None))

    def __call__(self, synthetic_rows: Sequence[dict]) -> GainResult:
        accepted = [r for r in synthetic_rows if r.get("verdict") == "accepted"]
        hybrid, retrieved, shares = [], [], []
        for seed in self.seeds:
            if seed not in self._baseline:
                self._baseline[seed] = self._scores([], seed)[0]
            scores, share = self._scores(accepted, seed)
            hybrid.append(scores)
            retrieved.append(self._baseline[seed])
            shares.append(share)
        per_seed = [_mean(h) - _mean(r) for h, r in zip(hybrid, retrieved)]
        per_query = {q: float(np.mean([h[q] - r[q] for h, r in zip(hybrid, retrieved)])) for q in hybrid[0]}
        return GainResult(
            gain=float(np.mean(per_seed)),
            hybrid_ndcg=float(np.mean([_mean(h) for h in hybrid])),
            retrieved_ndcg=float(np.mean([_mean(r) for r in retrieved])),
            zero_shot_ndcg=self.zero_shot,
            synthetic_share=float(np.mean(shares)),
            accepted_synthetic=len(accepted),
            per_seed=per_seed,
            per_query=per_query,
        )

    def train_and_score(self, synthetic_rows: Sequence[dict], seed: int, retrieved_rows=None) -> tuple[float, float]:
        """Dev nDCG@10 of an adapter trained on the hybrid mix, and the mix's synthetic share.

        ``retrieved_rows`` replaces the retrieved pool (bench_metric compares pools this way).
        """
        scores, share = self._scores(synthetic_rows, seed, retrieved_rows)
        return _mean(scores), share

    def _scores(self, synthetic_rows: Sequence[dict], seed: int, retrieved_rows=None) -> tuple[dict[str, float], float]:
        """``train_and_score`` with the dev nDCG@10 of each query."""
        pool = self.retrieved if retrieved_rows is None else list(retrieved_rows)
        mix = mix_negatives(self.pairs, list(synthetic_rows), pool, n=1, ratio=self.ratio if synthetic_rows else 0.0,
                            seed=seed)
        if not mix.instances:
            raise InputError("no train pair has a negative to train the adapter on", self.ds.path)
        self._encode_texts([neg["text"] for inst in mix.instances for neg in inst.negatives
                            if neg.get("doc_id") not in self.row])
        q = self.queries[[self.qrow[i.qid] for i in mix.instances]]
        p = self.docs[[self.row[i.pos_id] for i in mix.instances]]
        n = torch.stack([self._negative(i.negatives[0]) for i in mix.instances])
        slots = torch.full((len(self.pairs),), -1, dtype=torch.long)  # pair's place → its instance, -1 for none
        slots[[self.place[(i.qid, i.pos_id)] for i in mix.instances]] = torch.arange(len(mix.instances))
        adapter = self._train(q, p, n, slots, seed)
        return self._dev_ndcg(adapter), mix.stats["synthetic_share"]

    def _negative(self, row: dict) -> torch.Tensor:
        doc = row.get("doc_id")
        return self.docs[self.row[doc]] if doc in self.row else self._texts[row["text"]]

    def _encode_texts(self, texts: list[str]) -> None:
        new = sorted({t for t in texts if t not in self._texts})
        if new:
            vectors = self.encoder.encode_document(new, normalize_embeddings=True, convert_to_numpy=True,
                                                   show_progress_bar=False).astype(np.float32)
            self._texts.update(zip(new, torch.from_numpy(vectors)))

    def _train(self, q: torch.Tensor, p: torch.Tensor, n: torch.Tensor, slots: torch.Tensor, seed: int) -> torch.Tensor:
        """The adapter matrix A after ``epochs`` of in-batch contrastive training (A starts at zero);
        ``slots`` maps each train pair's place to its row in q, p, n (-1: not trained on)."""
        gen = torch.Generator().manual_seed(seed)
        A = torch.zeros(q.shape[1], q.shape[1], requires_grad=True)
        opt = torch.optim.AdamW([A], lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.epochs):
            for idx in batches(slots, self.batch_size, gen):
                fq, fd = _apply(q[idx], A), _apply(torch.cat([p[idx], n[idx]]), A)
                loss = torch.nn.functional.cross_entropy(SCALE * fq @ fd.T, torch.arange(len(idx)))
                opt.zero_grad()
                loss.backward()
                opt.step()
        return A.detach()

    def _dev_ndcg(self, A: torch.Tensor | None) -> dict[str, float]:
        qids = list(self.dev)
        q = self.queries[[self.qrow[x] for x in qids]]
        with torch.no_grad():
            fq, fd = (q, self.docs) if A is None else (_apply(q, A), _apply(self.docs, A))
            scores = fq @ fd.T
            top = torch.topk(scores, min(self.k + 1, scores.shape[1]), dim=1)
        run = {}
        for qid, vals, idx in zip(qids, top.values.tolist(), top.indices.tolist()):
            hits = [(self.doc_ids[i], v) for i, v in zip(idx, vals) if self.doc_ids[i] != qid]  # BEIR skips self-hits
            run[qid] = dict(hits[: self.k])
        return ndcg_per_query(self.dev, run)


def batches(slots: torch.Tensor, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """One epoch's batches: a seeded order of all train pairs' places cut every ``batch_size``, each
    batch holding the rows (``slots[place]``) of the pairs that are trained on; -1 leaves a gap."""
    order = slots[torch.randperm(len(slots), generator=gen)]
    cut = (order[start:start + batch_size] for start in range(0, len(order), batch_size))
    return [idx[idx >= 0] for idx in cut if (idx >= 0).any()]


def _mean(per_query: dict[str, float]) -> float:
    return float(np.mean(list(per_query.values())))


def _apply(x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x + x @ A, dim=-1)
