"""The SciFact sample bundled with the package: quick start, ``syneg run`` defaults and fast tests.

``cut_sample`` is how it was made (from ../shared/datasets/scifact, seed 0): a few train and test
queries with all their judged docs, plus random corpus docs as distractors.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "sample" / "scifact"


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        out.setdefault(q, {})[d] = int(g)
    return out


def cut_sample(src: Path, dst: Path, n_train: int = 80, n_test: int = 40, n_distractors: int = 500, seed: int = 0) -> None:
    rng = random.Random(seed)
    qrels = {split: _read_qrels(src / "qrels" / f"{split}.tsv") for split in ("train", "test")}
    picked = {
        "train": dict(rng.sample(sorted(qrels["train"].items()), n_train)),
        "test": dict(rng.sample(sorted(qrels["test"].items()), n_test)),
    }
    docs = {d for split in picked.values() for judged in split.values() for d in judged}
    corpus_lines = (src / "corpus.jsonl").read_text().splitlines()
    others = [line for line in corpus_lines if json.loads(line)["_id"] not in docs]
    keep_ids = docs | {json.loads(line)["_id"] for line in rng.sample(others, n_distractors)}
    qids = {q for split in picked.values() for q in split}

    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    (dst / "corpus.jsonl").write_text(
        "".join(line + "\n" for line in corpus_lines if json.loads(line)["_id"] in keep_ids)
    )
    (dst / "queries.jsonl").write_text(
        "".join(
            json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n"
            for q in map(json.loads, (src / "queries.jsonl").read_text().splitlines())
            if q["_id"] in qids
        )
    )
    for split, judged in picked.items():
        rows = [f"{q}\t{d}\t{g}" for q, docs_ in judged.items() for d, g in docs_.items()]
        (dst / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    shutil.copy(src / "SOURCE.md", dst / "SOURCE.md")


if __name__ == "__main__":  # python -m syneg_dspy.data.sample  (rebuilds the bundled sample)
    cut_sample(Path(__file__).resolve().parents[3] / "shared" / "datasets" / "scifact", SAMPLE_PATH)
