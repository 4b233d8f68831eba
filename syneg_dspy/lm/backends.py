"""Every ``--lm`` is a LiteLLM model string; ``make_lm`` turns it into a ``dspy.LM`` that routes through LiteLLM.

Besides LiteLLM's own providers (``openai/...``, ``ollama_chat/...``, ``hosted_vllm/...`` with ``api_base``;
keys come from the provider's usual environment variables and are never stored), three in-process providers
are registered: ``local/...`` (llama.cpp), ``scripted/...`` (tests) and ``router/<group>`` (a ``litellm.Router``
over several endpoints, from a LiteLLM router config: ``syneg_dspy/lm/router.py``).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import dspy
import litellm
from dspy.utils.exceptions import LMError

from syneg_dspy.errors import InputError
from syneg_dspy.lm.local import DECODING, LOCAL, N_CTX, resolve_local
from syneg_dspy.lm.models import EMBEDDED, model_status
from syneg_dspy.lm.router import ENV_VAR as ROUTER_ENV_VAR
from syneg_dspy.lm.router import ROUTER, check_group
from syneg_dspy.lm.scripted import ScriptedLLM, script_names, script_version

_HANDLERS = {"local": LOCAL, "scripted": ScriptedLLM(), "router": ROUTER}
_SCHEMA_CAPABLE = ("local", "scripted")  # in-process models that honour a JSON schema; a router's depend on its fleet


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
    router_config: str | Path | None = None,
    **kw,
) -> dspy.LM:
    """A ``dspy.LM`` for any LiteLLM model string, always through LiteLLM (``engine="litellm"``).

    ``router/<group>`` reads ``router_config`` (default ``$SYNEG_ROUTER_CONFIG``) now, so a bad config or an
    unknown group fails here as one line; retries and fallbacks are then the Router's, not DSPy's.
    """
    if not model or model.endswith("/"):
        raise InputError(f"--lm {model!r}: expected a LiteLLM model string such as openai/gpt-4o-mini")
    provider, _, name = model.partition("/")
    if provider == "local":
        resolve_local(name)  # missing parts or a bad path fail here, as one line, not inside a call
        # Part of DSPy's cache key: answers cached under other decoding settings are not replayed.
        kw.setdefault("metadata", {"decoding": DECODING})
    if provider == "router":
        if api_base:
            raise InputError(f"--api-base does not apply to {model}: the router config names each deployment's api_base")
        loaded = check_group(name, router_config)
        kw.setdefault("metadata", {"router_config": str(loaded.path)})
    if provider in _SCHEMA_CAPABLE:
        _advertise_schema_support(model)
    if provider in _HANDLERS:
        kw.setdefault("num_retries", 0)  # in-process: no healing by waiting; router: the Router retries itself
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
    rows.append({"name": "router/<model_group>", "kind": "router", "available": bool(os.environ.get(ROUTER_ENV_VAR)),
                 "config": os.environ.get(ROUTER_ENV_VAR)})
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


def check_backend(model: str, api_base: str | None = None, router_config: str | Path | None = None) -> dict:
    """One real, uncached call: how long it took, what came back, how many tokens it used."""
    lm = make_lm(model, api_base=api_base, temperature=0.0, max_tokens=16, cache=False, num_retries=0,
                 router_config=router_config)
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
