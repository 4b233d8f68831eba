"""A teleprompter for a set-level metric: DSPy's own optimizers propose, the retriever gain decides.

DSPy's teleprompters score a program as the mean of a per-example metric; a retriever's gain from a
set of negatives is not a mean over negatives (one good negative per query helps, ten copies do not).
So the proposer (``dspy.BootstrapFewShotWithRandomSearch``, ``dspy.MIPROv2``, ``dspy.GEPA``) runs with the cheap
per-example proxy (``GuardProxy``), its candidate programs are shortlisted by that proxy, and each
shortlisted program, and the student itself, is scored once by ``gain(program)``.

No evidence, no change: a candidate replaces the student only if its gain beats the student's by at
least ``min_z`` standard errors of the paired per-dev-query difference (``gain(program)["per_query"]``);
of those, the highest gain is kept. A few negatives among hundreds of train pairs move a few dev
queries either way (the light compile's candidates differed by one or two queries, in a direction
that flipped with the adapter's seed), and keeping such a winner is keeping noise.

Inputs: ``compile(student, trainset=examples, valset=examples)`` as for any DSPy teleprompter.
Output: the chosen program, with ``compile_report`` (every scored candidate, with its ``z`` against
the student) attached.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import dspy
import numpy as np
from dspy.teleprompt import Teleprompter

from programs.syneg import program_hash


class GainSelect(Teleprompter):
    """``gain(program) -> dict`` must hold a ``"gain"`` float and a ``"per_query"`` dict (dev qid →
    gain); ``keep`` proposer candidates are scored."""

    def __init__(self, proposer: Teleprompter, gain: Callable[[dspy.Module], dict[str, Any]], keep: int = 3,
                 min_z: float = 2.0):
        super().__init__()
        self.proposer, self.gain, self.keep, self.min_z = proposer, gain, keep, min_z

    def compile(self, student: dspy.Module, *, trainset, teacher=None, valset=None, **kwargs) -> dspy.Module:
        if teacher is not None:
            kwargs["teacher"] = teacher
        best_by_proxy = self.proposer.compile(student, trainset=trainset, valset=valset, **kwargs)
        ranked = sorted(proposals(best_by_proxy), key=lambda c: -(c["score"] if c["score"] is not None else float("-inf")))
        shortlist, seen = [(student, None, "student")], {program_hash(student)}
        for candidate in ranked:
            h = program_hash(candidate["program"])
            if h not in seen and len(shortlist) <= self.keep:
                seen.add(h)
                shortlist.append((candidate["program"], candidate["score"], f"proposed #{len(shortlist)}"))
        report, best, best_gain, baseline = [], student, None, None
        for program, proxy, label in shortlist:
            scored = dict(self.gain(program))
            per_query = scored.pop("per_query")
            if baseline is None:  # the student is scored first
                baseline = per_query
            z = paired_z(per_query, baseline)
            report.append({"candidate": label, "program_hash": program_hash(program), "proxy": proxy, **scored,
                           "z_vs_student": z, "demos": {name: len(p.demos) for name, p in program.named_predictors()}})
            if best_gain is None or (z >= self.min_z and scored["gain"] > best_gain):
                best, best_gain = program, scored["gain"]
        best = best.deepcopy()
        best.compile_report = report
        return best


def proposals(best: dspy.Module) -> list[dict]:
    """The candidates an optimizer scored, as ``{"program", "score"}``: random search and MIPROv2 attach
    ``candidate_programs``, GEPA (``track_stats=True``) its ``detailed_results``; otherwise only ``best``."""
    if found := getattr(best, "candidate_programs", None):
        return found
    if details := getattr(best, "detailed_results", None):
        return [{"program": p, "score": s} for p, s in zip(details.candidates, details.val_aggregate_scores)]
    return [{"program": best, "score": None}]


def paired_z(a: dict[str, float], b: dict[str, float]) -> float:
    """Mean of ``a[q] - b[q]`` over the shared queries, in standard errors (0 when they never differ)."""
    d = np.array([a[q] - b[q] for q in a.keys() & b.keys()])
    if len(d) < 2 or not d.any():
        return 0.0
    se = d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() / se) if se > 0 else math.copysign(math.inf, d.mean())
