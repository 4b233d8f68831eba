"""The SyNeg prompt as DSPy signatures: each docstring is the instruction the LM sees.

Sections follow the paper's multi-attribute self-reflection prompt (task, hard-negative definition,
attribute constraints, reflection); the output format comes from DSPy's JSONAdapter. Kept short:
a 0.5B model must fit the prompt, a positive passage and its answer in a small context.
"""

import dspy


class GenerateNegative(dspy.Signature):
    """Write a hard negative passage for a search query.

    A hard negative looks relevant to the query: same field, same key terms, same style as the
    positive passage. But it does NOT answer the query and gives no evidence for or against it,
    so a search engine would be tempted to retrieve it and be wrong.

    Follow the attributes (domain, difficulty, length, kind of near-miss).
    Do not copy sentences from the positive passage. Do not restate the query.
    First give one short sentence of reasoning, then the passage as plain text."""

    query: str = dspy.InputField(desc="the search query")
    positive: str = dspy.InputField(desc="a passage that does answer the query")
    attributes: str = dspy.InputField(desc="what kind of negative to write")
    reasoning: str = dspy.OutputField(desc="one sentence: how the passage misses the query")
    negative: str = dspy.OutputField(desc="the hard negative passage")


class RewriteNegative(dspy.Signature):
    """Make a hard negative for a search query with one small edit of a source passage.

    A hard negative looks relevant to the query but does NOT answer it and gives no evidence for
    or against it. Choose one of the source's phrases (a name, number, condition, population or
    outcome) and the words to write instead, as the strategy and near-miss say. Every occurrence
    of the phrase is replaced; the rest of the source stays as it is."""

    query: str = dspy.InputField(desc="the search query")
    source: str = dspy.InputField(desc="the passage to edit")
    phrases: list[str] = dspy.InputField(desc="phrases of the source that may be replaced")
    attributes: str = dspy.InputField(desc="the strategy and the kind of negative to make")
    issues: str = dspy.InputField(desc="what was wrong with an earlier edit, or 'none'")
    find: str = dspy.OutputField(desc="one of the phrases, copied exactly")
    replace: str = dspy.OutputField(desc="the words to write instead of that phrase")


class CritiqueNegative(dspy.Signature):
    """Check a candidate hard negative for a search query. Be strict.

    answers_query: true if the candidate answers the query or gives evidence for or against it.
    on_topic: true if the candidate is about the query's subject and could fool a search engine.
    copies_positive: true if the candidate repeats the positive passage's sentences or its finding.
    issues: in one or two sentences, what to change so the candidate is a good hard negative."""

    query: str = dspy.InputField(desc="the search query")
    positive: str = dspy.InputField(desc="a passage that does answer the query")
    negative: str = dspy.InputField(desc="the candidate hard negative")
    answers_query: bool = dspy.OutputField(desc="does the candidate answer the query?")
    on_topic: bool = dspy.OutputField(desc="is the candidate about the query's subject?")
    copies_positive: bool = dspy.OutputField(desc="does the candidate copy the positive passage?")
    issues: str = dspy.OutputField(desc="what to fix, or 'none'")


class ReviseNegative(dspy.Signature):
    """Rewrite a hard negative passage so that the listed issues are fixed.

    The new passage must stay on the query's subject and look relevant, must not answer the query
    or give evidence for or against it, and must not copy the positive passage.
    Follow the attributes. Return only the new passage as plain text."""

    query: str = dspy.InputField(desc="the search query")
    positive: str = dspy.InputField(desc="a passage that does answer the query")
    negative: str = dspy.InputField(desc="the previous hard negative")
    issues: str = dspy.InputField(desc="what is wrong with the previous hard negative")
    attributes: str = dspy.InputField(desc="what kind of negative to write")
    revised: str = dspy.OutputField(desc="the rewritten hard negative passage")


class InferDomain(dspy.Signature):
    """Name the broad field that all of these passages belong to, in two to five words
    (for example "biomedical research", "consumer finance", "software engineering").
    Name the field, not the topic of any one passage."""

    passages: list[str] = dspy.InputField(desc="sample passages from the collection")
    domain: str = dspy.OutputField(desc="the domain, two to five words")
