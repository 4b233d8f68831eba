"""A JSONAdapter whose response schema limits some string fields to given values.

The values go into the grammar only, not into the prompt: DSPy renders a ``Literal`` output type
four times in the prompt (and in the system message, which then changes with every item, so
llama.cpp cannot reuse its cached prefix). A backend that ignores the schema may still answer
outside the values; callers keep checking.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import dspy
import pydantic


class ChoiceJSONAdapter(dspy.JSONAdapter):
    """``ChoiceJSONAdapter({"find": ["a", "b"]})``: ``find`` must be "a" or "b" where the LM honours a schema."""

    def __init__(self, choices: Mapping[str, Sequence[str]], **kwargs):
        super().__init__(**kwargs)
        self.choices = {name: list(dict.fromkeys(values)) for name, values in choices.items() if values}

    def _prepare_response_format(self, lm, lm_kwargs, signature):
        super()._prepare_response_format(lm, lm_kwargs, signature)
        format_ = lm_kwargs.get("response_format")
        if not (self.choices and isinstance(format_, type) and issubclass(format_, pydantic.BaseModel)):
            return  # JSON mode only: nothing to put the values in
        schema = format_.model_json_schema()
        for name, values in self.choices.items():
            if schema["properties"].get(name, {}).get("type") == "string":
                schema["properties"][name]["enum"] = values
        lm_kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": signature.__name__, "schema": schema, "strict": True},
        }
