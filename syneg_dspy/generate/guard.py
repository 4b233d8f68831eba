"""The false-negative guard: cheap, independent checks that an LLM-written negative is safe to train on.

The program's own critique is the LLM grading itself; small models pass copies of the positive,
restated queries and outright answers. The guard re-checks with string overlap and the base
encoder (and, optionally, a separate judge LM) and names the first reason it rejects for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, NamedTuple, Sequence

import dspy

from programs.signatures import CritiqueNegative
from syneg_dspy.text import content, words

# What each reject reason means, as advice: a revision is told it when the guard rejects its draft (see
# SyNeg's ``check``), GEPA's reflection reads it (optimizers/guard_proxy.py).
ADVICE = {
    "empty": "the passage is empty: write a passage",
    "too_short": "the passage is too short: write full sentences",
    "meta_text": "it talks about the query or the task: write only the passage itself",
    "restates_query": "it restates the query: write about a neighbouring question instead",
    "copies_positive": "it copies the positive passage: use other sentences and a different finding",
    "unchanged_source": "the edit left the source as it was: replace a phrase with different words",
    "outscores_positive": "it matches the query better than the real answer does, so it likely answers it: change the "
    "decisive detail (the entity, condition or outcome)",
    "duplicate": "it repeats a negative already written for this query: write a different one",
    "judge_answers": "the critique found that it answers the query: change the decisive detail",
    "judge_off_topic": "the critique found it off topic: keep the query's subject and key terms",
    "judge_copies_positive": "the critique found that it copies the positive: use other sentences",
}


class Verdict(NamedTuple):
    accepted: bool
    reason: str | None
    scores: dict[str, float]


def hardness(verdict: Verdict) -> float:
    """How close the base encoder puts a negative to the query, relative to the positive: ``cos(q, neg) /
    cos(q, pos)`` clipped to [0, 1] (0 for a draft rejected before the encoder). A safe negative near 1 is one the
    retriever already ranks near the positive: it teaches the most."""
    qp, qn = verdict.scores.get("query_positive", 0.0), verdict.scores.get("query_negative", 0.0)
    return max(0.0, min(1.0, qn / qp)) if qp > 0 else 0.0


def _containment(part: set[str], whole: set[str]) -> float:
    """Share of ``part``'s words that also occur in ``whole``."""
    return len(part & whole) / len(part) if part else 0.0


def _longest_run(part: list[str], whole: list[str]) -> float:
    """Longest word run of ``part`` copied verbatim from ``whole``, as a share of ``part``."""
    if not part or not whole:
        return 0.0
    m = SequenceMatcher(None, part, whole, autojunk=False).find_longest_match(0, len(part), 0, len(whole))
    return m.size / len(part)


@dataclass
class Guard:
    """Checks in order, cheapest first; the first that fires is the reject reason.

    Thresholds (a score at or above a ``max_*`` threshold rejects):

    - ``min_words``: fewer words is ``too_short`` (nothing left is ``empty``).
    - ``meta_phrases``: the negative talks about the task ("the passage does not answer the
      query...") instead of being a passage → ``meta_text``; small models do this often.
    - ``max_query_containment``: share of the negative's content words found in the query →
      ``restates_query`` (a negative that is mostly the query teaches nothing).
    - ``max_positive_containment``: share of the negative's content words found in the positive,
      and ``max_positive_run``: longest verbatim word run from the positive as a share of the
      negative; either → ``copies_positive`` (a reworded positive still answers the query). Skipped
      for ``rewrite_positive``, whose output keeps the positive's words by design; its encoder
      checks below still apply.
    - ``max_source_run``: a rewrite whose longest verbatim run from its source is at least this
      share of it is the source or a cut of it, not an edit → ``unchanged_source`` (for
      ``rewrite_mined``, the retrieved negative itself).
    - ``max_positive_cosine``: encoder cosine(negative, positive) → ``copies_positive``.
    - ``score_margin``: cosine(query, negative) ≥ cosine(query, positive) + margin →
      ``outscores_positive``; the base retriever already prefers it, so it is likely relevant.
    - ``max_duplicate_cosine``: cosine to a negative already accepted for the query → ``duplicate``.
    - ``use_critique``: reject on the program's final critique (``judge_*``); ``judge``: a separate
      LM that critiques again, independent of the one that wrote the negative.

    ``remember``: precheck verdicts kept (all dropped when full). A rewrite checks up to PHRASES x
    PHRASES edits of one source and a compile runs every candidate over the same items; 8k verdicts are a
    few MB, and each re-encoding costs ~7 s per item. A bench that checks all of SciFact's train edits
    twice keeps more.
    """

    encoder: Any
    min_words: int = 8
    meta_phrases: tuple[str, ...] = (
        "hard negative", "the query", "search query", "search engine", "the passage", "this passage", "positive passage",
    )
    max_positive_containment: float = 0.9
    max_positive_run: float = 0.5
    max_positive_cosine: float = 0.9
    max_query_containment: float = 0.8
    max_source_run: float = 1.0
    score_margin: float = 0.0
    max_duplicate_cosine: float = 0.95
    use_critique: bool = True
    judge: dspy.LM | None = None
    remember: int = 8192
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Recent precheck verdicts: the runner's final check sees a draft the program's check just saw.
    _recent: dict = field(default_factory=dict, repr=False, compare=False)

    def _encode(self, texts: list[str]):
        with self._lock:  # one forward pass at a time when the runner uses threads
            return self.encoder.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def check(
        self,
        query: str,
        positive: str,
        negative: str,
        *,
        critique: dict | None = None,
        accepted: Sequence[str] = (),
        source: str | None = None,
        strategy: str = "generate",
    ) -> Verdict:
        """Verdict for one negative; ``accepted`` holds the negatives already kept for this query,
        ``source`` the passage a ``rewrite_*`` strategy edited."""
        verdict = self.precheck(query, positive, negative, accepted=accepted, source=source, strategy=strategy)
        if not verdict.accepted:
            return verdict
        if critique is not None and self.use_critique and (reason := _judge_reason(critique, strategy)):
            return Verdict(False, reason, verdict.scores)
        if self.judge is not None:
            with dspy.context(lm=self.judge, adapter=dspy.JSONAdapter()):
                judged = dspy.Predict(CritiqueNegative)(query=query, positive=positive, negative=negative)
            if reason := _judge_reason(judged, strategy):
                return Verdict(False, reason, verdict.scores)
        return verdict

    def feedback(
        self, query: str, positive: str, *, accepted: Sequence[str] = (), source: str | None = None,
        strategy: str = "generate",
    ) -> Feedback:
        """The string and encoder checks for one item as revision hints: SyNeg's ``check``."""
        return Feedback(self, query, positive, tuple(accepted), source, strategy)

    def precheck(
        self, query: str, positive: str, negative: str, *, accepted: Sequence[str] = (), source: str | None = None,
        strategy: str = "generate",
    ) -> Verdict:
        """The checks that need no LM: text overlap and the base encoder (remembered for recent drafts)."""
        return self.precheck_many(query, positive, [negative], accepted=accepted, source=source, strategy=strategy)[0]

    def precheck_many(
        self, query: str, positive: str, negatives: Sequence[str], *, accepted: Sequence[str] = (),
        source: str | None = None, strategy: str = "generate",
    ) -> list[Verdict]:
        """``precheck`` of many drafts for one item; the ones that reach the encoder go in one batch."""
        context = (query, positive, tuple(accepted), source, strategy)
        found = {n: v for n in negatives if (v := self._recent.get((context, n))) is not None}
        todo = [n for n in dict.fromkeys(negatives) if n not in found]
        if todo:
            fresh = dict(zip(todo, self._precheck(query, positive, todo, accepted, source, strategy)))
            if len(self._recent) + len(fresh) > self.remember:
                self._recent.clear()
            self._recent.update({(context, n): v for n, v in fresh.items()})
            found.update(fresh)
        return [found[n] for n in negatives]

    def _precheck(self, query, positive, negatives, accepted, source, strategy) -> list[Verdict]:
        pos_words, query_content = words(positive), content(words(query))
        source_words = words(source) if source else None
        verdicts: list[Verdict | dict] = []  # a dict: the scores of a draft that goes on to the encoder checks
        for negative in negatives:
            tokens = words(negative)
            scores: dict[str, float] = {"words": float(len(tokens))}
            verdicts.append(self._text_checks(tokens, scores, pos_words, query_content, source_words, strategy) or scores)
        pending = [(i, negatives[i]) for i, v in enumerate(verdicts) if isinstance(v, dict)]
        if not pending:
            return verdicts
        emb = self._encode([query, positive, *accepted] + [n for _, n in pending])
        q, p, prior, drafts = emb[0], emb[1], emb[2:2 + len(accepted)], emb[2 + len(accepted):]
        query_positive = float(q @ p)
        for (i, _), n in zip(pending, drafts):
            scores = verdicts[i]
            scores["positive_cosine"] = float(n @ p)
            scores["query_positive"] = query_positive
            scores["query_negative"] = float(q @ n)
            scores["duplicate_cosine"] = float((prior @ n).max()) if len(prior) else 0.0
            if scores["positive_cosine"] >= self.max_positive_cosine:
                verdicts[i] = Verdict(False, "copies_positive", scores)
            elif scores["query_negative"] >= scores["query_positive"] + self.score_margin:
                verdicts[i] = Verdict(False, "outscores_positive", scores)
            elif scores["duplicate_cosine"] >= self.max_duplicate_cosine:
                verdicts[i] = Verdict(False, "duplicate", scores)
            else:
                verdicts[i] = Verdict(True, None, scores)
        return verdicts

    def _text_checks(self, tokens, scores, pos_words, query_content, source_words, strategy) -> Verdict | None:
        """The string checks, cheapest first: a rejecting Verdict, or None (the scores are filled in)."""
        if not tokens:
            return Verdict(False, "empty", scores)
        if len(tokens) < self.min_words:
            return Verdict(False, "too_short", scores)
        flat = " ".join(t.removesuffix("'s") for t in tokens)  # "the query's subject" is "the query"
        if any(f" {phrase} " in f" {flat} " for phrase in self.meta_phrases):
            return Verdict(False, "meta_text", scores)
        neg_content = content(tokens)
        scores["positive_containment"] = _containment(neg_content, content(pos_words))
        scores["positive_run"] = _longest_run(tokens, pos_words)
        scores["query_containment"] = _containment(neg_content, query_content)
        if scores["query_containment"] >= self.max_query_containment:  # before copies: claims reuse the positive's words
            return Verdict(False, "restates_query", scores)
        if strategy != "rewrite_positive" and (
            scores["positive_containment"] >= self.max_positive_containment
            or scores["positive_run"] >= self.max_positive_run
        ):
            return Verdict(False, "copies_positive", scores)
        if source_words is not None:
            scores["source_run"] = _longest_run(tokens, source_words)
            if scores["source_run"] >= self.max_source_run:
                return Verdict(False, "unchanged_source", scores)
        return None


@dataclass(frozen=True)
class Feedback:
    """``drafts → advice or None for each`` for one item (a rewrite checks every edit it could offer, encoded in
    one batch), and ``hardness`` of drafts, which the guard remembers from the check: a rewrite offers its
    hardest safe edits."""

    guard: Guard
    query: str
    positive: str
    accepted: tuple[str, ...]
    source: str | None
    strategy: str

    def verdicts(self, negatives: Sequence[str]) -> list[Verdict]:
        return self.guard.precheck_many(self.query, self.positive, negatives, accepted=self.accepted,
                                        source=self.source, strategy=self.strategy)

    def __call__(self, negatives: Sequence[str]) -> list[str | None]:
        return [None if v.accepted else ADVICE[v.reason] for v in self.verdicts(negatives)]

    def hardness(self, negatives: Sequence[str]) -> list[float]:
        return [hardness(v) for v in self.verdicts(negatives)]


def _judge_reason(critique, strategy: str = "generate") -> str | None:
    if critique["answers_query"]:
        return "judge_answers"
    if not critique["on_topic"]:
        return "judge_off_topic"
    if critique["copies_positive"] and strategy == "generate":  # a rewrite's copying is measured (see SyNeg)
        return "judge_copies_positive"
    return None
