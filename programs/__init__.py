"""DSPy programs that write synthetic hard negatives (SyNeg) and the prompts they are made of."""

from programs.attributes import DEFAULT_STRATEGY, Attributes, sample_attributes

__all__ = ["DEFAULT_STRATEGY", "Attributes", "SyNeg", "load_program", "program_hash", "sample_attributes"]


def __getattr__(name: str):
    """The DSPy module on first use: the CLI reads attributes' defaults without importing DSPy."""
    if name in ("SyNeg", "load_program", "program_hash"):
        from programs import syneg

        return getattr(syneg, name)
    raise AttributeError(f"module 'programs' has no attribute {name!r}")
