"""Overhead of ``syneg_dspy.train.train`` over a plain SentenceTransformerTrainer script, same data and arguments.

Both train the same (query, positive, random negative) rows with MNRL, no-duplicates batches and the
same seed; a callback times every optimizer step, and the median after ``--warmup`` steps is compared.

    python bench/bench_train.py                       # sample, embedded MiniLM, 8 steps
    python bench/bench_train.py --data ../shared/datasets/scifact --steps 20
    python bench/bench_train.py --bf16 --max-seq-length 128   # both trainers in bfloat16 autocast, 128 tokens
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
from transformers import TrainerCallback  # noqa: E402


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def rows_with_random_negatives(ds, split: str, seed: int) -> list[dict]:
    rng, ids = random.Random(seed), sorted(ds.corpus)
    rows = []
    for q, d in ds.positives(split):
        judged = ds.qrels[split][q]
        neg = next(i for i in iter(lambda: rng.choice(ids), None) if i not in judged)
        rows.append({"anchor": ds.queries[q], "positive": ds.doc_text(d), "negative_1": ds.doc_text(neg)})
    return rows


def plain(rows, model_path: str, out: str, a) -> tuple[StepTimer, float]:
    """What a user would write with sentence-transformers alone."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    timer = StepTimer()
    start = time.perf_counter()
    model = SentenceTransformer(model_path, device="cpu")
    if a.max_seq_length:
        model.max_seq_length = a.max_seq_length
    args = SentenceTransformerTrainingArguments(
        output_dir=out, max_steps=a.steps, per_device_train_batch_size=a.batch_size, learning_rate=2e-5,
        warmup_steps=max(1, a.steps // 10), seed=a.seed, data_seed=a.seed, batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=1, bf16=a.bf16,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), loss=MultipleNegativesRankingLoss(model),
        callbacks=[timer],
    )
    trainer.train()
    return timer, time.perf_counter() - start


def ours(rows, model_path: str, out: str, a) -> tuple[StepTimer, float]:
    from syneg_dspy.train import train

    timer = StepTimer()
    start = time.perf_counter()
    train(rows, out_dir=out, base_model=model_path, max_steps=a.steps, batch_size=a.batch_size, lr=2e-5,
          warmup_ratio=0.1, seed=a.seed, callbacks=[timer], max_seq_length=a.max_seq_length, bf16=a.bf16)
    return timer, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="BEIR folder (default: bundled sample)")
    p.add_argument("--base-model", default=None, help="encoder folder (default: embedded MiniLM)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2, help="steps left out of the median")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="alternate the two this many times")
    p.add_argument("--max-seq-length", type=int, default=None, help="tokens per text (default: the encoder's)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast in both trainers")
    a = p.parse_args()
    if a.steps <= a.warmup:
        p.error("--steps must exceed --warmup")

    from syneg_dspy.data import load_dataset
    from syneg_dspy.retrieval.encoder import embedded_model_path

    ds = load_dataset(a.data)
    rows = rows_with_random_negatives(ds, "train", a.seed)
    model_path = a.base_model or str(embedded_model_path())
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "syneg train()": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for name, fn in (("plain", plain), ("syneg train()", ours)):
                timer, wall = fn(rows, model_path, f"{tmp}/{name}-{r}".replace(" ", "_"), a)
                results[name].append((statistics.median(timer.times[a.warmup:]), wall))

    base = statistics.median(s for s, _ in results["plain"])
    print(f"\n{len(rows)} rows, batch {a.batch_size}, {a.steps} steps (median of steps {a.warmup + 1}..{a.steps}), "
          f"{a.repeats} repeat(s), max length {a.max_seq_length or 'default'}, {'bf16' if a.bf16 else 'fp32'}, model {model_path}\n")
    print("| trainer | median step (s) | wall incl. load+save (s) | step overhead |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        step = statistics.median(s for s, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"| {name} | {step:.3f} | {wall:.1f} | {100 * (step - base) / base:+.1f}% |")


if __name__ == "__main__":
    main()
