"""Uncompiled vs compiled SyNeg program, same LM: the compile metric on dev, then full fine-tunes on test.

For each program: negatives for the first ``--gen-limit`` train pairs (after the compile's dev split is
carved out, exactly as ``syneg compile`` carved it; a rerun reuses them, and the LM cache answers
prompts the compile already sent), acceptance and LLM calls per accepted negative, the retriever gain on
dev (the metric the compile maximised, with its paired z against the uncompiled program), then full
sentence-transformers fine-tunes on the hybrid mix (ratio ``--ratio`` of those negatives, dense-mined
otherwise) per ``--seeds``, with bench_quality's training settings, and their test nDCG@10 / MRR@10 /
R@100 (mean ± std). A dense-mined-only row is the reference. With ``--judge`` the judge LM's leak rate
over accepted negatives (bench_leak.py's procedure) is added. ``--candidate HASH`` compares a candidate
the compile scored but did not keep (from its work folder) instead of the kept program: does the
compile's verdict on dev hold on test?

    python bench/bench_compile.py --data ../shared/datasets/scifact --program runs/compiled/x.json \
        --gen-limit 80 --seeds 0 1 2 --bf16 --max-seq-length 128 --ratio 0.25
    python bench/bench_compile.py --data ../shared/datasets/scifact --program runs/x.json --from-compile runs/compile/x
    python bench/bench_compile.py --data ../shared/datasets/scifact --program runs/x.json --candidate 2ca027efb8d2 ...
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import syneg_dspy  # noqa: E402,F401  (offline switches first)

from bench.bench_quality import METRICS, add_training_args, cell, finetune, leak_rate, paired, pool_hash, setting  # noqa: E402


def compile_metric(meta: dict, data: str | None, base_model: str | None) -> tuple:
    """The compile's setting rebuilt from its sidecar: (dataset with its dev split carved as the compile
    carved it, encoder, mined rows, rewrite sources, the metric with the compile's ratio and seeds)."""
    from optimizers.compile import METRIC_SEEDS, retrieved
    from optimizers.retriever_gain import RetrieverGain
    from syneg_dspy.data import carve_dev, load_dataset
    from syneg_dspy.retrieval import load_encoder

    seed, ds = meta["seed"], load_dataset(data)
    if meta["dev_split"]["carved_from"]:
        ds = carve_dev(ds, meta["dev_split"]["queries"], seed=seed)
    encoder = load_encoder(base_model)
    mined, sources = retrieved(ds, encoder, seed)
    metric = RetrieverGain(ds, mined, encoder=encoder, ratio=meta["metric"]["ratio"],
                           seeds=range(seed, seed + METRIC_SEEDS))
    return ds, encoder, mined, sources, metric


def negatives_dir(work: Path, name: str, strategy: str, critique: bool) -> Path:
    """A program's generated negatives, one folder per strategy and critique setting: sidecars that differ
    in either never share (and append to) the same rows."""
    return work / f"{name}-{strategy.replace(',', '+')}-critique-{'on' if critique else 'off'}"


def seeded_fine_tunes(ds, pairs, mined, synthetic: list[dict], a, steps: int, work: Path, name: str) -> list[dict]:
    """One full fine-tune per seed in ``a.seeds`` (hybrid at ``a.ratio`` when there are synthetic negatives),
    each cached under ``work`` by name, seed and training setting."""
    runs = [finetune(ds, pairs, mined, synthetic, a.ratio if synthetic else 0.0, s, a, steps,
                     work / "results" / f"{name}-r{a.ratio}-s{s}-{setting(a, steps)}.json",
                     work / "train" / f"{name}-s{s}")
            for s in a.seeds]
    if None in runs:
        sys.exit(f"error: {ds.path}: no train pair has a mined or synthetic negative to fine-tune on")
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="BEIR folder (default: bundled sample)")
    p.add_argument("--program", required=True, help="a `syneg compile` output (its sidecar gives LM, dev split, seed)")
    p.add_argument("--work", default="runs/bench_compile")
    p.add_argument("--gen-limit", type=int, default=12, help="train pairs that get an LLM negative")
    p.add_argument("--from-compile", default=None, metavar="WORK",
                   help="take both programs' negatives from the compile's work folder (its scoring pairs): no LLM call")
    p.add_argument("--candidate", default=None, metavar="HASH",
                   help="compare this scored candidate (its program in the compile's work folder) with the uncompiled one")
    p.add_argument("--ratio", type=float, default=0.5, help="hybrid ratio of the fine-tunes")
    p.add_argument("--judge", default=None, help="LM that judges leaks among accepted negatives")
    add_training_args(p)
    a = p.parse_args()

    from optimizers.gain_select import paired_z
    from optimizers.mined_demos import with_mined_demos
    from programs import SyNeg, load_program, program_hash
    from programs.attributes import parse_strategies
    from programs.saved import read_meta
    from syneg_dspy.generate import Guard, generate_negatives
    from syneg_dspy.generate.runner import summarize
    from syneg_dspy.lm import make_lm
    from syneg_dspy.store import read_jsonl

    meta = read_meta(a.program)
    if meta is None:
        sys.exit(f"error: {a.program}: no sidecar (NAME.meta.json) beside it")
    seed, rounds = meta["seed"], meta["max_rounds"]
    ds, encoder, mined, sources, metric = compile_metric(meta, a.data, a.base_model)
    lm = make_lm(meta["lm"], temperature=0.7, max_tokens=256)
    work = Path(a.work) / ds.corpus_fingerprint()
    critique = meta.get("critique_mined", True)  # sidecars before --critique-mined critiqued every edit
    compile_work = Path(a.from_compile or meta.get("work") or "")  # the sidecar names it since candidates are kept
    if (a.candidate or a.from_compile) and not compile_work.name:
        sys.exit(f"error: {a.program}: its sidecar names no compile work folder; pass --from-compile WORK")
    compared = compile_work / "candidates" / a.candidate / "program.json" if a.candidate else a.program
    programs = {"uncompiled": with_mined_demos(SyNeg(max_rounds=rounds, critique_mined=critique), ds, mined, k=2,
                                               seed=seed),
                "candidate" if a.candidate else "compiled": load_program(compared, max_rounds=rounds,
                                                                         critique_mined=critique)}
    other = list(programs)[1]
    if program_hash(programs["uncompiled"]) == program_hash(programs[other]):
        print(f"note: {compared} is the uncompiled program (the compile kept the student): one row", file=sys.stderr)
        del programs[other]
    pairs = ds.positives("train")
    steps = a.max_steps or math.ceil(len(pairs) / a.batch_size)

    def fine_tunes(name: str, synthetic: list[dict]) -> list[dict]:
        return seeded_fine_tunes(ds, pairs, mined, synthetic, a, steps, work, name)

    rows, gains = [{"program": "none (dense-mined only)", "runs": fine_tunes("dense", [])}], {}
    for name, program in programs.items():
        path = negatives_dir(work, name, meta["strategy"], critique) / "negatives.jsonl"
        if a.from_compile:
            path = compile_work / "candidates" / program_hash(program) / "negatives.jsonl"
            synthetic = read_jsonl(path)
            s = summarize(synthetic, run_rows=[], wall_s=0, domain="", lm=meta["lm"], phash=program_hash(program),
                          out=str(path))
        else:
            s = generate_negatives(ds, "train", program, lm, path, guard=Guard(encoder), limit=a.gen_limit, seed=seed,
                                   domain=meta["domain"] or None, strategies=parse_strategies(meta["strategy"]),
                                   sources=sources)
            synthetic = read_jsonl(path)
        gains[name] = metric(synthetic)
        leak = leak_rate(ds, synthetic, a.judge, path.parent / "leak.json") if a.judge else "not judged"
        rows.append({"program": f"{name} ({s.program_hash})", "accepted": f"{s.accepted}/{s.items}",
                     "calls": s.llm_calls_per_accepted, "gain": gains[name].gain, "leak": leak,
                     "runs": fine_tunes(f"{name}-{s.program_hash}-{pool_hash(synthetic)}", synthetic)})
    z = paired_z(gains[other].per_query, gains["uncompiled"].per_query) if other in gains else 0.0

    print(f"\n{ds.name}: {len(pairs)} train pairs ({len(ds.split('dev'))} dev queries held out), LM {meta['lm']}, "
          f"{'the compile scoring' if a.from_compile else a.gen_limit} pairs with an LLM negative, hybrid ratio "
          f"{a.ratio}, {steps} steps x batch {a.batch_size}, {'bf16' if a.bf16 else 'fp32'}, seeds {a.seeds}; "
          f"dev gain {other} vs uncompiled: z = {z:+.2f}\n")
    print("| program | accepted | LLM calls / accepted | leak rate | dev gain (metric) | synthetic share | "
          + " | ".join(f"test {m}" for m in METRICS) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(METRICS))
    for r in rows:
        gain = f"{r['gain']:+.4f}" if "gain" in r else "–"
        share = statistics.mean(run["synthetic_share"] for run in r["runs"])
        print(f"| {r['program']} | {r.get('accepted', '–')} | {r.get('calls') or '–'} | {r.get('leak', '–')} | {gain} | "
              f"{share:.3f} | " + " | ".join(cell([run[m] for run in r["runs"]]) for m in METRICS) + " |")
    print("\npaired by seed, test:")
    for r in rows[1:]:
        print(f"- {r['program']} vs dense-mined only: {paired(r['runs'], rows[0]['runs'])}")
    if len(rows) == 3:
        print(f"- {rows[2]['program']} vs {rows[1]['program']}: {paired(rows[2]['runs'], rows[1]['runs'])}")


if __name__ == "__main__":
    main()
