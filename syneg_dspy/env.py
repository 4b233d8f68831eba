"""Process-wide switches, applied before litellm / huggingface / dspy are imported."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of everything syneg caches (assembled GGUF models, embeddings, DSPy's LM cache)."""
    return Path(os.environ.get("SYNEG_CACHE", Path.home() / ".cache" / "syneg-dspy")).expanduser()


def configure_offline() -> None:
    """Set the offline switches unless the user set them; never overrides an explicit value."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else litellm fetches a price map at import
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("DSPY_CACHEDIR", str(cache_dir() / "dspy"))
    # llama.cpp's OpenMP threads busy-wait by default; on a shared CPU that starves them (measured: 1-8 tok/s
    # spinning vs 9-16 tok/s passive). Read once, when libgomp starts (torch ships the same soname).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
