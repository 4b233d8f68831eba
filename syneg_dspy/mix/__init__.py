"""Hybrid sampling of synthetic and retrieved negatives into a training set."""

from syneg_dspy.mix.hybrid import MixResult, TrainingInstance, mix_negatives, read_negatives, save_mix

__all__ = ["MixResult", "TrainingInstance", "mix_negatives", "read_negatives", "save_mix"]
