"""SyNeg as a DSPy module: write a hard negative (generate, or rewrite a source passage), critique it,
revise until it passes.

All state lives in the predictors, so DSPy's own ``save``/``load`` round-trips a compiled
program, and ``program_hash`` (what the generation store keys on) changes exactly when a prompt does.
"""

from __future__ import annotations

import hashlib
import json
import re
from difflib import SequenceMatcher
from pathlib import Path
from typing import Callable

import dspy

from programs.attributes import Attributes
from programs.choice_adapter import ChoiceJSONAdapter
from programs.signatures import CritiqueNegative, GenerateNegative, InferDomain, ReviseNegative, RewriteNegative
from syneg_dspy.errors import InputError
from syneg_dspy.text import phrases

# A rewrite is shown its source's opening (the edit still applies to all of it): enough context to
# pick a phrase, and a short prompt for a small model.
SOURCE_WORDS = 120
FUZZY_MATCH = 0.8  # see apply_edit
# Phrases offered for replacement: small models asked to copy a phrase from the passage quoted the
# query or whole sentences instead; picking from a short list they manage.
PHRASES = 12
# Safe edits a mined rewrite chooses among. Its edits (offered phrase x query phrase, up to 144) are checked
# in batches until SAFE_EDITS pass: each check is an encoder pass over a whole passage (~5 s per item for
# all of them with MiniLM on 2 AVX2 cores), a median of 40 pass on SciFact. The OFFER hardest of those are
# offered, hardest first, and the model picks one. On all 802 SciFact train pairs that made the 0.5B's picks
# much harder (median hardness 0.944, was 0.848 offering all, about as hard as a random one) and generation 20 %
# faster, and trained a retriever level with offering all (test nDCG@10 0.6699 vs 0.6703, bench/RESULTS.md).
SAFE_EDITS = 16
OFFER = 4
# "{query}", "<key term>", "replacement_value": small models fill in a template instead of words.
PLACEHOLDER = re.compile(r"[{}<>\[\]]|[a-z]_[a-z]")


class SyNeg(dspy.Module):
    """Multi-attribute self-reflection: draft → critique → (revise → critique)* within ``max_rounds``.

    The draft comes from ``generate`` (free writing) or, for the ``rewrite_*`` strategies, from one
    phrase replacement that ``rewrite`` picks and code applies to ``source`` (a 0.5B model asked to
    rewrite a whole passage returned it unchanged or drifted; naming one phrase it can do), and its
    revision is a new edit. ``rounds`` counts checks (an edit that cannot be applied, or a draft
    ``check`` rejects, is a round without a critique call); a negative that never passes is returned with ``passed=False`` after
    ``max_rounds``, for the guard to reject. A rewrite's critique ``copies_positive`` is ignored: an
    edit of a retrieved passage cannot become a copy of the positive unless its source was one, and the
    guard measures that (overlap, cosine); an edit of the positive keeps its words by design. The
    0.5B's critique said "copies" for 21 of 157 mined rewrites the measurement had passed.

    With ``critique_mined=False`` an edit of a retrieved passage is not critiqued: the guard's check
    alone passes it (its ``critique`` is None). For a model whose critique cannot tell an answer from a
    near miss, that call buys nothing: the 0.5B's passed 9 of 20 real positives, 9 of 20 retrieved
    negatives and 15 of 20 random passages (bench/bench_critique.py).

    ``check`` (the runner passes the guard's string and encoder checks: drafts → advice or None for
    each) sees each draft before the critique: a draft it rejects is revised with its reason as the
    issue, without a critique call, since the guard would drop it whatever the critique says. For
    ``rewrite_mined``, whose edits are a finite set (offered phrase → query phrase), it first sees every
    edit, and only phrases of edits it passes are offered; with none, the item ends without an LM call.
    """

    def __init__(self, max_rounds: int = 2, source_words: int = SOURCE_WORDS, critique_mined: bool = True):
        super().__init__()
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self.max_rounds = max_rounds
        self.source_words = source_words
        self.critique_mined = critique_mined
        self.generate = dspy.Predict(GenerateNegative)
        self.rewrite = dspy.Predict(RewriteNegative)
        self.critique = dspy.Predict(CritiqueNegative)
        self.revise = dspy.Predict(ReviseNegative)
        self.infer_domain = dspy.Predict(InferDomain)

    def forward(
        self,
        query: str,
        positive: str,
        attributes: Attributes | dict | str,
        source: str | None = None,
        check: Callable[[list[str]], list[str | None]] | None = None,
    ) -> dspy.Prediction:
        if isinstance(attributes, dict):
            attributes = Attributes.from_dict(attributes)
        described = attributes if isinstance(attributes, str) else attributes.describe()
        strategy = "generate" if isinstance(attributes, str) else attributes.strategy
        if strategy != "generate" and not source:
            raise ValueError(f"strategy {strategy} needs a source passage")

        issue, edit = None, None  # a rewrite's last edit, and why it could not be applied (no critique call then)
        choices = self._choices(query, source, strategy, check) if strategy != "generate" else {}
        if strategy != "generate" and not choices["find"]:  # nothing to ask the LM for
            issue = "no edit of the source passes the guard" if check else "the source has no phrase to replace"
            return dspy.Prediction(negative="", reasoning="", rounds=0, passed=False, critique=None, history=[],
                                   edit=None, edit_issue=issue)
        if strategy == "generate":
            draft = self.generate(query=query, positive=positive, attributes=described)
            negative, reasoning = _clean(draft.negative), draft.reasoning
        else:
            negative, edit, issue = self._rewrite(query, source, described, "none", choices)
            reasoning = ""
        history: list[dict] = []
        for round_ in range(1, self.max_rounds + 1):
            found, checked_by = issue, "edit"  # an edit that could not be applied
            if not found and check is not None:
                found, checked_by = check([negative])[0], "guard"
            if found:
                verdict = {"answers_query": False, "on_topic": False, "copies_positive": False, "issues": found}
            elif strategy == "rewrite_mined" and not self.critique_mined:  # the guard's check was the check
                verdict, checked_by = None, "guard" if check is not None else "none"
            else:
                checked_by = "critique"
                critique = self.critique(query=query, positive=positive, negative=negative)
                verdict = {k: critique[k] for k in ("answers_query", "on_topic", "copies_positive", "issues")}
                if strategy != "generate":
                    verdict["copies_positive"] = False
            passed = verdict is None or (
                bool(verdict["on_topic"]) and not verdict["answers_query"] and not verdict["copies_positive"])
            history.append(
                {"round": round_, "negative": negative, "critique": verdict, "passed": passed, "checked_by": checked_by}
            )
            if passed or round_ == self.max_rounds:
                break
            if strategy == "generate":
                revised = self.revise(
                    query=query, positive=positive, negative=negative, issues=verdict["issues"], attributes=described
                )
                negative = _clean(revised.revised)
            else:
                negative, edit, issue = self._rewrite(query, source, described, verdict["issues"], choices)
        return dspy.Prediction(
            negative=negative,
            reasoning=reasoning,
            rounds=len(history),
            passed=passed,
            critique=verdict,
            history=history,
            edit=edit,
            edit_issue=issue,
        )

    def _choices(self, query: str, source: str, strategy: str, check) -> dict:
        """What a rewrite may pick: ``find`` among the source opening's phrases and, for ``rewrite_mined``,
        ``replace`` among the query's key phrases (the 0.5B model otherwise answered with "none", an
        attribute name or a whole sentence); with ``check``, only phrases of edits it passes (in the
        157-pair run, 44 rewrites were dropped for outscoring the positive, each after two calls), and
        ``pairs``: each such phrase's passing replacements (the fields' own lists still allow unsafe pairs).
        Edits are checked query phrase by query phrase, each across every offered phrase (so the first
        batch already spans the passage), in batches of ``2 * SAFE_EDITS`` until ``SAFE_EDITS`` pass: an
        item has no safe edit only when every edit was checked. The ``OFFER`` hardest safe edits are
        offered, hardest first (a ``check`` without ``hardness``, as in tests: the first ``OFFER`` that pass).
        """
        offered = phrases(excerpt(source, self.source_words), PHRASES)
        if strategy != "rewrite_mined":
            return {"find": offered}
        replace = [t for t in phrases(query, PHRASES) if t.lower() not in {o.lower() for o in offered}]
        if check is None:
            return {"find": offered, "replace": replace}
        edits = [(f, r, apply_edit(source, f, r)) for r in replace for f in offered]
        edits = [(f, r, text) for f, r, text in edits if text]
        safe: list[tuple[str, str, str]] = []
        for start in range(0, len(edits), 2 * SAFE_EDITS):
            batch = edits[start:start + 2 * SAFE_EDITS]
            safe += [edit for edit, advice in zip(batch, check([text for *_, text in batch])) if advice is None]
            if len(safe) >= SAFE_EDITS:
                break
        if rank := getattr(check, "hardness", None):
            scores = rank([text for *_, text in safe])
            safe = [edit for _, edit in sorted(zip(scores, safe), key=lambda pair: -pair[0])]
        safe = safe[:OFFER]
        pairs: dict[str, list[str]] = {}
        for f, r, _ in safe:
            pairs.setdefault(f, []).append(r)
        return {"find": list(pairs), "replace": list(dict.fromkeys(r for _, r, _ in safe)), "pairs": pairs}

    def _rewrite(
        self, query: str, source: str, described: str, issues: str, choices: dict
    ) -> tuple[str, dict, str | None]:
        """Ask for one phrase replacement in the source's opening; apply it to the whole source.

        ``choices`` (see ``_choices``) go into the schema as enums, which the embedded model's grammar
        enforces, with each phrase tied to its safe replacements there; the offered phrases are also in the prompt.
        """
        shown, offered = excerpt(source, self.source_words), choices["find"]
        fields = {name: values for name, values in choices.items() if name != "pairs"}
        pairs = ("find", "replace", choices["pairs"]) if choices.get("pairs") else None
        with dspy.context(adapter=ChoiceJSONAdapter(fields, pairs=pairs)):
            out = self.rewrite(query=query, source=shown, phrases=offered, attributes=described, issues=issues)
        edit = {"find": _unlist(_clean(out.find)), "replace": _unlist(_clean(out.replace))}
        if not edit["find"] or edit["find"].lower() == edit["replace"].lower():
            return "", edit, "the edit changed nothing: name a phrase of the source and a different replacement"
        if not edit["replace"]:  # seen at a passage's start: what is left is the source, cut
            return "", edit, "the replacement is empty: write the words to put instead of the phrase"
        if PLACEHOLDER.search(edit["replace"]):
            return "", edit, f"{edit['replace']!r} is a placeholder: write the actual words"
        edited = apply_edit(source, edit["find"], edit["replace"])
        if edited is None:
            return "", edit, f"the phrase {edit['find']!r} is not in the source: copy one of the phrases exactly"
        return edited, edit, None

    def domain(self, passages: list[str]) -> str:
        """The corpus domain from sample passages: first line, quotes stripped, at most five words
        (small models answer with a passage title)."""
        lines = _clean(self.infer_domain(passages=passages).domain).splitlines()
        return " ".join(lines[0].strip(" .\"'").split()[:5]) if lines else ""


def load_program(path: str | Path | None = None, *, max_rounds: int = 2, critique_mined: bool = True) -> SyNeg:
    """A SyNeg program: the uncompiled one, or one saved by DSPy's ``save`` (a compiled program)."""
    program = SyNeg(max_rounds=max_rounds, critique_mined=critique_mined)
    if path:
        try:
            program.load(path)
        except (ValueError, KeyError, TypeError) as err:  # json.JSONDecodeError is a ValueError
            raise InputError(f"not a saved SyNeg program: {err}", path) from None
    return program


def excerpt(text: str, words: int | None) -> str:
    """The first ``words`` words of ``text`` (all of it for None)."""
    return text if words is None else " ".join(text.split()[:words])


def apply_edit(source: str, find: str, replace: str, min_ratio: float = FUZZY_MATCH) -> str | None:
    """``source`` with ``find`` replaced by ``replace``; None when no span of the source matches.

    Every exact occurrence is replaced (case and spacing may differ). Failing that, the one span of
    about as many words that reads most like ``find`` (difflib ratio >= ``min_ratio``): small models
    copy a phrase with a word or two changed, and the span they meant is still clear.
    """
    pattern = re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, find.split())) + r"(?!\w)", re.IGNORECASE)
    if pattern.search(source):
        return pattern.sub(lambda _: replace, source)
    words, target = source.split(), " ".join(find.lower().split())
    n = len(target.split())
    best, span = 0.0, (0, 0)
    for size in range(max(1, n - 2), n + 3):
        for start in range(0, max(1, len(words) - size + 1)):
            ratio = SequenceMatcher(None, " ".join(words[start:start + size]).lower(), target).ratio()
            if ratio > best:
                best, span = ratio, (start, start + size)
    if best < min_ratio:
        return None
    end = words[span[1] - 1][-1]
    if end in ".;:," and not replace.endswith(end):  # the span's sentence punctuation stays
        replace += end
    return " ".join(words[: span[0]] + [replace] + words[span[1]:])


def _unlist(text: str) -> str:
    """A phrase written as a list (``["E2F3", "mediator"]``, as the phrases were offered) is its first item."""
    if not text.startswith("["):
        return text
    items = [i.strip(" \"'") for i in re.split(r"[,\[\]]+", text) if i.strip(" \"'")]
    return items[0] if items else ""


def _clean(text: str | None) -> str:
    """Small models wrap passages in quotes or whitespace; the passage is what is inside."""
    return (text or "").strip().strip('"').strip()


def program_hash(program: dspy.Module) -> str:
    """Hash of everything that shapes a prompt: per predictor its instructions, fields and demos, and which
    edits a rewrite is offered (a store keyed on the hash must not reuse rows written under another offer)."""
    state: list = [{"offer": [PHRASES, SAFE_EDITS, OFFER, "hardest first"]}]
    for name, predictor in program.named_predictors():
        sig = predictor.signature
        state.append(
            {
                "name": name,
                "instructions": sig.instructions,
                "fields": [
                    [fname, f.json_schema_extra["prefix"], f.json_schema_extra["desc"]]
                    for fname, f in sig.fields.items()
                ],
                "demos": [dict(d) for d in predictor.demos],
            }
        )
    blob = json.dumps(state, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
