"""DSPy programs that write synthetic hard negatives (SyNeg) and the prompts they are made of."""

from programs.attributes import Attributes, sample_attributes
from programs.syneg import SyNeg, load_program, program_hash

__all__ = ["Attributes", "SyNeg", "load_program", "program_hash", "sample_attributes"]
