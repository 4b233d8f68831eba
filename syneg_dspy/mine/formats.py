"""Training-set writers shared by mining and the hybrid mixer: they take plain negative rows.

A negative row needs ``qid``, ``pos_id``, ``text`` and ``source`` (plus ``doc_id`` or ``key`` when it
has one). Outputs: sentence-transformers columns ``anchor, positive, negative_1..negative_n`` as JSONL
and as a ``datasets`` folder (loads straight into ``SentenceTransformerTrainer``), a side file naming
each negative's source (kept out of the dataset: the trainer would read any extra column as an
input), and FlagEmbedding's ``{"query", "pos", "neg"}`` JSONL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from syneg_dspy.data.dataset import Dataset
from syneg_dspy.errors import InputError
from syneg_dspy.store import write_jsonl

PADDING = ("drop", "repeat")

Pair = tuple[str, str]


def group_by_pair(rows: Iterable[dict], pairs: Iterable[Pair] = ()) -> dict[Pair, list[dict]]:
    """Negatives per (qid, pos_id), in row order; ``pairs`` adds pairs that got none (so they count as dropped)."""
    out: dict[Pair, list[dict]] = {pair: [] for pair in pairs}
    for row in rows:
        out.setdefault((row["qid"], row["pos_id"]), []).append(row)
    return out


@dataclass
class TrainingSet:
    rows: list[dict]  # anchor, positive, negative_1..negative_n
    sources: list[dict]  # per row: qid, pos_id, negative_ids, negative_sources
    n: int
    dropped: int  # pairs with fewer than n negatives (pad="drop") or none at all
    padded: int  # pairs topped up by repeating their own negatives (pad="repeat")

    @property
    def columns(self) -> list[str]:
        return ["anchor", "positive", *(f"negative_{i}" for i in range(1, self.n + 1))]


def to_st_rows(rows_by_pair: dict[Pair, list[dict]], ds: Dataset, n: int, pad: str = "drop") -> TrainingSet:
    """One training row per pair with its first ``n`` negatives; short pairs are dropped or padded."""
    if pad not in PADDING:
        raise InputError(f"pad must be one of {PADDING}, got {pad!r}")
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    rows, sources, dropped, padded = [], [], 0, 0
    for (qid, pos_id), negs in rows_by_pair.items():
        negs = negs[:n]
        if not negs or (len(negs) < n and pad == "drop"):
            dropped += 1
            continue
        if len(negs) < n:
            padded += 1
            negs = [negs[i % len(negs)] for i in range(n)]
        row = {"anchor": ds.queries[qid], "positive": ds.doc_text(pos_id)}
        row.update({f"negative_{i}": neg["text"] for i, neg in enumerate(negs, 1)})
        rows.append(row)
        sources.append(
            {
                "qid": qid,
                "pos_id": pos_id,
                "negative_ids": [neg.get("doc_id") or neg.get("key") for neg in negs],
                "negative_sources": [neg["source"] for neg in negs],
            }
        )
    return TrainingSet(rows, sources, n, dropped, padded)


def to_flag_rows(rows_by_pair: dict[Pair, list[dict]], ds: Dataset) -> list[dict]:
    """FlagEmbedding fine-tuning lines, one per pair that has negatives (all of them, no cap)."""
    return [
        {"query": ds.queries[qid], "pos": [ds.doc_text(pos_id)], "neg": [neg["text"] for neg in negs]}
        for (qid, pos_id), negs in rows_by_pair.items()
        if negs
    ]


def save_hf_dataset(rows: list[dict], columns: list[str], path: str | Path) -> None:
    """``datasets.Dataset.save_to_disk``, built beside ``path`` and swapped in, so readers never see half a folder."""
    from datasets import Dataset as HFDataset

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        HFDataset.from_dict({c: [r[c] for r in rows] for c in columns}).save_to_disk(str(tmp))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_training_set(
    rows_by_pair: dict[Pair, list[dict]], ds: Dataset, out_dir: str | Path, n: int, pad: str = "drop", name: str = "train"
) -> TrainingSet:
    """``<name>.jsonl``, ``<name>_hf/``, ``<name>_sources.jsonl`` and ``flag.jsonl`` under ``out_dir``."""
    out_dir = Path(out_dir)
    ts = to_st_rows(rows_by_pair, ds, n, pad)
    if not ts.rows:  # an empty HF dataset folder would not load; say why instead
        raise InputError(f"no (query, positive) pair has {n} negative(s) to train on")
    write_jsonl(out_dir / f"{name}.jsonl", ts.rows)
    save_hf_dataset(ts.rows, ts.columns, out_dir / f"{name}_hf")
    write_jsonl(out_dir / f"{name}_sources.jsonl", ts.sources)
    write_jsonl(out_dir / "flag.jsonl", to_flag_rows(rows_by_pair, ds))
    return ts
