"""Does the compile metric rank negatives the way full fine-tuning does?

The metric (``optimizers/retriever_gain.py``) sees a program only through the negatives it writes, so it
is checked on negative pools whose quality differs: random, BM25, dense ranks 10–50 (the reference
setup), dense ranks 0–10 without a margin (many unjudged positives: false negatives), dense ranks
50–100 (easy). For each pool: the metric's dev nDCG@10 (adapter, mean of its seeds) and a full
sentence-transformers fine-tune on the same train pairs (1 epoch, batch 16, lr 2e-5, seed 0)
evaluated on dev and test. Prints both and Spearman's rho between the metric and full fine-tuning.

A dev split of ``--dev-queries`` is carved from train with ``--seed``; train pairs exclude it.
Results are cached per pool in ``WORK/``, so a rerun only trains what is missing.

    python bench/bench_metric.py --data ../shared/datasets/scifact
    python bench/bench_metric.py --dev-queries 20 --max-steps 2     # smoke test on the bundled sample
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import syneg_dspy  # noqa: E402,F401  (offline switches first)

POOLS = {  # name → mine_negatives options (None: random unjudged docs)
    "random": None,
    "bm25 10-50": dict(sources=("bm25",), range_min=10, range_max=50, relative_margin=0.05),
    "dense 10-50": dict(sources=("dense",), range_min=10, range_max=50, relative_margin=0.05),
    "dense 0-10": dict(sources=("dense",), range_min=0, range_max=10, relative_margin=None),
    "dense 50-100": dict(sources=("dense",), range_min=50, range_max=100, relative_margin=0.05),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="BEIR folder with a train split (default: bundled sample)")
    p.add_argument("--work", default="runs/bench_metric")
    p.add_argument("--dev-queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=-1, help="full fine-tune steps (-1: one epoch)")
    p.add_argument("--pools", nargs="*", default=list(POOLS))
    a = p.parse_args()

    from scipy.stats import spearmanr

    from bench.bench_quality import random_rows
    from optimizers.retriever_gain import RetrieverGain
    from syneg_dspy.data import carve_dev, load_dataset
    from syneg_dspy.evaluate import evaluate
    from syneg_dspy.mine import mine_negatives
    from syneg_dspy.mix import mix_negatives, save_mix
    from syneg_dspy.store import write_json
    from syneg_dspy.train import train

    ds = carve_dev(load_dataset(a.data), a.dev_queries, seed=a.seed)
    work = Path(a.work) / f"{ds.corpus_fingerprint()}-dev{a.dev_queries}-s{a.seed}"
    pairs = ds.positives("train")
    pools = {}
    for name in a.pools:
        opts = POOLS[name]
        pools[name] = random_rows(ds, "train", a.seed) if opts is None else mine_negatives(
            ds, "train", None, seed=a.seed, show_progress=False, **opts)
    metric = RetrieverGain(ds, pools.get("dense 10-50") or next(iter(pools.values())))
    rows = []
    for name, pool in pools.items():
        start = time.perf_counter()
        cheap = [metric.train_and_score([], s, retrieved_rows=pool)[0] for s in metric.seeds]
        cheap_s = time.perf_counter() - start
        out = work / f"{name.replace(' ', '_')}-steps{a.max_steps}.json"
        if out.exists():
            full = json.loads(out.read_text())
        else:
            run_dir = work / "train" / name.replace(" ", "_")
            mix = mix_negatives(pairs, [], pool, n=1, ratio=0.0, seed=a.seed)
            save_mix(mix, ds, run_dir / "mix")
            start = time.perf_counter()
            res = train(run_dir / "mix", out_dir=run_dir / "train", max_steps=a.max_steps, seed=a.seed)
            full = {"dev": evaluate(res.model_path, ds, "dev")["ndcg@10"],
                    "test": evaluate(res.model_path, ds, "test")["ndcg@10"] if "test" in ds.qrels else None,
                    "seconds": round(time.perf_counter() - start, 1), "instances": len(mix.instances)}
            write_json(out, full)
            shutil.rmtree(run_dir)
        rows.append({"pool": name, "metric": sum(cheap) / len(cheap), "metric_s": cheap_s / len(cheap), **full})

    print(f"\n{ds.name}: {len(pairs)} train pairs, {len(ds.split('dev'))} dev queries; zero-shot dev nDCG@10 "
          f"{metric.zero_shot:.4f}; metric = adapter dev nDCG@10, mean of seeds {list(metric.seeds)}\n")
    print("| negatives | metric (dev) | s per metric call | full fine-tune dev | full fine-tune test | fine-tune + eval s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        test = "–" if r["test"] is None else f"{r['test']:.4f}"
        print(f"| {r['pool']} | {r['metric']:.4f} | {r['metric_s']:.1f} | {r['dev']:.4f} | {test} | {r['seconds']:.0f} |")
    if len(rows) > 2:
        dev_rho = spearmanr([r["metric"] for r in rows], [r["dev"] for r in rows]).statistic
        line = f"\nSpearman rho, metric vs full fine-tune: dev {dev_rho:.2f}"
        if all(r["test"] is not None for r in rows):
            line += f", test {spearmanr([r['metric'] for r in rows], [r['test'] for r in rows]).statistic:.2f}"
        print(line + f" ({len(rows)} pools)")


if __name__ == "__main__":
    main()
