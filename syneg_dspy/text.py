"""Word-level text helpers shared by the guard (overlap checks) and the rewrite program (phrase lists)."""

from __future__ import annotations

import re

WORD = re.compile(r"\w+(?:[-'.]\w+)*")
# Function words carry no topic; overlap on them says nothing about copying, and they never start a phrase.
STOP = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how if in into is it its "
    "may might no not of on or our so such than that the their then there these they this those to was we were "
    "what when where which while who whom why will with would".split()
)


def words(text: str) -> list[str]:
    """Lower-cased words; hyphens, apostrophes and inner dots stay inside a word."""
    return WORD.findall(text.lower())


def content(tokens: list[str]) -> set[str]:
    return {w for w in tokens if w not in STOP}


# Also end a phrase: connectives and the verbs abstracts are made of.
_BREAK = STOP | frozenset(
    "about after all also among any based before between both during each found however including less more "
    "most only other over per show showed shown shows than through under using used very versus via vs well "
    "whether within without background methods results conclusions objective purpose context".split()
)
_ENTITY = re.compile(r"[\w-]*\d[\w-]*|[\w-]*[A-Z][\w-]*[A-Z][\w-]*")  # has a digit or two capitals: B6, PrP, SIDS, HIV-1


def phrases(text: str, k: int, max_words: int = 3) -> list[str]:
    """Up to ``k`` distinct phrases of ``text`` worth replacing, as written, in order of first
    occurrence: maximal runs of topic words within a clause, cut into pieces of ``max_words``, and
    entity-like tokens (gene, drug, dose) on their own."""
    found: dict[str, str] = {}
    for clause in re.split(r"[.,;:()\[\]\"]+", text):
        run: list[str] = []
        for token in [*WORD.findall(clause), ""]:
            if token and token.lower() not in _BREAK:
                run.append(token)
                continue
            for i in range(0, len(run), max_words):
                piece = run[i : i + max_words]
                if len(" ".join(piece)) > 3:
                    found.setdefault(" ".join(piece).lower(), " ".join(piece))
                if len(piece) > 1:
                    for word in piece:
                        if _ENTITY.fullmatch(word):
                            found.setdefault(word.lower(), word)
            run = []
    return list(found.values())[:k]
