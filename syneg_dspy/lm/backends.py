"""Every ``--lm`` is a LiteLLM model string; ``make_lm`` turns it into a ``dspy.LM`` that routes through LiteLLM.

Besides LiteLLM's own providers (``openai/...``, ``ollama_chat/...``, ``hosted_vllm/...`` with ``api_base``;
keys come from the provider's usual environment variables and are never stored), two in-process providers
are registered: ``local/...`` (llama.cpp) and ``scripted/...`` (tests).
"""

from __future__ import annotations

import importlib.util
import time

import dspy
import litellm
from dspy.utils.exceptions import LMError

from syneg_dspy.errors import InputError
from syneg_dspy.lm.local import LOCAL, N_CTX, resolve_local
from syneg_dspy.lm.models import EMBEDDED, model_status
from syneg_dspy.lm.scripted import ScriptedLLM, script_names, script_version

_HANDLERS = {"local": LOCAL, "scripted": ScriptedLLM()}


def register_providers() -> None:
    """Add our providers to LiteLLM once (idempotent)."""
    present = {item["provider"] for item in litellm.custom_provider_map}
    for name, handler in _HANDLERS.items():
        if name not in present:
            litellm.custom_provider_map.append({"provider": name, "custom_handler": handler})
    # LiteLLM learns custom providers on the first completion; capability lookups
    # (DSPy's JSONAdapter asks before calling) need them known now.
    litellm.utils.custom_llm_setup()


def _advertise_schema_support(model: str) -> None:
    """Tell LiteLLM (hence DSPy's JSONAdapter) that this in-process model honours a JSON schema,
    so the adapter sends one and llama.cpp constrains the output to it."""
    if model not in litellm.model_cost:
        litellm.register_model(
            {
                model: {
                    "litellm_provider": model.split("/", 1)[0],
                    "mode": "chat",
                    "max_input_tokens": N_CTX,
                    "max_output_tokens": N_CTX,
                    "max_tokens": N_CTX,
                    "supports_response_schema": True,
                }
            }
        )


def make_lm(
    model: str,
    *,
    api_base: str | None = None,
    temperature: float = 0.7,
    max_tokens: int = 512,
    cache: bool = True,
    **kw,
) -> dspy.LM:
    """A ``dspy.LM`` for any LiteLLM model string, always through LiteLLM (``engine="litellm"``)."""
    if not model or model.endswith("/"):
        raise InputError(f"--lm {model!r}: expected a LiteLLM model string such as openai/gpt-4o-mini")
    provider, _, name = model.partition("/")
    if provider == "local":
        resolve_local(name)  # missing parts or a bad path fail here, as one line, not inside a call
    if provider in _HANDLERS:
        _advertise_schema_support(model)
        kw.setdefault("num_retries", 0)  # an in-process failure does not heal by waiting
    if provider == "scripted":
        # Part of DSPy's cache key: a re-registered script never sees an earlier script's cached answers.
        kw.setdefault("metadata", {"script_version": script_version(name)})
    if api_base:
        kw["api_base"] = api_base
    return dspy.LM(model, engine="litellm", temperature=temperature, max_tokens=max_tokens, cache=cache, **kw)


def list_backends() -> list[dict]:
    """What ``--lm`` can be: the embedded models (and whether they are installed), any GGUF, scripts, LiteLLM."""
    rows = []
    for name in EMBEDDED:
        status = model_status(name)
        rows.append(
            {"name": f"local/{name}", "kind": "embedded", "available": status["parts_installed"] or status["assembled"], **status}
        )
    rows.append({"name": "local/<path>.gguf", "kind": "local", "available": importlib.util.find_spec("llama_cpp") is not None})
    rows.append({"name": "scripted/<name>", "kind": "scripted", "available": True, "scripts": script_names()})
    rows.append(
        {
            "name": "<provider>/<model>",
            "kind": "litellm",
            "available": True,
            "note": "any LiteLLM model string, e.g. openai/gpt-4o-mini, ollama_chat/qwen2.5, hosted_vllm/<model> "
            "with --api-base; keys come from the provider's usual environment variables",
        }
    )
    return rows


def check_backend(model: str, api_base: str | None = None) -> dict:
    """One real, uncached call: how long it took, what came back, how many tokens it used."""
    lm = make_lm(model, api_base=api_base, temperature=0.0, max_tokens=16, cache=False, num_retries=0)
    start = time.perf_counter()
    try:
        outputs = lm("Reply with the single word: ready")
    except LMError as err:
        raise InputError(f"{model}: {type(err).__name__}: {' '.join(str(err).split())}") from None
    latency = time.perf_counter() - start
    usage = (lm.history[-1].get("usage") or {}) if lm.history else {}
    text = outputs[0] if outputs else ""
    return {
        "model": model,
        "latency_s": round(latency, 3),
        "text": text if isinstance(text, str) else text.get("text", ""),
        "tokens": usage.get("total_tokens"),
    }


register_providers()
