"""Corpus encoding in fp32 vs bfloat16 autocast (``--bf16``): docs per second and how close the vectors stay.

Encodes the same docs through ``corpus_embeddings`` (cache off: a fresh temporary folder per run), alternating the two
precisions ``--repeats`` times; medians of docs/s, and the cosine between each doc's fp32 and bf16 vector.

    python bench/bench_precision.py --data ../shared/datasets/scifact --docs 320 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import syneg_dspy  # noqa: E402,F401  (offline switches first)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="BEIR folder (default: bundled sample)")
    p.add_argument("--base-model", default=None, help="encoder (default: embedded all-MiniLM-L6-v2)")
    p.add_argument("--docs", type=int, default=320, help="first N docs of the corpus (sorted ids)")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()

    from syneg_dspy.data import load_dataset
    from syneg_dspy.retrieval import corpus_embeddings, load_encoder

    ds = load_dataset(a.data)
    ds = dataclasses.replace(ds, corpus={d: ds.corpus[d] for d in sorted(ds.corpus)[: a.docs]})
    encoder = load_encoder(a.base_model)
    rates: dict[bool, list[float]] = {False: [], True: []}
    matrices = {}
    for _ in range(a.repeats):
        for bf16 in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                emb = corpus_embeddings(encoder, ds, cache_dir=tmp, show_progress=False, bf16=bf16)
                rates[bf16].append(len(ds.corpus) / (time.perf_counter() - start))
            matrices[bf16] = emb.matrix
    cosine = (matrices[False] * matrices[True]).sum(axis=1)
    base = statistics.median(rates[False])
    print(f"\n{len(ds.corpus)} docs of {ds.name}, max length {encoder.max_seq_length}, {a.repeats} repeat(s)\n")
    print("| precision | docs / s (median) | runs | speedup | cosine to fp32 (min / mean) |")
    print("|---|---|---|---|---|")
    for bf16, runs in rates.items():
        close = "1 / 1" if not bf16 else f"{cosine.min():.5f} / {cosine.mean():.5f}"
        print(f"| {'bf16 autocast' if bf16 else 'fp32'} | {statistics.median(runs):.1f} | "
              f"{', '.join(f'{r:.1f}' for r in runs)} | {statistics.median(runs) / base:.2f}× | {close} |")


if __name__ == "__main__":
    main()
