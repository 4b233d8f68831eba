"""llama.cpp contexts per system message vs one shared context, on real rewrite_mined items.

SyNeg alternates predictors (rewrite → critique → rewrite ...), so with one llama.cpp context every
call evaluates its whole prompt; with one context per system message a predictor's call reuses its
last prompt's prefix (system message, demos). Sampling is random and DSPy's cache is off, so the two
runs write different negatives: compare seconds per call and tokens per call, not acceptance.

    python bench/bench_contexts.py --data ../shared/datasets/scifact --mined runs/mine --limit 8
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import syneg_dspy  # noqa: E402,F401  (offline switches first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--mined", required=True, help="`syneg mine` output folder (the rewrites' sources)")
    ap.add_argument("--limit", type=int, default=8, help="train pairs")
    ap.add_argument("--lm", default="local/qwen2.5-coder-0.5b")
    ap.add_argument("--work", default="runs/bench_contexts")
    a = ap.parse_args()

    from programs import SyNeg
    from syneg_dspy.data import load_dataset
    from syneg_dspy.generate import Guard, generate_negatives, mined_sources
    from syneg_dspy.lm import local, make_lm
    from syneg_dspy.retrieval.encoder import load_encoder
    from syneg_dspy.store import read_jsonl

    ds = load_dataset(a.data)
    sources = mined_sources(read_jsonl(Path(a.mined) / "negatives.jsonl"))
    guard = Guard(load_encoder(None))
    print("| contexts | items | LLM calls | s / call | tokens / call | prompt+output tokens / s |")
    print("|---|---|---|---|---|---|")
    for contexts in (1, local.CONTEXTS):
        local.LOCAL.close()
        local.CONTEXTS = contexts
        out = Path(a.work) / f"contexts{contexts}"
        shutil.rmtree(out, ignore_errors=True)
        generate_negatives(ds, "train", SyNeg(max_rounds=2), make_lm(a.lm, max_tokens=256, cache=False),
                           out / "negatives.jsonl", guard=guard, limit=a.limit, strategies=("rewrite_mined",),
                           sources=sources, domain="biomedical research", progress=False)
        rows = read_jsonl(out / "negatives.jsonl")
        seconds, calls, tokens = (sum(r[k] for r in rows) for k in ("latency_s", "llm_calls", "tokens"))
        print(f"| {contexts} | {len(rows)} | {calls} | {seconds / calls:.2f} | {tokens / calls:.0f} | {tokens / seconds:.0f} |")


if __name__ == "__main__":
    main()
