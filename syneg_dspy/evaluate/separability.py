"""Source-shortcut check: can a classifier tell synthetic negatives from real corpus passages?

If it can, a retriever trained on them may learn "written by the LLM = not relevant" from style
alone instead of relevance. Measured as the cross-validated ROC AUC of a logistic regression on
base-encoder embeddings (0.5 = indistinguishable, 1.0 = fully separable), the same for length
alone, and the length and vocabulary statistics that usually explain a high AUC.

Inputs: synthetic passages, corpus passages to compare with (a same-size seeded sample is drawn),
a sentence-transformers encoder. Output: a ``Separability`` of plain numbers.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from statistics import mean
from typing import Any, Sequence

import numpy as np

_WORD = re.compile(r"\w+")
MIN_PER_CLASS = 10  # below this a cross-validated AUC is noise


@dataclass
class Separability:
    n: int  # synthetic passages compared (and as many corpus passages)
    auc: float | None  # embeddings → logistic regression, cross-validated; None below MIN_PER_CLASS
    length_auc: float | None  # word count alone, folded so that 0.5 is the floor
    words_synthetic: float  # mean words per passage
    words_corpus: float
    distinct_synthetic: float  # mean share of distinct words per passage (low = repetitive)
    distinct_corpus: float

    def to_dict(self) -> dict:
        return asdict(self)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _distinct(words: list[str]) -> float:
    return len(set(words)) / len(words) if words else 0.0


def separability(
    synthetic: Sequence[str], corpus: Sequence[str], encoder: Any, *, folds: int = 5, seed: int = 0
) -> Separability:
    """How separable ``synthetic`` is from a seeded sample of ``corpus`` of the same size."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    real = random.Random(seed).sample(list(corpus), min(len(synthetic), len(corpus)))
    synthetic = list(synthetic)[: len(real)]
    n = len(real)
    syn_words, real_words = [_words(t) for t in synthetic], [_words(t) for t in real]
    auc = length_auc = None
    if n >= MIN_PER_CLASS:
        y = np.array([1] * n + [0] * n)
        x = encoder.encode(synthetic + real, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        cv = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
        auc = float(cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=cv, scoring="roc_auc").mean())
        lengths = [len(w) for w in syn_words + real_words]
        length_auc = float(roc_auc_score(y, lengths))
        length_auc = max(length_auc, 1 - length_auc)  # shorter or longer: either way it is a tell
    return Separability(
        n=n,
        auc=None if auc is None else round(auc, 4),
        length_auc=None if length_auc is None else round(length_auc, 4),
        words_synthetic=round(mean(map(len, syn_words)), 1) if n else 0.0,
        words_corpus=round(mean(map(len, real_words)), 1) if n else 0.0,
        distinct_synthetic=round(mean(map(_distinct, syn_words)), 3) if n else 0.0,
        distinct_corpus=round(mean(map(_distinct, real_words)), 3) if n else 0.0,
    )


def separability_by_strategy(rows: Sequence[dict], corpus: Sequence[str], encoder: Any, seed: int = 0) -> dict[str, dict]:
    """``separability`` of the accepted rows of each strategy (and of all of them as ``all``)."""
    accepted = [r for r in rows if r.get("verdict") == "accepted"]
    groups: dict[str, list[str]] = {}
    for row in accepted:
        groups.setdefault((row.get("attributes") or {}).get("strategy", "generate"), []).append(row["text"])
    if len(groups) > 1:
        groups["all"] = [r["text"] for r in accepted]
    return {name: separability(texts, corpus, encoder, seed=seed).to_dict() for name, texts in groups.items()}
