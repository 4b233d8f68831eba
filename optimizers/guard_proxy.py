"""The cheap per-example metric DSPy's optimizers bootstrap and rank candidates with: hardness × safety.

Safety is the guard's verdict (0 for anything it rejects); hardness is how close the base encoder
puts the negative to the query, relative to the positive (``cos(q, neg) / cos(q, pos)``, clipped to
[0, 1]): a safe negative the retriever already ranks near the positive teaches it the most. This only
proposes demos and shortlists candidates; the program that is kept is chosen by the retriever gain.

Inputs: a ``dspy.Example`` made by ``optimizers.compile.item_example`` (the runner's inputs, plus the
full ``full_positive`` the guard compares against) and the SyNeg prediction.
"""

from __future__ import annotations

from syneg_dspy.generate.guard import Guard


class GuardProxy:
    """``metric(example, pred, trace=None)``: a float in [0, 1]; with a trace (bootstrapping), whether
    the negative is worth keeping as a demo (accepted and at least ``demo_hardness`` hard)."""

    def __init__(self, guard: Guard, demo_hardness: float = 0.5):
        self.guard, self.demo_hardness = guard, demo_hardness

    def __call__(self, example, pred, trace=None):
        score = self.score(example, pred)
        return score >= self.demo_hardness if trace is not None else score

    def score(self, example, pred) -> float:
        if pred.get("edit_issue") or not pred.get("negative"):
            return 0.0
        verdict = self.guard.check(example.query, example.full_positive, pred.negative, critique=pred.critique,
                                   source=example.get("source"), strategy=example.attributes.strategy)
        if not verdict.accepted:
            return 0.0
        qp, qn = verdict.scores["query_positive"], verdict.scores["query_negative"]
        return max(0.0, min(1.0, qn / qp)) if qp > 0 else 0.0
