"""``local/...``: GGUF models run in-process by llama.cpp, behind LiteLLM's custom-provider interface.

``local/qwen2.5-coder-0.5b`` and ``local/qwen2.5-coder-1.5b`` are the embedded models; ``local/<path>.gguf``
runs any GGUF file. A JSON schema in ``response_format`` becomes a llama.cpp grammar, so even a 0.5B model
returns JSON that parses and has the fields DSPy's JSONAdapter asked for.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

import pydantic
from litellm.llms.custom_llm import CustomLLM

from syneg_dspy.errors import InputError
from syneg_dspy.lm.models import EMBEDDED, embedded_model_path
from syneg_dspy.lm.response import chat_response

# Qwen2.5 0.5B/1.5B loop on long outputs ("PARTICIPANTS ... PARTICIPANTS ..."); 1.3 stopped every loop
# seen on the SciFact sample. A caller's repeat_penalty wins.
REPEAT_PENALTY = 1.3
# Names how this module decodes (penalty, grammar rules); make_lm puts it in DSPy's cache key. Change it with them.
DECODING = f"repeat_penalty={REPEAT_PENALTY};strings=nonempty"
# Our own prompts (demos + passage + critique) fit in 4,096 tokens; MIPROv2's instruction proposer
# sends the program's source (4,572 tokens) and a data summary of 10 examples (7,076), which 4,096 refused.
# A context's KV cache is allocated up front (+110 MB per 1.5B context at 8,192); calls are no slower.
N_CTX = 8192
# llama.cpp contexts per model file, one per system message (one per DSPy predictor): each keeps its
# KV cache, so a prompt that starts like the previous one to the same predictor (system message, demos)
# is only evaluated from where it differs. Prompt evaluation is most of a call's time on 2 cores.
CONTEXTS = 4
_SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "stop", "repeat_penalty", "frequency_penalty", "presence_penalty")
# Schema keywords that turn into huge or unsupported grammar rules; dropping them only loosens the constraint
# (every string then gets minLength 1, which is one cheap rule).
_GRAMMAR_UNSAFE = frozenset({"maxLength", "minLength", "pattern", "format"})
_NAME_MAPS = frozenset({"properties", "$defs", "definitions"})  # keys below these are names, not keywords
_DATA = frozenset({"enum", "const", "default", "examples"})  # values below these are data, not schemas


def resolve_local(model_id: str) -> Path:
    """The GGUF behind ``local/<model_id>``; embedded models are assembled and verified on first use."""
    if model_id in EMBEDDED:
        return embedded_model_path(model_id)
    if model_id.endswith(".gguf"):
        path = Path(model_id).expanduser()
        if not path.is_file():
            raise InputError("no such GGUF file", path)
        return path.resolve()
    raise InputError(
        f"unknown local model {model_id!r}: use local/<name> with name in {', '.join(EMBEDDED)}, or local/<path>.gguf"
    )


def _strip(node, keep=False):
    if keep:
        return node
    if isinstance(node, list):
        return [_strip(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _GRAMMAR_UNSAFE:
            continue
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: _strip(sub) for name, sub in value.items()}
        else:
            out[key] = _strip(value, keep=key in _DATA)
    if out.get("type") == "string" and not _DATA & out.keys():
        out["minLength"] = 1  # an empty field is never an answer; small models emit "" for the hard ones
    return out


def grammar_format(response_format) -> dict | None:
    """Translate an OpenAI-style ``response_format`` (dict or pydantic class) into llama.cpp's form:
    ``{"type": "json_object", "schema": ...}`` for a schema, plain ``json_object`` for JSON mode, else None."""
    if response_format is None:
        return None
    if isinstance(response_format, type) and issubclass(response_format, pydantic.BaseModel):
        schema = response_format.model_json_schema()
    elif isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
    elif isinstance(response_format, dict) and response_format.get("type") == "json_object":
        schema = response_format.get("schema")
    else:
        return None
    return {"type": "json_object", "schema": _strip(schema)} if schema else {"type": "json_object"}


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def context_key(messages: list) -> str:
    """Which context serves a prompt: the hash of its system message."""
    system = messages[0]["content"] if messages and messages[0].get("role") == "system" else ""
    return hashlib.sha256(str(system).encode()).hexdigest()


class LocalLLM(CustomLLM):
    """LiteLLM custom provider ``local``: lazily loaded ``llama_cpp.Llama`` contexts, one generation at a time each."""

    def __init__(self) -> None:
        super().__init__()
        # per file: system-message hash → (context, its lock), least recently used first
        self._models: dict[Path, OrderedDict[str, tuple[object, threading.Lock]]] = {}
        self._load_lock = threading.Lock()
        atexit.register(self.close)  # free llama.cpp while its library is still loaded, not at teardown

    def model(self, path: Path, key: str = ""):
        """The context for ``key`` (a system message's hash) and its lock (llama.cpp contexts are not
        thread-safe). Past ``CONTEXTS`` the least recently used context is taken over."""
        with self._load_lock:
            slots = self._models.setdefault(path, OrderedDict())
            if key in slots:
                slots.move_to_end(key)
            elif len(slots) >= CONTEXTS:
                slots[key] = slots.pop(next(iter(slots)))
            else:
                from llama_cpp import Llama  # heavy; only when a local model is used

                n = _threads()
                llama = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=n, n_threads_batch=n, verbose=False)
                slots[key] = (llama, threading.Lock())
            return slots[key]

    def close(self) -> None:
        with self._load_lock:
            for slots in self._models.values():
                for llama, _ in slots.values():
                    llama.close()
            self._models.clear()

    def completion(self, model: str, messages: list, *args, optional_params: dict, **kwargs):
        llama, lock = self.model(resolve_local(model), context_key(messages))
        params = {"repeat_penalty": REPEAT_PENALTY}
        params.update({k: optional_params[k] for k in _SAMPLING if optional_params.get(k) is not None})
        if "max_tokens" not in params and optional_params.get("max_completion_tokens") is not None:
            params["max_tokens"] = optional_params["max_completion_tokens"]
        with lock:
            out = llama.create_chat_completion(
                messages=messages, response_format=grammar_format(optional_params.get("response_format")), **params
            )
        choice, usage = out["choices"][0], out["usage"]
        return chat_response(
            f"local/{model}",
            choice["message"].get("content") or "",
            usage["prompt_tokens"],
            usage["completion_tokens"],
            choice.get("finish_reason") or "stop",
        )

    async def acompletion(self, model: str, messages: list, *args, **kwargs):
        return await asyncio.to_thread(self.completion, model, messages, *args, **kwargs)


LOCAL = LocalLLM()  # the process-wide instance LiteLLM routes ``local/...`` to
