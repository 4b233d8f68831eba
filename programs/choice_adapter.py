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
    """``ChoiceJSONAdapter({"find": ["a", "b"]})``: ``find`` must be "a" or "b" where the LM honours a schema.

    ``pairs=("find", "replace", {"a": ["x"], "b": ["y", "z"]})`` ties the second field's values to the
    first's, for embedded (``local/``) models only: llama.cpp's grammar takes the schema's ``anyOf``
    (one object per first value), while strict OpenAI-style schemas refuse an ``anyOf`` root, so
    elsewhere each field keeps its own enum.
    """

    def __init__(self, choices: Mapping[str, Sequence[str]],
                 pairs: tuple[str, str, Mapping[str, Sequence[str]]] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.choices = {name: list(dict.fromkeys(values)) for name, values in choices.items() if values}
        self.pairs = pairs if pairs and pairs[2] else None

    def _prepare_response_format(self, lm, lm_kwargs, signature):
        super()._prepare_response_format(lm, lm_kwargs, signature)
        format_ = lm_kwargs.get("response_format")
        if not (self.choices and isinstance(format_, type) and issubclass(format_, pydantic.BaseModel)):
            return  # JSON mode only: nothing to put the values in
        schema = format_.model_json_schema()
        for name, values in self.choices.items():
            if schema["properties"].get(name, {}).get("type") == "string":
                schema["properties"][name]["enum"] = values
        if self.pairs and str(getattr(lm, "model", "")).startswith("local/"):
            first, second, allowed = self.pairs
            schema = {"anyOf": [
                {**schema, "properties": {**schema["properties"], first: {"type": "string", "enum": [value]},
                                          second: {"type": "string", "enum": list(dict.fromkeys(seconds))}}}
                for value, seconds in allowed.items()
            ]}
        lm_kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": signature.__name__, "schema": schema, "strict": True},
        }
