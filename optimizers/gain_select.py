"""A teleprompter for a set-level metric: DSPy's own optimizers propose, the retriever gain decides.

DSPy's teleprompters score a program as the mean of a per-example metric; a retriever's gain from a
set of negatives is not a mean over negatives (one good negative per query helps, ten copies do not).
So the proposer (``dspy.BootstrapFewShotWithRandomSearch``, ``dspy.MIPROv2``, ...) runs with the cheap
per-example proxy (``GuardProxy``), its candidate programs are shortlisted by that proxy, and each
shortlisted program, and the student itself, is scored once by ``gain(program)``; the highest gain is
kept, the student on a tie (no evidence, no change).

Inputs: ``compile(student, trainset=examples, valset=examples)`` as for any DSPy teleprompter.
Output: the chosen program, with ``compile_report`` (every scored candidate) attached.
"""

from __future__ import annotations

from typing import Any, Callable

import dspy
from dspy.teleprompt import Teleprompter

from programs.syneg import program_hash


class GainSelect(Teleprompter):
    """``gain(program) -> dict`` must hold a ``"gain"`` float; ``keep`` proposer candidates are scored."""

    def __init__(self, proposer: Teleprompter, gain: Callable[[dspy.Module], dict[str, Any]], keep: int = 3):
        super().__init__()
        self.proposer, self.gain, self.keep = proposer, gain, keep

    def compile(self, student: dspy.Module, *, trainset, teacher=None, valset=None, **kwargs) -> dspy.Module:
        if teacher is not None:
            kwargs["teacher"] = teacher
        best_by_proxy = self.proposer.compile(student, trainset=trainset, valset=valset, **kwargs)
        proposed = getattr(best_by_proxy, "candidate_programs", None) or [{"program": best_by_proxy, "score": None}]
        ranked = sorted(proposed, key=lambda c: -(c["score"] if c["score"] is not None else float("-inf")))
        shortlist, seen = [(student, None, "student")], {program_hash(student)}
        for candidate in ranked:
            h = program_hash(candidate["program"])
            if h not in seen and len(shortlist) <= self.keep:
                seen.add(h)
                shortlist.append((candidate["program"], candidate["score"], f"proposed #{len(shortlist)}"))
        report, best, best_gain = [], student, None
        for program, proxy, label in shortlist:
            scored = self.gain(program)
            report.append({"candidate": label, "program_hash": program_hash(program), "proxy": proxy, **scored,
                           "demos": {name: len(p.demos) for name, p in program.named_predictors()}})
            if best_gain is None or scored["gain"] > best_gain:
                best, best_gain = program, scored["gain"]
        best = best.deepcopy()
        best.compile_report = report
        return best
