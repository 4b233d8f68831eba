"""One place that turns generated text into the LiteLLM response our in-process providers return."""

from __future__ import annotations

import time
import uuid

from litellm import ModelResponse, Usage


def chat_response(model: str, text: str, prompt_tokens: int, completion_tokens: int, finish_reason: str = "stop") -> ModelResponse:
    """An OpenAI-shaped chat completion with ``usage``, so DSPy's usage tracking and our token counts see it."""
    return ModelResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )
