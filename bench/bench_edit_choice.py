"""Which safe edit trains the better retriever: the LM's pick, or a rule's (random, hardest, easiest)?

A compiled ``rewrite_mined`` program can only change which of the safe edits it is offered is applied
(``SyNeg._choices`` offers the ``OFFER`` hardest the guard passed; the grammar allows no other). So rules
that pick among the same offered edits without an LM bound what any prompt, demo or instruction can do on
these pairs: if even the hardest or the easiest trains a retriever within noise of the LM's pick, compiling
the prompt has nothing to find at this scale. (Before ``OFFER``, all safe edits were offered in checking
order: the 2026-12-06 tables in bench/RESULTS.md.)

For the first ``--gen-limit`` train pairs of ``bench_compile.py`` (same dev split, sources and item
plan as the program's sidecar gives), every policy's edit is scored by the guard (hardness: the
edit's cosine to the query over the positive's), by the compile's metric (dev gain, paired z against
the LM's pick) and by full fine-tunes on test with bench_quality's settings. The LM's pick is the
uncompiled program's negatives without the critique, like the rules' (a critique only drops edits:
bench_critique measures it), cached in bench_compile's work folder with its dense-mined fine-tunes.

    python bench/bench_edit_choice.py --data ../shared/datasets/scifact \
        --program programs/compiled/scifact-qwen2.5-coder-0.5b.json --gen-limit 80 --seeds 0 1 2 --bf16 \
        --max-seq-length 128 --ratio 0.5

With ``--no-lm`` (rules only) it also asks whether scale matters: ``--gen-limit 802`` edits every train pair.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import syneg_dspy  # noqa: E402,F401  (offline switches first)
from syneg_dspy.generate.guard import hardness  # noqa: E402

from bench.bench_compile import compile_metric, negatives_dir, seeded_fine_tunes  # noqa: E402
from bench.bench_quality import METRICS, add_training_args, cell, paired, pool_hash  # noqa: E402

POLICIES = ("random", "hardest", "easiest")


def rule_rows(items, program, guard, seed: int, policies=POLICIES) -> dict[str, list[dict]]:
    """Each policy's accepted row per item: an edit among the safe ones the program would offer."""
    from programs.syneg import apply_edit

    rows: dict[str, list[dict]] = {p: [] for p in policies}
    accepted: dict[str, dict[str, list[str]]] = {p: {} for p in policies}
    for item in items:
        if item.attributes.strategy != "rewrite_mined":
            continue
        for policy in policies:
            kept = accepted[policy].setdefault(item.qid, [])
            check = guard.feedback(item.query, item.positive, accepted=kept, source=item.source,
                                   strategy="rewrite_mined")
            choices = program._choices(item.query, item.source, "rewrite_mined", check)
            safe = [(f, r) for f, rs in choices.get("pairs", {}).items() for r in rs]
            if not safe:
                continue
            texts = [apply_edit(item.source, f, r) for f, r in safe]
            verdicts = guard.precheck_many(item.query, item.positive, texts, accepted=kept, source=item.source,
                                           strategy="rewrite_mined")
            scored = sorted(zip(map(hardness, verdicts), range(len(safe))))
            if policy == "random":
                pick = random.Random(f"{seed}:{item.key}").choice(scored)
            else:
                pick = scored[-1] if policy == "hardest" else scored[0]
            (find, replace), text = safe[pick[1]], texts[pick[1]]
            kept.append(text)
            rows[policy].append({"key": item.key, "qid": item.qid, "pos_id": item.pos_id, "query": item.query,
                                 "text": text, "verdict": "accepted", "edit": {"find": find, "replace": replace},
                                 "hardness": pick[0], "offered": len(safe)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="BEIR folder (default: bundled sample)")
    p.add_argument("--program", required=True,
                   help="a `syneg compile` output: its sidecar gives LM, dev split, seed, domain and ratio "
                        "(the edits are rewrite_mined's whatever strategy it compiled)")
    p.add_argument("--work", default="runs/bench_compile", help="bench_compile's work folder (shares its cache)")
    p.add_argument("--gen-limit", type=int, default=12, help="train pairs that get an edit")
    p.add_argument("--ratio", type=float, default=0.5, help="hybrid ratio of the fine-tunes")
    p.add_argument("--rules", nargs="*", choices=POLICIES, default=list(POLICIES),
                   help="the rules to compare (each costs a pass over the items and its fine-tunes)")
    p.add_argument("--no-lm", action="store_true",
                   help="rules only (no LM pick, z against the random rule): cheap at any --gen-limit")
    add_training_args(p)
    a = p.parse_args()
    if a.no_lm and "random" not in a.rules:
        p.error("--no-lm compares against the random rule: keep it in --rules")

    from optimizers.gain_select import paired_z
    from optimizers.mined_demos import with_mined_demos
    from programs import SyNeg, program_hash
    from programs.saved import read_meta
    from syneg_dspy.generate import Guard, generate_negatives
    from syneg_dspy.generate.runner import plan_items
    from syneg_dspy.lm import make_lm
    from syneg_dspy.store import read_jsonl

    meta = read_meta(a.program)
    if meta is None:
        sys.exit(f"error: {a.program}: no sidecar (NAME.meta.json) beside it")
    seed = meta["seed"]
    ds, encoder, mined, sources, metric = compile_metric(meta, a.data, a.base_model)
    guard = Guard(encoder, remember=200_000)  # every edit of 802 pairs: the rules' checks find generation's
    program = with_mined_demos(SyNeg(max_rounds=meta["max_rounds"], critique_mined=False), ds, mined, k=2, seed=seed)
    work = Path(a.work) / ds.corpus_fingerprint()
    plan = dict(seed=seed, domain=meta["domain"] or None, strategies=("rewrite_mined",), sources=sources)
    items = plan_items(ds, "train", program_hash(program), per_query=1, limit=a.gen_limit, **plan)
    pools: dict[str, list[dict]] = {}
    lm_name = "rule: random"  # the reference of the z column
    if not a.no_lm:
        lm_path = negatives_dir(work, "uncompiled", "rewrite_mined", critique=False) / "negatives.jsonl"
        s = generate_negatives(ds, "train", program, make_lm(meta["lm"], temperature=0.7, max_tokens=256), lm_path,
                               guard=guard, limit=a.gen_limit, **plan)
        lm_name = f"LM pick (uncompiled {s.program_hash})"
        pools[lm_name] = [r for r in read_jsonl(lm_path)  # the file keeps rows of earlier programs
                          if r["verdict"] == "accepted" and r["program_hash"] == s.program_hash]
        by_key = {i.key: i for i in items}
        for row in pools[lm_name]:  # the LM's pick scored like the rules'
            item = by_key[row["key"]]
            row["hardness"] = hardness(guard.precheck(item.query, item.positive, row["text"], source=item.source,
                                                      strategy="rewrite_mined"))
    pools.update({f"rule: {name}": rows for name, rows in rule_rows(items, program, guard, seed, a.rules).items()})

    pairs = ds.positives("train")
    steps = a.max_steps or math.ceil(len(pairs) / a.batch_size)

    def fine_tunes(name: str, synthetic: list[dict]) -> list[dict]:
        return seeded_fine_tunes(ds, pairs, mined, synthetic, a, steps, work, name)

    dense = fine_tunes("dense", [])
    ref = "the random rule" if a.no_lm else "the LM pick"
    gains = {name: metric(rows) for name, rows in pools.items()}
    print(f"\n{ds.name}: {len(pairs)} train pairs, the first {a.gen_limit} with an edit, hybrid ratio {a.ratio}, "
          f"{steps} steps x batch {a.batch_size}, {'bf16' if a.bf16 else 'fp32'}, seeds {a.seeds}\n")
    print(f"| edit chosen by | edits | safe edits offered (median) | hardness (median) | same edit as {ref} "
          f"| dev gain | z vs {ref} | synthetic share | " + " | ".join(f"test {m}" for m in METRICS) + " |")
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(METRICS))
    print("| none (dense-mined only) | – | – | – | – | – | – | 0.000 | "
          + " | ".join(cell([r[m] for r in dense]) for m in METRICS) + " |")
    lm_text = {r["key"]: r["text"] for r in pools[lm_name]}
    per_seed = {"dense": dense}
    for name, rows in pools.items():
        if not rows:
            print(f"| {name} | 0 | – | – | – | – | – | – | (no edit to fine-tune on) |")
            continue
        prefix = "rule-" + name.split(": ")[1] if name.startswith("rule: ") else "uncompiled-" + s.program_hash
        runs = per_seed[name] = fine_tunes(f"{prefix}-{pool_hash(rows)}", rows)
        same = sum(lm_text.get(r["key"]) == r["text"] for r in rows)
        offered = statistics.median(r["offered"] for r in rows) if "offered" in rows[0] else "–"
        z = paired_z(gains[name].per_query, gains[lm_name].per_query) if name != lm_name else 0.0
        print(f"| {name} | {len(rows)} | {offered} | {statistics.median(r['hardness'] for r in rows):.3f} | "
              f"{same}/{len(rows)} | {gains[name].gain:+.4f} | {z:+.2f} | "
              f"{statistics.mean(r['synthetic_share'] for r in runs):.3f} | "
              + " | ".join(cell([r[m] for r in runs]) for m in METRICS) + " |")
    print(f"\nper seed {a.seeds}, test nDCG@10: " + "; ".join(
        f"{name} {', '.join(format(r['ndcg@10'], '.4f') for r in runs)}" for name, runs in per_seed.items()))
    print("\npaired by seed, test:")
    for name, runs in per_seed.items():
        if name != "dense":
            print(f"- {name} vs dense-mined only: {paired(runs, dense)}")
            if name != lm_name and lm_name in per_seed:
                print(f"- {name} vs {ref}: {paired(runs, per_seed[lm_name])}")


if __name__ == "__main__":
    main()
