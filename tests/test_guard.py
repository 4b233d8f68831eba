"""The false-negative guard, with the embedded MiniLM and real SciFact sample texts."""

import json

import pytest

from syneg_dspy.data import load_dataset
from syneg_dspy.generate.guard import Guard
from syneg_dspy.lm import make_lm, register_script
from syneg_dspy.retrieval import load_encoder

OFF = 2.0  # a threshold no score reaches: isolates the check under test

# Query 355 of the sample: "Drosophila supracellular actomyosin structures are found at boundaries in wing imaginal discs."
GOOD = ("Zebrafish fin regeneration depends on Wnt signalling in the blastema, whereas retinoic acid controls "
        "the pattern of regenerated rays.")
CLOSER_THAN_POSITIVE = "Actomyosin cables assemble along compartment borders of the fly wing disc epithelium."
PASS = {"answers_query": False, "on_topic": True, "copies_positive": False, "issues": "none"}


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


@pytest.fixture(scope="module")
def pair(sample_path):
    ds = load_dataset(sample_path)
    return ds.queries["355"], ds.doc_text("12800122")


def test_good_negative_is_accepted_with_scores(encoder, pair):
    v = Guard(encoder).check(*pair, GOOD, critique=PASS)
    assert v.accepted and v.reason is None
    assert v.scores["query_negative"] < v.scores["query_positive"]
    assert set(v.scores) >= {"positive_containment", "positive_run", "query_containment", "positive_cosine",
                             "duplicate_cosine"}


@pytest.mark.parametrize("text,reason", [("", "empty"), ("  ...  ", "empty"), ("Wing discs grow.", "too_short")])
def test_empty_and_short(encoder, pair, text, reason):
    v = Guard(encoder).check(*pair, text)
    assert not v.accepted and v.reason == reason


def test_text_about_the_task_instead_of_a_passage(encoder, pair):
    meta = ("The passage does not answer the query because it only mentions cell sorting, "
            "so a search engine would be tempted to retrieve it.")
    assert Guard(encoder).check(*pair, meta).reason == "meta_text"
    written = "It shares the query's subject and key terms but studies another question."  # a 0.5B negative
    assert Guard(encoder).check(*pair, written).reason == "meta_text"
    assert Guard(encoder, meta_phrases=()).check(*pair, meta).reason != "meta_text"


def test_copied_sentences_of_the_positive(encoder, pair):
    query, positive = pair
    copy = " ".join(positive.split(". ")[1:3])
    v = Guard(encoder).check(query, positive, copy)
    assert v.reason == "copies_positive" and v.scores["positive_run"] == 1.0
    # reordered sentences defeat the verbatim run but not the word containment
    reordered = ". ".join(reversed(positive.split(". ")[1:4]))
    assert Guard(encoder, max_positive_run=OFF).check(query, positive, reordered).reason == "copies_positive"
    # with both lexical checks off, the encoder still sees the copy
    lexical_off = Guard(encoder, max_positive_run=OFF, max_positive_containment=OFF)
    v = lexical_off.check(query, positive, ". ".join(reversed(positive.split(". "))))
    assert v.reason == "copies_positive" and v.scores["positive_cosine"] >= 0.9


def test_restated_query(encoder, pair):
    query, positive = pair
    v = Guard(encoder).check(query, positive, query)
    assert v.reason == "restates_query" and v.scores["query_containment"] == 1.0


def test_negative_the_base_retriever_prefers_is_a_likely_false_negative(encoder, pair):
    v = Guard(encoder).check(*pair, CLOSER_THAN_POSITIVE)
    assert v.reason == "outscores_positive" and v.scores["query_negative"] > v.scores["query_positive"]
    # the margin moves the bar: demanding a clear lead lets it through
    assert Guard(encoder, score_margin=0.5).check(*pair, CLOSER_THAN_POSITIVE).accepted


def test_duplicate_of_an_accepted_negative(encoder, pair):
    guard = Guard(encoder)
    assert guard.check(*pair, GOOD, accepted=[CLOSER_THAN_POSITIVE]).accepted
    v = guard.check(*pair, GOOD + " ", accepted=[CLOSER_THAN_POSITIVE, GOOD])
    assert v.reason == "duplicate" and v.scores["duplicate_cosine"] > 0.99


@pytest.mark.parametrize(
    "critique,reason",
    [
        ({**PASS, "answers_query": True}, "judge_answers"),
        ({**PASS, "on_topic": False}, "judge_off_topic"),
        ({**PASS, "copies_positive": True}, "judge_copies_positive"),
    ],
)
def test_critique_verdicts(encoder, pair, critique, reason):
    assert Guard(encoder).check(*pair, GOOD, critique=critique).reason == reason
    assert Guard(encoder, use_critique=False).check(*pair, GOOD, critique=critique).accepted


def test_a_rewrites_copying_is_measured_not_taken_from_the_critique(encoder, pair):
    query, positive = pair
    says_copy = {**PASS, "copies_positive": True}
    source = GOOD + " The study followed 40 fish for two months."
    edited = source.replace("two months", "a year")
    assert Guard(encoder).check(query, positive, edited, critique=says_copy, source=source,
                                strategy="rewrite_mined").accepted
    # a real copy still fails the measurement, whatever the critique says
    copy = " ".join(positive.split(". ")[1:3])
    v = Guard(encoder).check(query, positive, copy, critique=PASS, source=source, strategy="rewrite_mined")
    assert v.reason == "copies_positive"
    # the critique's other verdicts still count for a rewrite
    answers = {**PASS, "answers_query": True}
    assert Guard(encoder).check(query, positive, edited, critique=answers, source=source,
                                strategy="rewrite_mined").reason == "judge_answers"


def test_separate_judge_lm(encoder, pair):
    seen = []

    def judge(messages, kwargs):
        seen.append(messages)
        return json.dumps({**PASS, "answers_query": "Zebrafish" not in messages[-1]["content"]})

    register_script("guard-judge", judge)
    guard = Guard(encoder, judge=make_lm("scripted/guard-judge"))
    assert guard.check(*pair, GOOD, critique=PASS).accepted
    other = "Cell sorting in the chick hindbrain relies on Eph receptors expressed in alternating rhombomeres."
    assert guard.check(*pair, other, critique=PASS).reason == "judge_answers"
    assert len(seen) == 2
    # the cheap checks run first: a copy never costs a judge call
    guard.check(pair[0], pair[1], pair[1][:300], critique=PASS)
    assert len(seen) == 2


def test_rewrite_that_changed_nothing_is_not_a_synthetic_negative(encoder, pair):
    query, positive = pair
    source = GOOD + " The study followed 40 fish for two months."
    v = Guard(encoder).check(query, positive, source, source=source, strategy="rewrite_mined")
    assert v.reason == "unchanged_source" and v.scores["source_run"] == 1.0
    edited = source.replace("Wnt signalling", "Hedgehog signalling").replace("two months", "a year")
    assert Guard(encoder).check(query, positive, edited, source=source, strategy="rewrite_mined").accepted


def test_rewrite_of_the_positive_may_keep_its_words_but_not_its_meaning(encoder, pair):
    query, positive = pair
    opening = " ".join(positive.split()[:25])
    edited = opening + " " + GOOD
    assert Guard(encoder).check(query, positive, edited).reason == "copies_positive"  # lexical run
    v = Guard(encoder).check(query, positive, edited, source=opening, strategy="rewrite_positive")
    assert v.accepted and v.scores["positive_run"] >= 0.5 and v.scores["positive_cosine"] < 0.9
    # the encoder checks still apply: the positive itself is rejected
    assert Guard(encoder).check(query, positive, positive, strategy="rewrite_positive").reason == "copies_positive"


def test_feedback_is_the_lm_free_checks_as_revision_advice(encoder, pair):
    from syneg_dspy.generate.guard import ADVICE

    query, positive = pair
    guard = Guard(encoder)
    check = guard.feedback(query, positive, accepted=[GOOD])
    assert check([" ".join(positive.split(". ")[1:3])]) == [ADVICE["copies_positive"]]
    assert check([GOOD]) == [ADVICE["duplicate"]]  # sees the negatives already accepted for the query
    other = "Plant root hairs elongate by tip growth that depends on calcium gradients and vesicle traffic."
    assert check([other]) == [None]
    # the critique is not part of it: a passage the critique fails still gets no advice, but check rejects it
    failed = dict(PASS, answers_query=True)
    assert guard.precheck(query, positive, other).accepted
    assert guard.check(query, positive, other, critique=failed).reason == "judge_answers"
    assert set(ADVICE) >= {"empty", "too_short", "meta_text", "restates_query", "copies_positive",
                           "unchanged_source", "outscores_positive", "duplicate",
                           "judge_answers", "judge_off_topic", "judge_copies_positive"}  # every reject reason


class Counting:
    """An encoder that records the batch sizes it is asked to encode."""

    def __init__(self, encoder):
        self.encoder, self.calls = encoder, []

    def encode(self, texts, **kw):
        self.calls.append(len(texts))
        return self.encoder.encode(texts, **kw)


def test_a_draft_checked_by_the_program_is_not_encoded_again_by_the_final_check(encoder, pair):
    counting = Counting(encoder)
    calls = counting.calls
    guard = Guard(counting)
    other = "Plant root hairs elongate by tip growth that depends on calcium gradients and vesicle traffic."
    feedback = guard.feedback(*pair)
    assert feedback([other]) == [None]
    v = guard.check(*pair, other, critique=PASS)
    assert v.accepted and len(calls) == 1
    # the program ranks its safe edits by the hardness the check already measured
    assert feedback.hardness([other]) == [v.scores["query_negative"] / v.scores["query_positive"]] and len(calls) == 1
    assert guard.check(*pair, other, accepted=[GOOD]).accepted and len(calls) == 2  # other inputs: checked afresh


def test_many_drafts_are_checked_like_one_each_in_one_encoder_batch(encoder, pair):
    counting = Counting(encoder)
    query, positive = pair
    roots = "Plant root hairs elongate by tip growth that depends on calcium gradients and vesicle traffic."
    drafts = [GOOD, CLOSER_THAN_POSITIVE, positive[:300], "Too short.", GOOD]
    many = Guard(counting).precheck_many(query, positive, drafts, accepted=[roots])
    assert counting.calls == [3 + 2]  # query, positive, the accepted one, and the two drafts the string checks passed
    one = [Guard(encoder).precheck(query, positive, d, accepted=[roots]) for d in drafts]
    assert [v.reason for v in many] == [v.reason for v in one] == [None, "outscores_positive", "copies_positive",
                                                                   "too_short", None]
    assert many[1].scores == pytest.approx(one[1].scores, abs=1e-5)
