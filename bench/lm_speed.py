"""Speed of the in-process llama.cpp backend: load time, prompt and generation throughput, grammar cost.

    python bench/lm_speed.py [--lm local/qwen2.5-coder-0.5b] [--lm local/qwen2.5-coder-1.5b] [--repeats 3]

Calls go through LiteLLM exactly as DSPy sends them. Run on a quiet machine: shared cores halve the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import syneg_dspy  # noqa: F401  (offline switches first)
import litellm
from rich.console import Console
from rich.table import Table

from syneg_dspy.lm import make_lm
from syneg_dspy.lm.local import LOCAL, resolve_local

PROMPT = "Passage: " + " ".join(["Vitamin D regulates calcium absorption and bone mineralisation in older adults."] * 30)
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "Negative",
        "schema": {
            "type": "object",
            "properties": {"passage": {"type": "string"}, "difficulty": {"type": "string", "enum": ["easy", "hard"]}},
            "required": ["passage", "difficulty"],
            "additionalProperties": False,
        },
    },
}


def timed(model: str, content: str, max_tokens: int, **kw) -> tuple[float, int, int]:
    start = time.perf_counter()
    r = litellm.completion(model, [{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0.0, **kw)
    return time.perf_counter() - start, r.usage.prompt_tokens, r.usage.completion_tokens


def bench(model: str, repeats: int) -> list[str]:
    make_lm(model)  # assembles/verifies an embedded model, registers schema support
    start = time.perf_counter()
    LOCAL.model(resolve_local(model.split("/", 1)[1]))
    load = time.perf_counter() - start
    prompt = [timed(model, PROMPT + f" ({i})", 1) for i in range(repeats)]  # distinct prompts: no KV reuse
    free = [timed(model, f"Count from {i} to 200, separated by spaces.", 96) for i in range(repeats)]
    grammar = [timed(model, f"Describe vitamin D ({i}) in JSON.", 96, response_format=SCHEMA) for i in range(repeats)]
    prompt_tps = statistics.median(p / s for s, p, _ in prompt)
    gen_tps = statistics.median(c / s for s, _, c in free)
    json_tps = statistics.median(c / s for s, _, c in grammar)
    return [model, f"{load:.2f}", f"{prompt_tps:.0f}", f"{gen_tps:.1f}", f"{json_tps:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", action="append", help="local/... model strings (repeatable)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = Table(title=f"llama.cpp through LiteLLM (median of {args.repeats})")
    for column in ("--lm", "load s", "prompt tok/s", "gen tok/s", "JSON-grammar gen tok/s"):
        table.add_column(column, justify="left" if column == "--lm" else "right")
    for model in args.lm or ["local/qwen2.5-coder-0.5b"]:
        table.add_row(*bench(model, args.repeats))
    Console().print(table)


if __name__ == "__main__":
    main()
