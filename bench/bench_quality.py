"""Which negatives train the better retriever? Same backbone, seed and steps for every row; one process.

Rows: zero-shot; random negatives; BM25-mined; dense-mined; synthetic-only (ratio 1, falling back to
dense-mined where a pair has no accepted synthetic negative); hybrid r = 0.25 and 0.5. Metrics on
the test split, mean ± std over ``--seeds``. The LLM's negatives are generated once into
``WORK/generate/negatives.jsonl`` and reused (a rerun needs no LLM for the items already there);
each (row, seed) result is cached in ``WORK/results/``, so an interrupted run picks up where it stopped.

    python bench/bench_quality.py --data ../shared/datasets/scifact --gen-limit 200 --seeds 0 1 2
    python bench/bench_quality.py --max-steps 2 --seeds 0 --gen-limit 2      # smoke test on the sample
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import syneg_dspy  # noqa: E402,F401  (offline switches first)

METRICS = ("ndcg@10", "mrr@10", "recall@100")


def random_rows(ds, split: str, seed: int) -> list[dict]:
    """One unjudged corpus doc per pair, as a negative row (source "random")."""
    rng, ids = random.Random(seed), sorted(ds.corpus)
    rows = []
    for q, d in ds.positives(split):
        judged = {doc for qrels in ds.qrels.values() for doc in qrels.get(q, {})}
        doc = next(i for i in iter(lambda: rng.choice(ids), None) if i not in judged)
        rows.append({"qid": q, "pos_id": d, "doc_id": doc, "text": ds.doc_text(doc), "source": "random"})
    return rows


def cached(path: Path, make):
    if path.exists():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    from syneg_dspy.store import write_jsonl

    rows = make()
    write_jsonl(path, rows)
    return rows


def generate(ds, a, work: Path) -> list[dict]:
    from programs import SyNeg
    from syneg_dspy.generate import Guard, generate_negatives
    from syneg_dspy.lm import make_lm
    from syneg_dspy.retrieval.encoder import load_encoder
    from syneg_dspy.store import read_jsonl

    path = work / "generate" / "negatives.jsonl"
    if a.gen_limit == 0:
        return []
    generate_negatives(
        ds, "train", SyNeg(max_rounds=a.max_rounds), make_lm(a.lm, max_tokens=384), path,
        guard=Guard(load_encoder(a.base_model)), per_query=1, limit=a.gen_limit, seed=0, progress=True,
    )
    return read_jsonl(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="BEIR folder with train and test qrels (default: bundled sample)")
    p.add_argument("--work", default="runs/bench_quality", help="cache folder (mined/generated negatives, results)")
    p.add_argument("--base-model", default=None, help="encoder (default: embedded all-MiniLM-L6-v2)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--max-steps", type=int, default=None, help="steps per row (default: one epoch over the train pairs)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--gen-limit", type=int, default=50, help="train pairs that get an LLM negative (0: none)")
    p.add_argument("--lm", default="local/qwen2.5-coder-0.5b")
    p.add_argument("--max-rounds", type=int, default=1)
    p.add_argument("--relative-margin", type=float, default=0.05, help="mining: neg <= pos * (1 - F)")
    p.add_argument("--keep-models", action="store_true", help="keep each trained model (default: delete after evaluation)")
    a = p.parse_args()

    from syneg_dspy.data import load_dataset
    from syneg_dspy.evaluate import evaluate
    from syneg_dspy.mine import mine_negatives
    from syneg_dspy.mix import mix_negatives, save_mix
    from syneg_dspy.store import write_json
    from syneg_dspy.train import train

    ds = load_dataset(a.data)
    work = Path(a.work) / ds.corpus_fingerprint()
    pairs = ds.positives("train")
    steps = a.max_steps or math.ceil(len(pairs) / a.batch_size)
    tag = f"{Path(a.base_model).name if a.base_model else 'minilm'}-m{a.relative_margin}"  # what mining depends on
    mine = dict(range_min=10, range_max=50, relative_margin=a.relative_margin, show_progress=False)
    dense = cached(work / "mine" / f"dense-{tag}.jsonl", lambda: mine_negatives(ds, "train", a.base_model, sources=("dense",), **mine))
    bm25 = cached(work / "mine" / f"bm25-{tag}.jsonl", lambda: mine_negatives(ds, "train", a.base_model, sources=("bm25",), **mine))
    synthetic = generate(ds, a, work)
    accepted = sum(r["verdict"] == "accepted" for r in synthetic)

    rows = {  # name → (retrieved pool, ratio)
        "random": (None, 0.0),
        "BM25-mined": (bm25, 0.0),
        "dense-mined": (dense, 0.0),
        "synthetic-only": (dense, 1.0),
        "hybrid r=0.25": (dense, 0.25),
        "hybrid r=0.5": (dense, 0.5),
    }
    results: dict[str, list[dict]] = {"zero-shot": [evaluate(a.base_model, ds, "test")] * len(a.seeds)}
    for name, (pool, ratio) in rows.items():
        results[name] = []
        for seed in a.seeds:
            slug = name.replace(" ", "_").replace("=", "")
            out = work / "results" / f"{slug}-{tag}-s{seed}-steps{steps}-lr{a.lr}-bs{a.batch_size}-gen{a.gen_limit}.json"
            if out.exists():
                results[name].append(json.loads(out.read_text()))
                continue
            retrieved = pool if pool is not None else random_rows(ds, "train", seed)
            mix = mix_negatives(pairs, synthetic, retrieved, n=1, ratio=ratio, seed=seed)
            if not mix.instances:
                print(f"{name}: no pair has a negative (mining found none?); row left empty", file=sys.stderr)
                continue
            run_dir = work / "train" / f"{slug}-s{seed}"
            save_mix(mix, ds, run_dir / "mix")
            res = train(run_dir / "mix", out_dir=run_dir / "train", base_model=a.base_model, max_steps=steps,
                        batch_size=a.batch_size, lr=a.lr, warmup_ratio=0.1, seed=seed)
            metrics = {**evaluate(res.model_path, ds, "test"), "synthetic_share": mix.stats["synthetic_share"],
                       "instances": mix.stats["instances"], "steps": res.steps}
            write_json(out, metrics)
            results[name].append(metrics)
            if not a.keep_models:
                shutil.rmtree(run_dir / "train" / "model")

    def cell(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ± {sd:.4f}"

    print(f"\n{ds.name}: {len(pairs)} train pairs, {steps} steps × batch {a.batch_size}, lr {a.lr}, seeds {a.seeds}; "
          f"LLM negatives: {accepted} accepted of {len(synthetic)} ({a.lm}, first {a.gen_limit} pairs)\n")
    print("| negatives | synthetic share | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for name, runs in results.items():
        if not runs:
            print(f"| {name} | – | " + " | ".join("–" for _ in METRICS) + " |")
            continue
        share = statistics.mean(r.get("synthetic_share", 0.0) for r in runs)
        print(f"| {name} | {share:.3f} | " + " | ".join(cell([r[m] for r in runs]) for m in METRICS) + " |")


if __name__ == "__main__":
    main()
