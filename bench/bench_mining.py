"""Retrieved-negative mining: sentence-transformers' ``mine_hard_negatives`` vs syneg, cold and warm cache.

Same model (the embedded all-MiniLM-L6-v2), same settings (ranks 10-50, relative margin 0.05, one
negative, top sampling, exact inner-product search), one process, one loaded model:

  (a) st    ``sentence_transformers.util.mine_hard_negatives`` (use_faiss=True, its recommended setup)
  (b) cold  ``syneg_dspy.mine.mine_negatives`` with an empty embedding cache (encodes the corpus)
  (c) warm  the same with the cache (b) filled: only the queries are encoded

Columns: ``wall s``, the median of ``--repeats``; ``x ST``, that over sentence-transformers' median;
``RSS +MiB``, the peak resident memory above the RSS before the call (sampled every 10 ms);
``pairs``, the (query, positive) pairs that got a negative.

Agreement compares, per (query, positive) pair, the negative each side chose: the ``same`` doc, an
exact ``tie`` in score (either pick is right), or ``differ``. syneg also excludes docs judged
non-relevant for the query (sentence-transformers only knows the positives); pairs of queries that
have such docs are counted apart (``extra_judged``), as their negatives may legitimately differ.

  python bench/bench_mining.py --data ../shared/datasets/scifact --repeats 3
  python bench/bench_mining.py --data syneg_dspy/sample/scifact --repeats 1     # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil

import syneg_dspy  # noqa: F401  (offline switches first)
from syneg_dspy.data import load_dataset
from syneg_dspy.mine import mine_negatives
from syneg_dspy.retrieval import load_encoder

SETTINGS = {"range_min": 10, "range_max": 50, "relative_margin": 0.05, "n": 1}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


class PeakRSS:
    """Highest resident set size seen while the block runs, above the RSS at its start (bytes)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.delta = self.peak - self.base


def st_mine(ds, split, encoder):
    """sentence-transformers' miner on the same pairs and corpus texts; returns {(anchor, positive): (text, score)}."""
    from datasets import Dataset as HFDataset
    from sentence_transformers.util import mine_hard_negatives

    pairs = ds.positives(split)
    pair_ds = HFDataset.from_dict({"anchor": [ds.queries[q] for q, _ in pairs], "positive": [ds.doc_text(d) for _, d in pairs]})
    out = mine_hard_negatives(
        pair_ds, encoder, corpus=[ds.doc_text(d) for d in sorted(ds.corpus)], range_min=SETTINGS["range_min"],
        range_max=SETTINGS["range_max"], relative_margin=SETTINGS["relative_margin"], num_negatives=SETTINGS["n"],
        sampling_strategy="top", output_format="n-tuple", output_scores=True, use_faiss=True, verbose=False,
    )
    return {(r["anchor"], r["positive"]): (r["negative_1"], r["scores"][1]) for r in out}


def syneg_mine(ds, split, encoder, cache_dir):
    rows = mine_negatives(ds, split, encoder, sampling="top", cache_dir=cache_dir, show_progress=False, **SETTINGS)
    return {(ds.queries[r["qid"]], ds.doc_text(r["pos_id"])): (r["text"], r["score"]) for r in rows}


def agreement(ds, split, ours: dict, theirs: dict) -> dict:
    extra_judged = {
        ds.queries[q] for q, docs in ds.split(split).items()
        if any(g <= 0 for g in docs.values()) or any(q in other for name, other in ds.qrels.items() if name != split)
    }
    counts = dict.fromkeys(("same", "tie", "differ", "only_st", "only_syneg", "extra_judged"), 0)
    for key in theirs.keys() | ours.keys():
        if key[0] in extra_judged:
            counts["extra_judged"] += 1
        elif key not in ours:
            counts["only_st"] += 1
        elif key not in theirs:
            counts["only_syneg"] += 1
        elif ours[key][0] == theirs[key][0]:
            counts["same"] += 1
        elif abs(ours[key][1] - theirs[key][1]) < 1e-5:
            counts["tie"] += 1
        else:
            counts["differ"] += 1
    return counts


def limit_queries(ds, split, n):
    """The first ``n`` queries of ``split`` (full corpus: encoding the corpus is the cost being measured)."""
    judged = ds.split(split)
    return dataclasses.replace(ds, qrels={**ds.qrels, split: dict(list(judged.items())[:n])})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="train")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="only the first N queries of the split (smoke runs)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    ds = load_dataset(args.data)
    if args.limit:
        ds = limit_queries(ds, args.split, args.limit)
    encoder = load_encoder()  # loaded once, outside every timing
    times = {"st": [], "cold": [], "warm": []}
    memory = {"st": [], "cold": [], "warm": []}
    results = {}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="syneg-bench-") as cache:
            for variant in ("st", "cold", "warm"):
                start = time.perf_counter()
                with PeakRSS() as rss:
                    results[variant] = st_mine(ds, args.split, encoder) if variant == "st" else syneg_mine(ds, args.split, encoder, cache)
                times[variant].append(time.perf_counter() - start)
                memory[variant].append(rss.delta)

    st_time = statistics.median(times["st"])
    pairs = len(ds.positives(args.split))
    table = Table(title=f"mining {args.split} of {ds.name}: {pairs} pairs, {len(ds.corpus)} docs, {args.repeats} repeat(s), "
                  f"range 10-50, relative margin 0.05, n=1, top")
    for column in ("variant", "wall s", "x ST", "RSS +MiB", "pairs"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    labels = {"st": "sentence-transformers", "cold": "syneg cold", "warm": "syneg warm"}
    for variant, label in labels.items():
        t = statistics.median(times[variant])
        table.add_row(label, f"{t:.2f}", f"{t / st_time:.2f}", f"{statistics.median(memory[variant]) / 2**20:.0f}", str(len(results[variant])))
    console = Console(width=100)
    console.print(table)

    agree = agreement(ds, args.split, results["warm"], results["st"])
    compared = agree["same"] + agree["tie"] + agree["differ"]
    t2 = Table(title="agreement with sentence-transformers, per (query, positive) pair")
    for column in agree:
        t2.add_column(column, justify="right")
    t2.add_column("agree", justify="right")
    t2.add_row(*map(str, agree.values()), f"{(agree['same'] + agree['tie']) / max(compared, 1):.1%}")
    console.print(t2)


if __name__ == "__main__":
    main()
