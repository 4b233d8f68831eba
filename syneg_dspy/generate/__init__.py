"""LLM-written hard negatives: run a SyNeg program over a split and keep what the guard accepts."""

from syneg_dspy.generate.guard import Guard, Verdict
from syneg_dspy.generate.runner import GenerationSummary, generate_negatives, mined_sources

__all__ = ["GenerationSummary", "Guard", "Verdict", "generate_negatives", "mined_sources"]
