"""SyNeg as a DSPy module: write a hard negative (generate, or rewrite a source passage), critique it,
revise until it passes.

All state lives in the predictors, so DSPy's own ``save``/``load`` round-trips a compiled
program, and ``program_hash`` (what the generation store keys on) changes exactly when a prompt does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dspy

from programs.attributes import Attributes
from programs.signatures import CritiqueNegative, GenerateNegative, InferDomain, ReviseNegative, RewriteNegative
from syneg_dspy.errors import InputError


class SyNeg(dspy.Module):
    """Multi-attribute self-reflection: draft → critique → (revise → critique)* within ``max_rounds``.

    The draft comes from ``generate`` (free writing) or, for the ``rewrite_*`` strategies, from
    ``rewrite`` editing ``source``. ``rounds`` counts critiques; a negative that never passes is
    returned with ``passed=False`` after ``max_rounds`` critiques, for the guard to reject. When the
    source is the positive, copying it is the method, so the critique's ``copies_positive`` is ignored.
    """

    def __init__(self, max_rounds: int = 2):
        super().__init__()
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self.max_rounds = max_rounds
        self.generate = dspy.Predict(GenerateNegative)
        self.rewrite = dspy.Predict(RewriteNegative)
        self.critique = dspy.Predict(CritiqueNegative)
        self.revise = dspy.Predict(ReviseNegative)
        self.infer_domain = dspy.Predict(InferDomain)

    def forward(
        self, query: str, positive: str, attributes: Attributes | dict | str, source: str | None = None
    ) -> dspy.Prediction:
        if isinstance(attributes, dict):
            attributes = Attributes.from_dict(attributes)
        described = attributes if isinstance(attributes, str) else attributes.describe()
        strategy = "generate" if isinstance(attributes, str) else attributes.strategy

        if strategy == "generate":
            draft = self.generate(query=query, positive=positive, attributes=described)
            reasoning = draft.reasoning
        else:
            if not source:
                raise ValueError(f"strategy {strategy} needs a source passage")
            draft, reasoning = self.rewrite(query=query, source=source, attributes=described), ""
        negative, history = _clean(draft.negative), []
        for round_ in range(1, self.max_rounds + 1):
            critique = self.critique(query=query, positive=positive, negative=negative)
            verdict = {k: critique[k] for k in ("answers_query", "on_topic", "copies_positive", "issues")}
            if strategy == "rewrite_positive":
                verdict["copies_positive"] = False
            passed = bool(verdict["on_topic"]) and not verdict["answers_query"] and not verdict["copies_positive"]
            history.append({"round": round_, "negative": negative, "critique": verdict, "passed": passed})
            if passed or round_ == self.max_rounds:
                break
            revised = self.revise(
                query=query, positive=positive, negative=negative, issues=verdict["issues"], attributes=described
            )
            negative = _clean(revised.revised)
        return dspy.Prediction(
            negative=negative,
            reasoning=reasoning,
            rounds=len(history),
            passed=passed,
            critique=verdict,
            history=history,
        )

    def domain(self, passages: list[str]) -> str:
        """The corpus domain from sample passages: first line, quotes stripped, at most five words
        (small models answer with a passage title)."""
        lines = _clean(self.infer_domain(passages=passages).domain).splitlines()
        return " ".join(lines[0].strip(" .\"'").split()[:5]) if lines else ""


def load_program(path: str | Path | None = None, *, max_rounds: int = 2) -> SyNeg:
    """A SyNeg program: the uncompiled one, or one saved by DSPy's ``save`` (a compiled program)."""
    program = SyNeg(max_rounds=max_rounds)
    if path:
        try:
            program.load(path)
        except (ValueError, KeyError, TypeError) as err:  # json.JSONDecodeError is a ValueError
            raise InputError(f"not a saved SyNeg program: {err}", path) from None
    return program


def _clean(text: str | None) -> str:
    """Small models wrap passages in quotes or whitespace; the passage is what is inside."""
    return (text or "").strip().strip('"').strip()


def program_hash(program: dspy.Module) -> str:
    """Hash of everything that shapes a prompt: per predictor its instructions, fields and demos."""
    state = []
    for name, predictor in program.named_predictors():
        sig = predictor.signature
        state.append(
            {
                "name": name,
                "instructions": sig.instructions,
                "fields": [
                    [fname, f.json_schema_extra["prefix"], f.json_schema_extra["desc"]]
                    for fname, f in sig.fields.items()
                ],
                "demos": [dict(d) for d in predictor.demos],
            }
        )
    blob = json.dumps(state, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
