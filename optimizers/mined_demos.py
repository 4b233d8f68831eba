"""Seed the generator with retrieved negatives as demonstrations (DSPy's LabeledFewShot, generator only).

Small local models given only instructions copy the positive or write about the task; two real
passages that share a query's subject without answering it show them the kind of text wanted, in the
corpus' own style. ``dspy.LabeledFewShot`` would give the same demos to the critique and revise
predictors too, whose fields differ, so this teleprompter sets the generator's demos alone.
"""

from __future__ import annotations

import random

import dspy

from programs.attributes import sample_attributes
from programs.syneg import SyNeg
from syneg_dspy.data.dataset import Dataset
from programs.syneg import excerpt
from syneg_dspy.generate.runner import POSITIVE_WORDS

REASONING = "It shares the query's subject and key terms but studies another question, so it gives no evidence on the query."


def mined_examples(ds: Dataset, retrieved_rows: list[dict], words: int = POSITIVE_WORDS, seed: int = 0) -> list[dspy.Example]:
    """One generator example per (query, positive) with a retrieved negative: inputs as the runner shows them."""
    seen, examples = set(), []
    for row in retrieved_rows:
        pair = (row["qid"], row["pos_id"])
        if pair in seen:
            continue
        seen.add(pair)
        attributes = sample_attributes(row["qid"], 1, seed)[0]
        examples.append(
            dspy.Example(
                query=ds.queries[row["qid"]],
                positive=excerpt(ds.doc_text(row["pos_id"]), words),
                attributes=attributes.describe(),
                reasoning=REASONING,
                negative=excerpt(row["text"], words),
            ).with_inputs("query", "positive", "attributes")
        )
    return examples


class MinedDemos:
    """``compile(student, trainset=examples)``: a copy of ``student`` whose generator holds ``k`` seeded demos."""

    def __init__(self, k: int = 2, seed: int = 0):
        self.k, self.seed = k, seed

    def compile(self, student: SyNeg, *, trainset: list[dspy.Example]) -> SyNeg:
        program = student.deepcopy()
        program.generate.demos = random.Random(self.seed).sample(trainset, min(self.k, len(trainset)))
        return program


def with_mined_demos(program: SyNeg, ds: Dataset, retrieved_rows: list[dict], k: int = 2, seed: int = 0) -> SyNeg:
    """``program`` with ``k`` retrieved negatives as generator demos, unless it already has demos (a compiled one)."""
    if k <= 0 or program.generate.demos or not retrieved_rows:
        return program
    return MinedDemos(k=k, seed=seed).compile(program, trainset=mined_examples(ds, retrieved_rows, seed=seed))
