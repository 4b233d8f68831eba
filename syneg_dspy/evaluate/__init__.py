"""Retrieval quality of an encoder on a dataset split (BEIR metrics)."""

from syneg_dspy.evaluate.metrics import evaluate, retrieve, score_run

__all__ = ["evaluate", "retrieve", "score_run"]
