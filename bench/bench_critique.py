"""Is the program's own critique a usable check? Calibrate it on cases whose answer is known.

The SyNeg critique (``CritiqueNegative``, as the runner calls it: same LM settings, the positive's
opening) passes a candidate when it is on topic and does not answer the query. Here it reads
candidates whose verdict is known:

- the query's real positive (must fail: it answers),
- a random corpus passage for another query's topic (must fail: off topic),
- the unedited retrieved negative a rewrite starts from (should pass, bar mined false negatives),
- hand-labelled rewrites from ``--labels`` (``bench/leak_labels.json``): leaks must fail, the rest pass.

A critique that passes positives about as often as retrieved negatives cannot tell an answer from a
near miss, and each call it makes per negative is spent for nothing.

    python bench/bench_critique.py --negatives runs/exp/rw157_nocopy/negatives.jsonl --data ../shared/datasets/scifact
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import syneg_dspy  # noqa: F401  (offline switches)
import dspy

from programs import load_program
from programs.syneg import excerpt
from syneg_dspy.data import load_dataset
from syneg_dspy.generate.runner import POSITIVE_WORDS
from syneg_dspy.lm import make_lm
from syneg_dspy.store import read_jsonl

CANDIDATE_WORDS = 200  # a candidate is shown whole in the runner; long abstracts are cut to keep the 0.5B's prompt small


def critique_all(program, cases: list[tuple[str, str, str]]) -> list[dict | None]:
    """Each (query, positive, candidate) → the critique's verdict, or None when it could not be parsed."""
    out = []
    for query, positive, candidate in cases:
        try:
            c = program.critique(query=query, positive=excerpt(positive, POSITIVE_WORDS),
                                 negative=excerpt(candidate, CANDIDATE_WORDS))
            out.append({"answers_query": bool(c.answers_query), "on_topic": bool(c.on_topic)})
        except Exception:
            out.append(None)
    return out


def passes(v: dict) -> bool:
    return v["on_topic"] and not v["answers_query"]


def row(label: str, verdicts: list[dict | None], want_pass: bool) -> str:
    known = [v for v in verdicts if v is not None]
    if not known:
        return f"| {label} | 0 | - | - | - | - |"
    n = len(known)
    passed = sum(map(passes, known))
    right = passed if want_pass else n - passed
    answers = sum(v["answers_query"] for v in known)
    on_topic = sum(v["on_topic"] for v in known)
    return (f"| {label} | {n} | {passed}/{n} | {answers}/{n} | {on_topic}/{n} | **{right}/{n}** |"
            + (f" ({len(verdicts) - n} unparsed)" if len(verdicts) > n else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--negatives", type=Path, required=True, help="a rewrite_mined `syneg generate` negatives.jsonl")
    ap.add_argument("--data", required=True)
    ap.add_argument("--lm", default="local/qwen2.5-coder-0.5b")
    ap.add_argument("--temperature", type=float, default=0.7, help="as `syneg generate`")
    ap.add_argument("--n", type=int, default=20, help="cases per known group")
    ap.add_argument("--labels", type=Path, default=Path(__file__).with_name("leak_labels.json"))
    ap.add_argument("--runs", type=Path, default=Path("runs/exp"), help="where the labelled pools' runs are")
    ap.add_argument("--out", type=Path, default=None, help="write every verdict as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    ds = load_dataset(a.data)
    rng = random.Random(a.seed)
    rows = [r for r in read_jsonl(a.negatives) if r.get("source")]
    rng.shuffle(rows)
    docs = sorted(ds.corpus)
    groups: dict[str, tuple[list[tuple[str, str, str]], bool]] = {
        "real positive (must fail)": ([(r["query"], ds.doc_text(r["pos_id"]), ds.doc_text(r["pos_id"]))
                                       for r in rows[: a.n]], False),
        "random passage (must fail)": ([(r["query"], ds.doc_text(r["pos_id"]), ds.doc_text(rng.choice(docs)))
                                        for r in rows[a.n: 2 * a.n]], False),
        "unedited retrieved negative (should pass)": ([(r["query"], ds.doc_text(r["pos_id"]), r["source"])
                                                       for r in rows[: a.n]], True),
    }
    labelled = [x for x in json.loads(a.labels.read_text()) if "|rewrite_" in x["key"]]
    by_pool: dict[str, dict] = {}
    for label in labelled:
        pool, _, key = label["key"].partition(":")
        if pool not in by_pool:
            path = a.runs / pool / "negatives.jsonl"
            by_pool[pool] = {r["key"]: r for r in read_jsonl(path)} if path.exists() else {}
        label["row"] = by_pool[pool].get(key)
    labelled = [x for x in labelled if x["row"]]
    leaks = [x for x in labelled if not x["hand"].startswith("no")]
    fine = [x for x in labelled if x["hand"].startswith("no")]
    rng.shuffle(fine)
    case = lambda x: (x["row"]["query"], ds.doc_text(x["row"]["pos_id"]), x["row"]["text"])  # noqa: E731
    groups["rewrite, leak or borderline by hand (must fail)"] = ([case(x) for x in leaks], False)
    groups["rewrite, no leak by hand (should pass)"] = ([case(x) for x in fine[: a.n]], True)

    program = load_program()
    lm = make_lm(a.lm, temperature=a.temperature, max_tokens=256)
    start = time.perf_counter()
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        verdicts = {label: critique_all(program, cases) for label, (cases, _) in groups.items()}
    wall = time.perf_counter() - start

    print(f"critique of the uncompiled program, {a.lm}, temperature {a.temperature}, {wall:.0f} s")
    print("| candidate | n | passed | says answers | says on topic | right |")
    print("|---|---|---|---|---|---|")
    for label, (_, want_pass) in groups.items():
        print(row(label, verdicts[label], want_pass))
    if a.out:
        a.out.write_text(json.dumps({label: [{"query": q, "candidate": c[:300], "verdict": v}
                                             for (q, _, c), v in zip(groups[label][0], verdicts[label])]
                                     for label in groups}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
