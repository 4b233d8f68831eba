"""Which negatives train the better retriever? Same backbone, seed and steps for every row; one process.

Rows: zero-shot; random negatives; BM25-mined; dense-mined; then per generation strategy
(``--strategies``: generate, rewrite_mined, rewrite_positive, mixed) synthetic-only (ratio 1, falling
back to dense-mined where a pair has no accepted synthetic negative) and hybrid r = 0.25 and 0.5.
Metrics on the test split, mean ± std over ``--seeds``. A second table gives each strategy's
acceptance, LLM calls per accepted negative, source-shortcut AUC and, with ``--judge``, the leak rate
(share of accepted negatives the judge LM says answer their query; see bench_leak.py).

Each strategy's negatives are generated once into ``WORK/generate/<strategy>/negatives.jsonl`` for the
same first ``--gen-limit`` train pairs and reused (a rerun needs no LLM for the items already there);
each (row, seed) result is cached in ``WORK/results/``, so an interrupted run picks up where it stopped.

    python bench/bench_quality.py --data ../shared/datasets/scifact --gen-limit 200 --seeds 0 1 2 \
        --strategies generate rewrite_mined mixed --judge local/qwen2.5-coder-1.5b
    python bench/bench_quality.py --data ../shared/datasets/scifact --seeds 0 1 2 --strategies generate \
        rewrite_mined mixed --negatives generate=RUN_G rewrite_mined=RUN_R     # pools from `syneg generate`
    python bench/bench_quality.py --max-steps 2 --seeds 0 --gen-limit 2      # smoke test on the sample
"""

from __future__ import annotations

import argparse
import hashlib
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


def pool_hash(rows: list[dict]) -> str:
    """Names a synthetic pool in result file names: its accepted negatives, whoever generated them."""
    accepted = sorted((r["key"], r["text"]) for r in rows if r["verdict"] == "accepted")
    return hashlib.sha256(json.dumps(accepted).encode()).hexdigest()[:8] if accepted else "none"


def cached(path: Path, make):
    if path.exists():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    from syneg_dspy.store import write_jsonl

    rows = make()
    write_jsonl(path, rows)
    return rows


def generate(ds, a, work: Path, strategy: str, dense: list[dict]) -> tuple[list[dict], dict]:
    """One strategy's negatives for the first ``--gen-limit`` train pairs, and its generation summary."""
    from optimizers.mined_demos import with_mined_demos
    from programs import SyNeg
    from programs.attributes import parse_strategies
    from syneg_dspy.generate import Guard, generate_negatives, mined_sources
    from syneg_dspy.lm import critique_mined, make_lm
    from syneg_dspy.retrieval.encoder import load_encoder
    from syneg_dspy.store import read_jsonl

    def given(name: str) -> list[dict]:  # generated earlier by `syneg generate`: this strategy's rows of that file
        path = Path(a.negatives[name])
        rows = read_jsonl(path / "negatives.jsonl" if path.is_dir() else path)
        return rows if name == "mixed" else [r for r in rows if r["attributes"].get("strategy", "generate") == name]

    pooled = strategy == "mixed" and "mixed" not in a.negatives and len(a.negatives) > 1
    if strategy in a.negatives or pooled:
        from syneg_dspy.evaluate.separability import separability_by_strategy
        from syneg_dspy.generate.runner import summarize

        rows = pick_per_pair({name: given(name) for name in a.negatives}) if pooled else given(strategy)
        sep = separability_by_strategy(rows, [ds.doc_text(d) for d in ds.corpus], load_encoder(a.base_model))
        summary = summarize(rows, run_rows=rows, wall_s=sum(r.get("latency_s") or 0 for r in rows), domain=a.domain,
                            lm=rows[0]["lm"] if rows else a.lm, phash="", out=", ".join(a.negatives.values()),
                            separability=sep)
        return rows, summary.to_dict()
    path = work / "generate" / strategy / "negatives.jsonl"
    if a.gen_limit == 0:
        return [], {}
    program = with_mined_demos(SyNeg(max_rounds=a.max_rounds, critique_mined=critique_mined("auto", a.lm)), ds, dense,
                               k=a.demos)
    summary = generate_negatives(
        ds, "train", program, make_lm(a.lm, max_tokens=256), path, guard=Guard(load_encoder(a.base_model)),
        per_query=1, limit=a.gen_limit, seed=0, progress=True, strategies=parse_strategies(strategy),
        sources=mined_sources(dense), domain=a.domain,
    )
    return read_jsonl(path), summary.to_dict()


def pick_per_pair(pools: dict[str, list[dict]], seed: int = 0) -> list[dict]:
    """A mixed run from per-strategy runs over the same pairs: per pair, a seeded draw picks one pool's rows.

    Strategies are drawn per item in a real mixed run too, and each item's calls depend on its own
    strategy only, so this is what ``--strategy a,b`` would write, in distribution, at the same budget
    per pair, without another LLM run. Only pairs every pool covers are kept.
    """
    by_pair = {name: {} for name in pools}
    for name, rows in pools.items():
        for row in rows:
            by_pair[name].setdefault((row["qid"], row["pos_id"]), []).append(row)
    shared = sorted(set.intersection(*(set(p) for p in by_pair.values())))
    rng, names = random.Random(seed), sorted(pools)
    return [row for pair in shared for row in by_pair[rng.choice(names)][pair]]


def leak_rate(ds, rows: list[dict], judge_lm: str, cache: Path) -> str:
    """Share of accepted negatives the judge says answer their query (bench_leak.py's judge), cached."""
    accepted = [r for r in rows if r["verdict"] == "accepted"]
    if not accepted:
        return "–"
    if not cache.exists():
        import dspy

        from bench.bench_leak import JudgeEvidence, judge_all
        from syneg_dspy.lm import make_lm
        from syneg_dspy.store import write_json

        with dspy.context(lm=make_lm(judge_lm, temperature=0.0, max_tokens=32), adapter=dspy.JSONAdapter()):
            verdicts = judge_all(dspy.Predict(JudgeEvidence), [(ds.queries[r["qid"]], r["text"]) for r in accepted])
        write_json(cache, {"judge": judge_lm, "keys": [r["key"] for r in accepted], "answers": verdicts})
    verdicts = [v for v in json.loads(cache.read_text())["answers"] if v is not None]
    return f"{sum(verdicts)}/{len(verdicts)} = {sum(verdicts) / len(verdicts):.1%}" if verdicts else "–"


def add_training_args(p: argparse.ArgumentParser) -> None:
    """The fine-tune settings every row shares (bench_quality, bench_compile)."""
    p.add_argument("--base-model", default=None, help="encoder (default: embedded all-MiniLM-L6-v2)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--max-steps", type=int, default=None, help="steps per row (default: one epoch over the train pairs)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--max-seq-length", type=int, default=None, help="training max tokens (default: the encoder's, 256); evaluation keeps the encoder's")
    p.add_argument("--bf16", action="store_true", help="train and encode under bfloat16 autocast (AMX CPUs: encoding 2.2x faster)")
    p.add_argument("--keep-models", action="store_true", help="keep each trained model (default: delete after evaluation)")


def setting(a, steps: int) -> str:
    """Names the fine-tune settings in result file names."""
    return (f"steps{steps}-lr{a.lr}-bs{a.batch_size}" + (f"-L{a.max_seq_length}" if a.max_seq_length else "")
            + ("-bf16" if a.bf16 else ""))


def finetune(ds, pairs, retrieved: list[dict], synthetic: list[dict], ratio: float, seed: int, a, steps: int,
             out: Path, run_dir: Path) -> dict | None:
    """Test metrics of one fine-tune on the hybrid mix, cached in ``out``; None when no pair has a negative."""
    from syneg_dspy.evaluate import evaluate
    from syneg_dspy.mix import mix_negatives, save_mix
    from syneg_dspy.store import write_json
    from syneg_dspy.train import train

    if out.exists():
        return json.loads(out.read_text())
    mix = mix_negatives(pairs, synthetic, retrieved, n=1, ratio=ratio, seed=seed)
    if not mix.instances:
        return None
    save_mix(mix, ds, run_dir / "mix")
    res = train(run_dir / "mix", out_dir=run_dir / "train", base_model=a.base_model, max_steps=steps,
                batch_size=a.batch_size, lr=a.lr, warmup_ratio=0.1, seed=seed, max_seq_length=a.max_seq_length,
                bf16=a.bf16)
    metrics = {**evaluate(res.model_path, ds, "test", bf16=a.bf16),  # at the encoder's length (see train)
               "synthetic_share": mix.stats["synthetic_share"], "instances": mix.stats["instances"], "steps": res.steps}
    write_json(out, metrics)
    if not a.keep_models:
        shutil.rmtree(run_dir / "train" / "model")
    return metrics


def cell(values: list[float]) -> str:
    """Mean ± sample std."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def paired(runs: list[dict], reference: list[dict], metrics=METRICS) -> str:
    """``runs`` minus ``reference``, paired by seed (a seed fixes the batch order and the mix's draws for both):
    per metric the mean difference, its t over the seeds and how many seeds are ahead. Seed-to-seed spread is
    larger than most differences between pools, so mean ± std columns alone cannot say what separates two rows."""
    from optimizers.gain_select import paired_z

    if len(runs) != len(reference):
        raise ValueError("paired() needs one run per seed in both")
    out = []
    for m in metrics:
        a, b = dict(enumerate(r[m] for r in runs)), dict(enumerate(r[m] for r in reference))
        d = [a[i] - b[i] for i in a]
        out.append(f"{m} {statistics.mean(d):+.4f} (t {paired_z(a, b):+.2f}, {sum(x > 0 for x in d)}/{len(d)} seeds ahead)")
    return "; ".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="BEIR folder with train and test qrels (default: bundled sample)")
    p.add_argument("--work", default="runs/bench_quality", help="cache folder (mined/generated negatives, results)")
    add_training_args(p)
    p.add_argument("--gen-limit", type=int, default=50, help="train pairs that get an LLM negative (0: none)")
    p.add_argument("--lm", default="local/qwen2.5-coder-0.5b")
    p.add_argument("--max-rounds", type=int, default=2)
    p.add_argument("--demos", type=int, default=2, help="dense-mined negatives shown to the free generator")
    p.add_argument("--domain", default="biomedical research", help="domain attribute (skips inferring it)")
    p.add_argument("--strategies", nargs="+", default=["generate"],
                   help="generation strategies compared (generate, rewrite_mined, rewrite_positive, mixed)")
    p.add_argument("--negatives", nargs="*", default=[], metavar="STRATEGY=PATH",
                   help="use the STRATEGY rows of a `syneg generate` output (folder or JSONL) instead of generating; "
                        "with two or more and no mixed=PATH, the mixed row draws per pair from them")
    p.add_argument("--rows", nargs="*", default=None, help="train only rows whose name starts with one of these")
    p.add_argument("--judge", default=None, help="LM that judges leaks among accepted negatives (e.g. local/qwen2.5-coder-1.5b)")
    p.add_argument("--relative-margin", type=float, default=0.05, help="mining: neg <= pos * (1 - F)")
    a = p.parse_args()
    a.negatives = dict(item.split("=", 1) for item in a.negatives)

    from syneg_dspy.data import load_dataset
    from syneg_dspy.evaluate import evaluate
    from syneg_dspy.mine import mine_negatives

    ds = load_dataset(a.data)
    work = Path(a.work) / ds.corpus_fingerprint()
    pairs = ds.positives("train")
    steps = a.max_steps or math.ceil(len(pairs) / a.batch_size)
    tag = f"{Path(a.base_model).name if a.base_model else 'minilm'}-m{a.relative_margin}"  # what mining depends on
    mine = dict(range_min=10, range_max=50, relative_margin=a.relative_margin, show_progress=False)
    dense = cached(work / "mine" / f"dense-{tag}.jsonl", lambda: mine_negatives(ds, "train", a.base_model, sources=("dense",), **mine))
    bm25 = cached(work / "mine" / f"bm25-{tag}.jsonl", lambda: mine_negatives(ds, "train", a.base_model, sources=("bm25",), **mine))
    generated = {s: generate(ds, a, work, s, dense) for s in a.strategies}

    rows = {  # name → (retrieved pool, synthetic pool, ratio)
        "random": (None, [], 0.0),
        "BM25-mined": (bm25, [], 0.0),
        "dense-mined": (dense, [], 0.0),
    }
    for strategy, (synthetic, _) in generated.items():
        suffix = f" [{strategy}]"
        rows[f"synthetic-only{suffix}"] = (dense, synthetic, 1.0)
        rows[f"hybrid r=0.25{suffix}"] = (dense, synthetic, 0.25)
        rows[f"hybrid r=0.5{suffix}"] = (dense, synthetic, 0.5)
    results: dict[str, list[dict]] = {"zero-shot": [evaluate(a.base_model, ds, "test", bf16=a.bf16)] * len(a.seeds)}
    if a.rows is not None:
        rows = {name: row for name, row in rows.items() if name.startswith(tuple(a.rows))}
    for name, (pool, synthetic, ratio) in rows.items():
        results[name] = []
        for seed in a.seeds:
            slug = name.replace(" ", "_").replace("=", "").replace("[", "").replace("]", "")
            out = work / "results" / f"{slug}-{tag}-s{seed}-{setting(a, steps)}-syn{pool_hash(synthetic)}.json"
            retrieved = pool if pool is not None else random_rows(ds, "train", seed)
            metrics = finetune(ds, pairs, retrieved, synthetic, ratio, seed, a, steps, out,
                               work / "train" / f"{slug}-s{seed}")
            if metrics is None:
                print(f"{name}: no pair has a negative (mining found none?); row left empty", file=sys.stderr)
                continue
            results[name].append(metrics)

    llm = ", ".join(f"{k}: {v[1].get('accepted', 0)} accepted of {v[1].get('items', 0)}" for k, v in generated.items())
    print(f"\n{ds.name}: {len(pairs)} train pairs, {steps} steps × batch {a.batch_size}, lr {a.lr}, "
          f"train max length {a.max_seq_length or 'default'}, {'bf16' if a.bf16 else 'fp32'}, seeds {a.seeds}; "
          f"LLM negatives: {llm}\n")
    print("| negatives | synthetic share | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for name, runs in results.items():
        if not runs:
            print(f"| {name} | – | " + " | ".join("–" for _ in METRICS) + " |")
            continue
        share = statistics.mean(r.get("synthetic_share", 0.0) for r in runs)
        print(f"| {name} | {share:.3f} | " + " | ".join(cell([r[m] for r in runs]) for m in METRICS) + " |")

    print("\n| strategy | items | accepted | LLM calls / accepted | separability AUC (embeddings / length) | leak rate |")
    print("|---|---|---|---|---|---|")
    for strategy, (synthetic, summary) in generated.items():
        if not summary:
            continue
        sep = summary["separability"].get("all") or next(iter(summary["separability"].values()), {})
        auc = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        leak = leak_rate(ds, synthetic, a.judge, work / "generate" / strategy / "leak.json") if a.judge else "not judged"
        print(f"| {strategy} | {summary['items']} | {summary['accepted']} ({summary['accepted'] / summary['items']:.0%}) | "
              f"{summary['llm_calls_per_accepted'] or '–'} | {auc(sep.get('auc'))} / {auc(sep.get('length_auc'))} | {leak} |")


if __name__ == "__main__":
    main()
