"""A deterministic LLM for tests: ``scripted/<name>`` answers with whatever a registered function returns.

The script sees the chat messages and the call's parameters (temperature, max_tokens, response_format...),
so a test can return valid JSON, garbage, or truncated text and watch DSPy's adapters react.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Callable

from litellm.llms.custom_llm import CustomLLM, CustomLLMError

from syneg_dspy.lm.response import chat_response

Script = Callable[[list[dict], dict], str]

_scripts: dict[str, tuple[Script, int]] = {}
_versions = itertools.count(1)
_lock = threading.Lock()


def register_script(name: str, fn: Script) -> None:
    """Make ``scripted/<name>`` answer with ``fn(messages, kwargs)``; re-registering replaces the script."""
    with _lock:
        _scripts[name] = (fn, next(_versions))


def script_version(name: str) -> int:
    """Changes whenever ``name`` is (re-)registered; part of the DSPy cache key, so a new script is never
    answered from an old script's cache entry."""
    with _lock:
        return _scripts[name][1] if name in _scripts else 0


def script_names() -> list[str]:
    with _lock:
        return sorted(_scripts)


def _words(text: str) -> int:
    return len(text.split())


def _content_text(content) -> str:
    if isinstance(content, list):  # multi-part content: count the text parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


class ScriptedLLM(CustomLLM):
    """LiteLLM custom provider ``scripted``; usage counts whitespace-separated words."""

    def completion(self, model: str, messages: list, *args, optional_params: dict, **kwargs):
        with _lock:
            entry = _scripts.get(model)
        if entry is None:
            raise CustomLLMError(status_code=404, message=f"no script registered as {model!r}")
        text = entry[0](messages, dict(optional_params))
        prompt_tokens = sum(_words(_content_text(m.get("content"))) for m in messages)
        return chat_response(f"scripted/{model}", text, prompt_tokens, _words(text))

    async def acompletion(self, model: str, messages: list, *args, **kwargs):
        return await asyncio.to_thread(self.completion, model, messages, *args, **kwargs)
