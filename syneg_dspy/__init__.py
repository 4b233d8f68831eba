"""syneg-dspy: synthetic hard negatives for dense retrievers, written by compiled DSPy programs.

Importing the package sets the offline switches first, so that litellm, huggingface_hub and
datasets never reach for the network on a machine that has none.
"""

from syneg_dspy.env import configure_offline

configure_offline()

__version__ = "0.1.0"
