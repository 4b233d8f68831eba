"""The source-shortcut check, with the embedded MiniLM on SciFact sample passages."""

import random

import pytest

from syneg_dspy.data import load_dataset
from syneg_dspy.evaluate.separability import separability, separability_by_strategy
from syneg_dspy.retrieval import load_encoder


@pytest.fixture(scope="module")
def passages(sample_path):
    ds = load_dataset(sample_path)
    return [ds.doc_text(d) for d in sorted(ds.corpus)]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def test_corpus_against_itself_is_indistinguishable(passages, encoder):
    held_out, rest = passages[:40], passages[40:]
    s = separability(held_out, rest, encoder)
    assert s.n == 40 and 0.3 <= s.auc <= 0.75 and s.length_auc < 0.75


def test_short_templated_text_is_separable(passages, encoder):
    rng = random.Random(0)
    templated = [f"The {w} study found no effect of {v} on outcomes." for w, v in
                 ((rng.choice(["cohort", "trial", "survey"]), rng.choice(["diet", "sleep", "exercise", "dose"]))
                  for _ in range(40))]
    s = separability(templated, passages, encoder)
    assert s.auc > 0.95 and s.length_auc > 0.95
    assert s.words_synthetic < s.words_corpus and s.distinct_synthetic > 0


def test_too_few_gives_no_auc_and_groups_follow_strategies(passages, encoder):
    assert separability(passages[:5], passages[5:], encoder).auc is None
    rows = [{"verdict": "accepted", "text": t, "attributes": {"strategy": "rewrite_mined" if i % 2 else "generate"}}
            for i, t in enumerate(passages[:30])] + [{"verdict": "rejected", "text": "x", "attributes": {}}]
    by = separability_by_strategy(rows, passages[30:], encoder)
    assert {k: v["n"] for k, v in by.items()} == {"generate": 15, "rewrite_mined": 15, "all": 30}
