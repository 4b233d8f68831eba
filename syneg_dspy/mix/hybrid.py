"""SyNeg's hybrid sampler: each negative slot of a training instance is synthetic with probability r.

Mixing per instance (not per dataset) keeps every batch a blend of LLM-written and retrieved
negatives, which the paper found more stable than either pool alone. A "warmup" schedule starts
from retrieved-only and ramps r up, so the encoder sees the hardest (synthetic) negatives once it
has learnt the easy structure. When one pool runs dry for a pair, the slot falls back to the other
pool and the fallback is counted, so the synthetic share actually trained on is always known.
A pair's draws come from its own seeded stream, so giving one pair a synthetic negative (or taking
its last one away) leaves every other pair's negatives as they were: two mixes of the same seed
differ only where their pools do, which is what makes them a paired comparison.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from syneg_dspy.data.beir import iter_jsonl
from syneg_dspy.data.dataset import Dataset
from syneg_dspy.errors import InputError
from syneg_dspy.mine.formats import Pair, TrainingSet, write_training_set
from syneg_dspy.store import write_json

SCHEDULES = ("fixed", "warmup")


@dataclass
class TrainingInstance:
    """One (query, positive) pair and its negatives (rows with ``text``, ``source``, ``doc_id`` or ``key``)."""

    qid: str
    pos_id: str
    negatives: list[dict] = field(default_factory=list)
    ratio: float = 0.0  # the r this instance was drawn with

    @property
    def sources(self) -> list[str]:
        return [neg["source"] for neg in self.negatives]


@dataclass
class MixResult:
    instances: list[TrainingInstance]  # in training order
    stats: dict


def _pools(rows: list[dict], source: str | None = None) -> dict[Pair, list[dict]]:
    """(qid, pos_id) → negative rows, deduplicated by text, in the rows' order."""
    pools: dict[Pair, list[dict]] = defaultdict(list)
    seen: dict[Pair, set[str]] = defaultdict(set)
    for row in rows:
        k = (str(row["qid"]), str(row["pos_id"]))
        if row["text"] in seen[k]:
            continue
        seen[k].add(row["text"])
        pools[k].append({**row, "source": source} if source else row)
    return pools


def _ratio_at(i: int, total: int, ratio: float, schedule: str, warmup_frac: float) -> float:
    if schedule == "fixed":
        return ratio
    ramp = warmup_frac * total
    return ratio if ramp <= 0 else ratio * min(1.0, i / ramp)


def mix_negatives(
    pairs: Iterable[Pair],
    synthetic_rows: list[dict],
    retrieved_rows: list[dict],
    *,
    n: int = 1,
    ratio: float = 0.5,
    schedule: str = "fixed",
    warmup_frac: float = 0.2,
    seed: int = 0,
) -> MixResult:
    """Draw ``n`` negatives per pair: synthetic with probability r (per ``schedule``), else retrieved.

    Training order is a seeded shuffle of ``pairs`` and is the order of the output. Only synthetic
    rows with ``verdict == "accepted"`` are used. A pair with fewer than ``n`` negatives in both
    pools together is dropped (counted in ``stats["dropped"]``): every instance has exactly ``n``.
    """
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    if not 0.0 <= ratio <= 1.0:
        raise InputError(f"ratio must be in [0, 1], got {ratio}")
    if schedule not in SCHEDULES:
        raise InputError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if not 0.0 <= warmup_frac <= 1.0:
        raise InputError(f"warmup_frac must be in [0, 1], got {warmup_frac}")

    accepted = [r for r in synthetic_rows if r.get("verdict") == "accepted"]
    synthetic = _pools(accepted, source="synthetic")
    retrieved = _pools(retrieved_rows)

    order = list(pairs)
    random.Random(seed).shuffle(order)
    instances: list[TrainingInstance] = []
    counts: Counter = Counter()
    by_source: Counter = Counter()
    for i, (qid, pos_id) in enumerate(order):
        k = (str(qid), str(pos_id))
        syn, ret = list(synthetic.get(k, ())), list(retrieved.get(k, ()))
        if len(syn) + len(ret) < n:
            counts["dropped"] += 1
            continue
        rng = random.Random(f"{seed}/{k[0]}/{k[1]}")  # str seeds hash the same in every process
        rng.shuffle(syn)
        rng.shuffle(ret)
        r = _ratio_at(i, len(order), ratio, schedule, warmup_frac)
        inst = TrainingInstance(qid=k[0], pos_id=k[1], ratio=r)
        for _ in range(n):
            want_synthetic = rng.random() < r
            if want_synthetic and not syn:
                counts["fallback_to_retrieved"] += 1
                want_synthetic = False
            elif not want_synthetic and not ret:
                counts["fallback_to_synthetic"] += 1
                want_synthetic = True
            neg = (syn if want_synthetic else ret).pop()
            inst.negatives.append(neg)
            by_source[neg["source"]] += 1
        instances.append(inst)

    slots = n * len(instances)
    stats = {
        "instances": len(instances),
        "slots": slots,
        "n": n,
        "ratio": ratio,
        "schedule": schedule,
        "warmup_frac": warmup_frac,
        "seed": seed,
        "synthetic_share": by_source["synthetic"] / slots if slots else 0.0,
        "by_source": dict(sorted(by_source.items())),
        "fallback_to_retrieved": counts["fallback_to_retrieved"],
        "fallback_to_synthetic": counts["fallback_to_synthetic"],
        "dropped": counts["dropped"],
        "accepted_synthetic_rows": len(accepted),
        "ignored_synthetic_rows": len(synthetic_rows) - len(accepted),
    }
    return MixResult(instances, stats)


REQUIRED = {"synthetic": ("key", "qid", "pos_id", "text", "verdict"), "retrieved": ("qid", "pos_id", "doc_id", "text", "source")}


def read_negatives(path: str | Path, kind: str) -> list[dict]:
    """Rows of a ``negatives.jsonl`` written by ``syneg generate`` (kind "synthetic") or ``syneg mine``
    ("retrieved"); a folder means its ``negatives.jsonl``."""
    path = Path(path)
    if path.is_dir():
        path = path / "negatives.jsonl"
    rows = []
    for line, row in iter_jsonl(path):
        missing = [k for k in REQUIRED[kind] if k not in row]
        if missing:
            raise InputError(f"not a {kind} negative row: missing {', '.join(missing)}", path, line)
        rows.append(row)
    return rows


def save_mix(result: MixResult, ds: Dataset, out_dir: str | Path) -> TrainingSet:
    """Write the mix with the mining writers (``train.jsonl``, ``train_hf/``, ``train_sources.jsonl``,
    ``flag.jsonl``) in training order, and ``stats.json``."""
    rows_by_pair = {(inst.qid, inst.pos_id): inst.negatives for inst in result.instances}
    ts = write_training_set(rows_by_pair, ds, out_dir, n=result.stats["n"])
    write_json(Path(out_dir) / "stats.json", result.stats)
    return ts
