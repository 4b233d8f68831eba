"""Leak check: what share of guard-accepted synthetic negatives still answer their query?

Procedure (printed with the result): a judge LM (default the embedded 1.5B, temperature 0, JSON)
reads each (query, passage) pair and says whether the passage answers the query or gives evidence for
or against it. The judge is calibrated on the same run's queries first: on their real positives (it
should say yes: recall) and on random corpus passages (it should say no: false-alarm rate), so its
verdict on the negatives can be read against its own error rates. For rewrites, the judge also reads
the unedited source passages (retrieved negatives): the leak rate the edit adds is the difference.
It also reads a sample of the negatives the guard rejected for ``--rejected`` reasons: whether those
rejections were leaks (or good negatives thrown away) is what decides that check's threshold.
A sample of accepted negatives is printed for a person to check by hand, a rewrite as its edit and
the sentences the edit changed.

    python bench/bench_leak.py --negatives RUN/negatives.jsonl --data ../shared/datasets/scifact
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

import syneg_dspy  # noqa: F401  (offline switches)
import dspy

from syneg_dspy.data import load_dataset
from syneg_dspy.lm import make_lm
from syneg_dspy.store import read_jsonl


class JudgeEvidence(dspy.Signature):
    """Decide whether a passage answers a query. For a claim, "answers" means the passage gives evidence that the
    claim is true or that it is false. A passage on the same subject that does not settle the query does NOT answer."""

    query: str = dspy.InputField(desc="the query or claim")
    passage: str = dspy.InputField(desc="the passage to judge")
    answers: bool = dspy.OutputField(desc="true if the passage answers the query (evidence for or against the claim)")


def judge_all(judge: dspy.Predict, pairs: list[tuple[str, str]]) -> list[bool | None]:
    out = []
    for query, passage in pairs:
        try:
            out.append(bool(judge(query=query, passage=" ".join(passage.split()[:200])).answers))
        except Exception:  # a parse failure counts as no verdict, reported separately
            out.append(None)
    return out


def share(values: list[bool | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{sum(known)}/{len(known)} = {sum(known) / len(known):.1%}" if known else "-"


def shown(row: dict) -> str:
    """What a person reads to check a negative: a rewrite's edit and the sentences it changed, else the text."""
    if not row.get("edit"):
        return f"N: {row['text']}"
    replace = row["edit"]["replace"].lower()
    changed = [s for s in re.split(r"(?<=[.!?])\s+", row["text"]) if replace in s.lower()]
    return f"edit: {row['edit']['find']!r} -> {row['edit']['replace']!r}\n  changed: {' … '.join(changed)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--negatives", type=Path, required=True, help="`syneg generate` negatives.jsonl")
    ap.add_argument("--data", default=None, help="the dataset the negatives were generated for")
    ap.add_argument("--judge", default="local/qwen2.5-coder-1.5b")
    ap.add_argument("--calibration", type=int, default=20, help="positives and random passages judged for calibration")
    ap.add_argument("--show", type=int, default=15, help="accepted negatives printed for hand checking")
    ap.add_argument("--rejected", nargs="*", default=["outscores_positive", "judge_answers"],
                    help="reject reasons whose negatives are judged too")
    ap.add_argument("--max-rejected", type=int, default=15, help="negatives judged per reject reason")
    ap.add_argument("--out", type=Path, default=None, help="write verdicts as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ds = load_dataset(args.data)
    every = read_jsonl(args.negatives)
    rows = [r for r in every if r["verdict"] == "accepted"]
    rng = random.Random(args.seed)
    rejected = {reason: [r for r in every if r["reject_reason"] == reason and r["text"]][: args.max_rejected]
                for reason in args.rejected}
    qids = sorted({r["qid"] for r in rows})
    positives = [(ds.queries[r["qid"]], ds.doc_text(r["pos_id"])) for r in rows]
    rng.shuffle(positives)
    docs = sorted(ds.corpus)
    randoms = [(ds.queries[rng.choice(qids)], ds.doc_text(rng.choice(docs))) for _ in range(args.calibration)]

    judge = dspy.Predict(JudgeEvidence)
    start = time.perf_counter()
    with dspy.context(lm=make_lm(args.judge, temperature=0.0, max_tokens=32), adapter=dspy.JSONAdapter()):
        on_pos = judge_all(judge, positives[: args.calibration])
        on_rand = judge_all(judge, randoms)
        on_neg = judge_all(judge, [(ds.queries[r["qid"]], r["text"]) for r in rows])
        on_src = judge_all(judge, [(ds.queries[r["qid"]], r["source"]) for r in rows if r.get("source")])
        on_rejected = {reason: judge_all(judge, [(ds.queries[r["qid"]], r["text"]) for r in group])
                       for reason, group in rejected.items()}
    wall = time.perf_counter() - start

    print(f"judge {args.judge}, temperature 0, {wall:.0f} s; {len(rows)} accepted negatives over {len(qids)} queries")
    print("| judged | says 'answers' | no verdict |")
    print("|---|---|---|")
    for label, values in (("real positives (should be yes)", on_pos), ("random passages (should be no)", on_rand),
                          ("accepted synthetic negatives (leaks)", on_neg),
                          ("their unedited sources (rewrites only)", on_src),
                          *((f"rejected as {reason} (first {len(v)})", v) for reason, v in on_rejected.items())):
        print(f"| {label} | {share(values)} | {sum(v is None for v in values)} |")
    print(f"\nhand-check sample ({min(args.show, len(rows))} accepted negatives, judge verdict in brackets):")
    for row, verdict in list(zip(rows, on_neg))[: args.show]:
        print(f"- [{'answers' if verdict else 'no' if verdict is False else '?'}] Q: {row['query']}\n  {shown(row)}")
    if args.out:
        judged = [*zip(rows, on_neg), *((r, v) for reason, group in rejected.items()
                                          for r, v in zip(group, on_rejected[reason]))]
        args.out.write_text(json.dumps([{"key": r["key"], "verdict": r["verdict"], "reason": r["reject_reason"],
                                         "query": r["query"], "shown": shown(r), "answers": v} for r, v in judged],
                                       indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
