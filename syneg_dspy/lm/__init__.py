"""LLM backends: every ``--lm`` is a LiteLLM model string, plus ``local/...`` (llama.cpp) and ``scripted/...`` (tests).

Importing this package registers the in-process providers with LiteLLM.
"""

import syneg_dspy  # noqa: F401  (offline switches before litellm is imported)
from syneg_dspy.lm.backends import check_backend, list_backends, make_lm, register_providers
from syneg_dspy.lm.models import critique_mined, embedded_model_path
from syneg_dspy.lm.scripted import register_script

__all__ = [
    "check_backend", "critique_mined", "embedded_model_path", "list_backends", "make_lm", "register_providers",
    "register_script",
]
