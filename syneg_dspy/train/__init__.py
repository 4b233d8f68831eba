"""Fine-tuning a sentence-transformers encoder with in-batch negatives (MNRL)."""

from syneg_dspy.train.trainer import TrainResult, build_trainer, load_training_dataset, train

__all__ = ["TrainResult", "build_trainer", "load_training_dataset", "train"]
