"""What the guard's edit checks cost a mined rewrite, per cap on the safe edits offered (``SAFE_EDITS``).

For the light compile's 24 scoring pairs (those with a mined source) (SciFact, dev carved as `syneg compile` carves it), each cap runs
``SyNeg._choices`` with the guard's check: edits checked, safe edits offered, seconds per item (median),
items left with no safe edit. With ``--lm``, each cap also writes the 24 negatives with the uncompiled
program (the LM uncached: every call is made): wall time, acceptance, LLM calls per accepted negative.

    python bench/bench_guard.py --data ../shared/datasets/scifact --caps 16 1000 --lm local/qwen2.5-coder-0.5b
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import syneg_dspy  # noqa: E402,F401  (offline switches first)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--caps", type=int, nargs="+", default=[16, 1000], help="SAFE_EDITS values (1000: check every edit)")
    p.add_argument("--lm", default=None, help="also write the negatives with this LM")
    a = p.parse_args()

    import programs.syneg as syneg
    from optimizers.compile import BUDGETS, retrieved, with_split
    from optimizers.mined_demos import with_mined_demos
    from syneg_dspy.data import carve_dev, load_dataset
    from syneg_dspy.generate import Guard, generate_negatives
    from syneg_dspy.generate.runner import plan_items
    from syneg_dspy.lm import make_lm
    from syneg_dspy.retrieval import load_encoder

    b = BUDGETS["light"]
    ds = carve_dev(load_dataset(a.data), 100, seed=0)
    encoder = load_encoder(None)
    mined, sources = retrieved(ds, encoder, 0)
    picked = random.Random(0).sample(ds.positives("train"), b.train_items + b.val_items)
    view = with_split(with_split(ds, "scoring", picked[b.train_items:]), "warm", picked[:b.train_items])
    items = plan_items(view, "scoring", "", per_query=1, seed=0, domain="biomedical research",
                       strategies=("rewrite_mined",), sources=sources)
    edited = [i for i in items if i.source]  # a pair with no mined source falls back to free generation
    lm = make_lm(a.lm, temperature=0.7, max_tokens=256, cache=False) if a.lm else None
    student = with_mined_demos(syneg.SyNeg(max_rounds=1, critique_mined=False), ds, mined, k=2, seed=0)

    def write(split: str, out: str, limit: int | None = None):
        return generate_negatives(view, split, student, lm, Path(out) / "negatives.jsonl", guard=Guard(encoder),
                                  domain="biomedical research", per_query=1, seed=0, strategies=("rewrite_mined",),
                                  sources=sources, progress=False, limit=limit)

    if lm:  # the model and its per-predictor contexts load outside the timings (else the first cap pays for them)
        with tempfile.TemporaryDirectory() as out:
            write("warm", out, limit=2)
    print("| SAFE_EDITS | edits checked (median) | safe edits offered (median) | guard s / item (median) | no safe edit |"
          + (" LM run wall s | accepted | LLM calls / accepted |" if lm else ""))
    print("|---|---|---|---|---|" + ("---|---|---|" if lm else ""))
    for cap in a.caps:
        syneg.SAFE_EDITS = cap
        program, rows = syneg.SyNeg(max_rounds=1, critique_mined=False), []
        for item in edited:
            checked = []
            check = Guard(encoder).feedback(item.query, item.positive, source=item.source, strategy="rewrite_mined")
            start = time.perf_counter()
            choices = program._choices(item.query, item.source, "rewrite_mined",
                                       lambda ns, check=check: checked.extend(ns) or check(ns))
            rows.append((len(checked), sum(map(len, choices.get("pairs", {}).values())), time.perf_counter() - start))
        line = (f"| {cap} | {statistics.median(r[0] for r in rows):.0f} | {statistics.median(r[1] for r in rows):.0f} | "
                f"{statistics.median(r[2] for r in rows):.2f} | {sum(r[1] == 0 for r in rows)} / {len(rows)} |")
        if lm:
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                s = write("scoring", out)
                line += f" {time.perf_counter() - start:.0f} | {s.accepted}/{s.items} | {s.llm_calls_per_accepted} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
