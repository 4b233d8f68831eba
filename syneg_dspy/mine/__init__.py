"""Retrieved hard negatives and the training-set formats every negative source is written in."""

from syneg_dspy.mine.formats import TrainingSet, group_by_pair, save_hf_dataset, to_flag_rows, to_st_rows, write_training_set
from syneg_dspy.mine.negatives import deepen, mine_negatives

__all__ = [
    "TrainingSet",
    "deepen",
    "group_by_pair",
    "mine_negatives",
    "save_hf_dataset",
    "to_flag_rows",
    "to_st_rows",
    "write_training_set",
]
