"""The cheap per-example metric DSPy's optimizers bootstrap and rank candidates with: hardness × safety.

Safety is the guard's verdict (0 for anything it rejects); hardness is how close the base encoder
puts the negative to the query, relative to the positive (``cos(q, neg) / cos(q, pos)``, clipped to
[0, 1]): a safe negative the retriever already ranks near the positive teaches it the most. This only
proposes demos and shortlists candidates; the program that is kept is chosen by the retriever gain.

Inputs: a ``dspy.Example`` made by ``optimizers.compile.item_example`` (the runner's inputs, plus the
full ``full_positive`` the guard compares against) and the SyNeg prediction.
"""

from __future__ import annotations

import dspy

from syneg_dspy.generate.guard import ADVICE, Guard, hardness


class GuardProxy:
    """``metric(example, pred, trace=None)``: a float in [0, 1]; with a trace (bootstrapping), whether
    the negative is worth keeping as a demo (accepted and at least ``demo_hardness`` hard).

    Called as GEPA's feedback metric (``pred_name`` given), it returns ``dspy.Prediction(score,
    feedback)``: the same score and, in words, the guard's verdict or how hard the accepted negative is,
    which is what GEPA's reflection LM reads to propose a new instruction.
    """

    def __init__(self, guard: Guard, demo_hardness: float = 0.5):
        self.guard, self.demo_hardness = guard, demo_hardness

    def __call__(self, example, pred, trace=None, pred_name=None, pred_trace=None):
        score, feedback = self.judge(example, pred)
        if pred_name is not None:
            return dspy.Prediction(score=score, feedback=feedback)
        return score >= self.demo_hardness if trace is not None else score

    def judge(self, example, pred) -> tuple[float, str]:
        """The score and why, in one sentence."""
        if pred.get("edit_issue"):
            return 0.0, f"Rejected: the edit could not be applied ({pred.edit_issue})."
        if not pred.get("negative"):
            return 0.0, f"Rejected: {ADVICE['empty']}."
        verdict = self.guard.check(example.query, example.full_positive, pred.negative, critique=pred.critique,
                                   source=example.get("source"), strategy=example.attributes.strategy)
        if not verdict.accepted:
            return 0.0, f"Rejected ({verdict.reason}): {ADVICE.get(verdict.reason, verdict.reason)}."
        score = hardness(verdict)
        return score, (f"Accepted. Its similarity to the query is {score:.2f} of the positive's: the closer to 1, the "
                       "harder the negative and the more a retriever learns from it, as long as it still does not "
                       "answer the query.")
