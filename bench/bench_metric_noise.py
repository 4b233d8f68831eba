"""How much of a compile's metric is the negatives, and how much is training on more pairs?

A synthetic negative either takes a slot a retrieved negative would have had, or, for a pair that has
no retrieved negative (deepened ``rewrite_mined`` sources), brings that pair into training. For every
candidate a compile scored, this rescores its negatives as they are, and restricted to pairs that
have a retrieved negative: the gain, its spread over the metric's seeds, and how many dev queries it
moves. Run it at two commits to see what a change to the metric or the mixer does to that noise.

    python bench/bench_metric_noise.py --program runs/compiled/scifact-qwen2.5-coder-0.5b-rewrite.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import syneg_dspy  # noqa: E402,F401  (offline switches first)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--program", required=True, help="a `syneg compile` output (its sidecar names data and work folder)")
    p.add_argument("--data", default=None, help="the compile's data folder (default: the path its sidecar records)")
    p.add_argument("--base-model", default=None, help="the compile's encoder (default: embedded all-MiniLM-L6-v2)")
    a = p.parse_args()

    from bench.bench_compile import compile_metric
    from programs.saved import read_meta
    from syneg_dspy.store import read_jsonl

    meta = read_meta(a.program)
    if meta is None or "work" not in meta:
        sys.exit(f"error: {a.program}: no sidecar naming the compile's work folder beside it")
    if not Path(meta["work"], "candidates").is_dir():
        sys.exit(f"error: {a.program}: the compile's work folder {meta['work']} holds no candidates "
                 "(run this from the folder the compile ran in)")
    ds, _, mined, _, metric = compile_metric(meta, a.data or meta["dataset"]["path"], a.base_model)
    has_mined = {(str(r["qid"]), str(r["pos_id"])) for r in mined}

    print(f"\n{ds.name}: {len(ds.positives('train'))} train pairs ({len(has_mined)} with a retrieved negative), "
          f"{len(ds.split('dev'))} dev queries, metric seeds {list(metric.seeds)}\n")
    print("| candidate | negatives scored | accepted | gain | gain's sd over seeds | dev queries moved |")
    print("|---|---|---|---|---|---|")
    for c in meta["candidates"]:
        rows = [r for r in read_jsonl(Path(meta["work"]) / "candidates" / c["program_hash"] / "negatives.jsonl")
                if r.get("verdict") == "accepted"]
        replacing = [r for r in rows if (str(r["qid"]), str(r["pos_id"])) in has_mined]
        for label, scored in (("all", rows), ("replacing a retrieved one only", replacing)):
            g = metric(scored)
            moved = sum(1 for v in g.per_query.values() if v)
            print(f"| {c['candidate']} (`{c['program_hash']}`) | {label} | {len(scored)} | {g.gain:+.4f} | "
                  f"{statistics.stdev(g.per_seed):.4f} | {moved} |")


if __name__ == "__main__":
    main()
