"""The SyNeg attribute space: what kind of hard negative to ask for, sampled per query.

Varying the attributes (domain, difficulty, length, kind of near-miss) is how SyNeg gets diverse
negatives out of one prompt; sampling is seeded by (seed, qid) so a rerun asks for the same items.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass, fields
from typing import Sequence

DIFFICULTIES = {
    "easy": "shares the topic but is clearly about something else",
    "medium": "shares the topic and several key terms; a careful reader sees it does not answer",
    "hard": "reads almost like an answer; only one decisive detail makes it miss",
}

LENGTHS = {
    "short": "1-2 sentences",
    "medium": "3-4 sentences",
    "long": "5-6 sentences",
}

# No "contradiction" kind: in claim-verification data (SciFact) a passage refuting the claim is a
# relevant document, so asking for one would manufacture false negatives.
NEAR_MISSES = {
    "topic_drift": "same field and key terms, but about a neighbouring question",
    "entity_swap": "about a different entity (gene, drug, population, material, place) than the query",
    "partial_answer": "gives background on the query's subject but no evidence on the query itself",
    "wrong_condition": "reports a result under a different condition (dose, species, setting, time period)",
    "passing_mention": "mentions the query's subject only in passing while discussing something else",
}

# How the negative is made. Free generation is the paper's; a rewrite asks only for one phrase
# replacement in a real corpus passage, applied by code, so the result keeps the corpus' style and
# length (see RewriteNegative).
STRATEGIES = {
    "generate": "write a new passage",
    "rewrite_mined": "the source does not answer the query; replace a term of the source with a key term of "
    "the query, so the source looks relevant but still does not answer",
    "rewrite_positive": "the source answers the query; replace the source's words for the query's key entity or "
    "condition with a different one, so it no longer answers",
}

# What `syneg run`, `syneg compile` and (given --mined) `syneg generate` use: on SciFact with the 0.5B it accepts
# 4x as many negatives per call as `generate`, leaks less (3 % vs 20 % by hand), is harder to tell from corpus text
# (AUC 0.64 vs 0.87), and its hybrid trains the better retriever, within the noise (bench/RESULTS.md, 2026-12-02).
DEFAULT_STRATEGY = "rewrite_mined"


@dataclass(frozen=True)
class Attributes:
    """One requested negative: plain values, serialised as a dict into every generated row."""

    difficulty: str
    length: str
    near_miss: str
    domain: str | None = None
    strategy: str = "generate"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Attributes":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def describe(self) -> str:
        """The text the LM sees: each attribute with what it means, one per line."""
        lines = [f"domain: {self.domain}"] if self.domain else []
        if self.strategy != "generate":  # a rewrite keeps its source's length
            lines.append(f"strategy: {self.strategy} ({STRATEGIES[self.strategy]})")
        lines.append(f"difficulty: {self.difficulty} ({DIFFICULTIES[self.difficulty]})")
        if self.strategy == "generate":
            lines.append(f"length: {LENGTHS[self.length]}")
        lines.append(f"near-miss: {self.near_miss} ({NEAR_MISSES[self.near_miss]})")
        return "\n".join(lines)


def parse_strategies(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"generate,rewrite_mined"`` (or a list) → a checked tuple; ``"mixed"`` means all of them."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip() for n in names if n.strip()]
    if names == ["mixed"]:
        return tuple(STRATEGIES)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise ValueError(f"unknown strategy {', '.join(unknown) or value!r}: choose from {', '.join(STRATEGIES)} or mixed")
    return tuple(dict.fromkeys(names))


def sample_attributes(
    qid: str, k: int, seed: int = 0, domain: str | None = None, strategies: Sequence[str] = ("generate",)
) -> list[Attributes]:
    """``k`` distinct attribute sets for a query, the same for the same ``(qid, seed, strategies)``.

    Distinct so that a query's items never send an identical prompt (which DSPy's cache would
    answer with the identical negative); beyond the grid's size, combinations repeat. The strategy
    is one more attribute, so a mixed run spreads its items over the strategies at random.
    """
    grid = list(itertools.product(DIFFICULTIES, LENGTHS, NEAR_MISSES, strategies))
    rng = random.Random(f"{seed}:{qid}")
    picks = rng.sample(grid, min(k, len(grid))) + [rng.choice(grid) for _ in range(k - len(grid))]
    return [Attributes(difficulty=d, length=ln, near_miss=n, domain=domain, strategy=s) for d, ln, n, s in picks]
