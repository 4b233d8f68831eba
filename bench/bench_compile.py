"""Uncompiled vs compiled SyNeg program, same LM: the compile metric on dev, then a full fine-tune on test.

For each program: negatives for the first ``--gen-limit`` train pairs (after the compile's dev split is
carved out, exactly as ``syneg compile`` carved it; a rerun reuses them, and the LM cache answers
prompts the compile already sent), acceptance and LLM calls per accepted negative, the retriever gain on
dev (the metric the compile maximised), then a full sentence-transformers fine-tune on the hybrid mix
(ratio ``--ratio`` of those negatives, dense-mined otherwise; 1 epoch, batch 16, lr 2e-5) and its test
nDCG@10 / MRR@10 / R@100. A dense-mined-only row is the reference. With ``--judge`` the judge LM's leak
rate over accepted negatives (bench_leak.py's procedure) is added.

    python bench/bench_compile.py --data ../shared/datasets/scifact \
        --program programs/compiled/scifact-qwen2.5-coder-0.5b.json --gen-limit 12
    python bench/bench_compile.py --data ../shared/datasets/scifact --program runs/x.json --from-compile runs/compile/x
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import syneg_dspy  # noqa: E402,F401  (offline switches first)

METRICS = ("ndcg@10", "mrr@10", "recall@100")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="BEIR folder (default: bundled sample)")
    p.add_argument("--program", required=True, help="a `syneg compile` output (its sidecar gives LM, dev split, seed)")
    p.add_argument("--work", default="runs/bench_compile")
    p.add_argument("--gen-limit", type=int, default=12, help="train pairs that get an LLM negative")
    p.add_argument("--from-compile", default=None, metavar="WORK",
                   help="take both programs' negatives from the compile's work folder (its scoring pairs): no LLM call")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--max-steps", type=int, default=-1, help="fine-tune steps (-1: one epoch)")
    p.add_argument("--judge", default=None, help="LM that judges leaks among accepted negatives")
    a = p.parse_args()

    from bench.bench_quality import leak_rate
    from optimizers.mined_demos import with_mined_demos
    from optimizers.retriever_gain import RetrieverGain
    from programs import SyNeg, load_program, program_hash
    from programs.attributes import parse_strategies
    from programs.saved import read_meta
    from syneg_dspy.data import carve_dev, load_dataset
    from syneg_dspy.evaluate import evaluate
    from syneg_dspy.generate import Guard, generate_negatives, mined_sources
    from syneg_dspy.generate.runner import summarize
    from syneg_dspy.lm import make_lm
    from syneg_dspy.mine import mine_negatives
    from syneg_dspy.mix import mix_negatives, save_mix
    from syneg_dspy.retrieval import load_encoder
    from syneg_dspy.store import read_jsonl, write_json
    from syneg_dspy.train import train

    meta = read_meta(a.program)
    if meta is None:
        sys.exit(f"error: {a.program}: no sidecar (NAME.meta.json) beside it")
    seed, rounds = meta["seed"], meta["max_rounds"]
    ds = load_dataset(a.data)
    if meta["dev_split"]["carved_from"]:
        ds = carve_dev(ds, meta["dev_split"]["queries"], seed=seed)
    encoder = load_encoder()
    mined = mine_negatives(ds, "train", encoder, relative_margin=0.05, seed=seed, show_progress=False)
    metric = RetrieverGain(ds, mined, encoder=encoder, ratio=meta["metric"]["ratio"], seeds=(seed, seed + 1, seed + 2))
    lm = make_lm(meta["lm"], temperature=0.7, max_tokens=256)
    work = Path(a.work) / ds.corpus_fingerprint()
    programs = {"uncompiled": with_mined_demos(SyNeg(max_rounds=rounds), ds, mined, k=2, seed=seed),
                "compiled": load_program(a.program, max_rounds=rounds)}
    pairs = ds.positives("train")

    def full_finetune(name: str, synthetic: list[dict]) -> dict:
        out = work / "results" / f"{name}-r{a.ratio}-steps{a.max_steps}.json"
        if out.exists():
            return json.loads(out.read_text())
        run_dir = work / "train" / name
        mix = mix_negatives(pairs, synthetic, mined, n=1, ratio=a.ratio if synthetic else 0.0, seed=seed)
        save_mix(mix, ds, run_dir / "mix")
        res = train(run_dir / "mix", out_dir=run_dir / "train", max_steps=a.max_steps, seed=seed)
        metrics = {**evaluate(res.model_path, ds, "test"), "synthetic_share": mix.stats["synthetic_share"]}
        write_json(out, metrics)
        shutil.rmtree(run_dir)
        return metrics

    rows = [{"program": "none (dense-mined only)", **full_finetune("dense", [])}]
    for name, program in programs.items():
        path = work / name / "negatives.jsonl"
        if a.from_compile:
            path = Path(a.from_compile) / "candidates" / program_hash(program) / "negatives.jsonl"
            synthetic = read_jsonl(path)
            s = summarize(synthetic, run_rows=[], wall_s=0, domain="", lm=meta["lm"], phash=program_hash(program),
                          out=str(path))
        else:
            s = generate_negatives(ds, "train", program, lm, path, guard=Guard(encoder), limit=a.gen_limit, seed=seed,
                                   domain=meta["domain"] or None, strategies=parse_strategies(meta["strategy"]),
                                   sources=mined_sources(mined))
            synthetic = read_jsonl(path)
        gain = metric(synthetic)
        leak = leak_rate(ds, synthetic, a.judge, work / name / "leak.json") if a.judge else "not judged"
        rows.append({"program": f"{name} ({s.program_hash})", "accepted": f"{s.accepted}/{s.items}",
                     "calls": s.llm_calls_per_accepted, "gain": gain.gain, "leak": leak,
                     **full_finetune(f"{name}-{s.program_hash}", synthetic)})

    print(f"\n{ds.name}: {len(pairs)} train pairs ({len(ds.split('dev'))} dev queries held out), LM {meta['lm']}, "
          f"{'the compile scoring' if a.from_compile else a.gen_limit} pairs with an LLM negative, hybrid ratio {a.ratio}\n")
    print("| program | accepted | LLM calls / accepted | leak rate | dev gain (metric) | synthetic share | "
          + " | ".join(f"test {m}" for m in METRICS) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(METRICS))
    for r in rows:
        gain = f"{r['gain']:+.4f}" if "gain" in r else "–"
        print(f"| {r['program']} | {r.get('accepted', '–')} | {r.get('calls') or '–'} | {r.get('leak', '–')} | {gain} | "
              f"{r['synthetic_share']:.3f} | " + " | ".join(f"{r[m]:.4f}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
