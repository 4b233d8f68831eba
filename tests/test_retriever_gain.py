"""The compile metric: a paired, deterministic retriever gain on a dev split (bundled sample, real MiniLM)."""

import pytest
import torch

from optimizers.guard_proxy import GuardProxy
from optimizers.retriever_gain import RetrieverGain, batches
from programs import Attributes
from syneg_dspy.data import carve_dev
from syneg_dspy.errors import InputError
from syneg_dspy.generate import Guard
from syneg_dspy.generate.guard import ADVICE
from syneg_dspy.mine import mine_negatives
from syneg_dspy.retrieval import load_encoder


@pytest.fixture(scope="module")
def setup(ds):
    dev = carve_dev(ds, 15, seed=0)
    encoder = load_encoder()
    mined = mine_negatives(dev, "train", encoder, relative_margin=0.05, show_progress=False)
    return dev, mined, RetrieverGain(dev, mined, encoder=encoder, seeds=(0, 1))


def synthetic(dev, n, verdict="accepted"):
    """Rows as `syneg generate` writes them: another pair's positive stands in for an LLM negative."""
    pairs = dev.positives("train")
    return [{"key": f"k{i}", "qid": q, "pos_id": d, "text": dev.doc_text(pairs[(i + 7) % len(pairs)][1]),
             "verdict": verdict} for i, (q, d) in enumerate(pairs[:n])]


def test_no_accepted_negative_means_exactly_zero_gain(setup):
    dev, _, metric = setup
    for rows in ([], synthetic(dev, 20, verdict="rejected")):
        result = metric(rows)
        assert result.gain == 0.0 and result.synthetic_share == 0.0 and result.accepted_synthetic == 0
        assert result.hybrid_ndcg == result.retrieved_ndcg


def test_the_adapter_learns_and_the_gain_is_deterministic(setup):
    dev, _, metric = setup
    rows = synthetic(dev, 60)  # on 77 pairs and 15 dev queries, 30 happen to leave both seeds' rankings as they were
    first, again = metric(rows), metric(rows)
    assert first == again
    assert first.accepted_synthetic == 60 and 0 < first.synthetic_share < 1
    assert first.retrieved_ndcg != first.zero_shot_ndcg  # training the adapter moves the ranking
    assert first.gain != 0.0 and len(first.per_seed) == 2
    assert first.gain == pytest.approx(first.hybrid_ndcg - first.retrieved_ndcg)
    assert set(first.per_query) == set(dev.split("dev"))  # per dev query, for GainSelect's paired test
    assert sum(first.per_query.values()) / len(first.per_query) == pytest.approx(first.gain)


def test_a_retrieved_pool_can_be_compared_directly(setup):
    dev, mined, metric = setup
    same, _ = metric.train_and_score([], 0, retrieved_rows=mined)
    assert same == metric.train_and_score([], 0)[0]
    with pytest.raises(InputError, match="no train pair has a negative"):
        metric.train_and_score([], 0, retrieved_rows=[])


def test_missing_dev_split_or_negatives_is_an_input_error(ds, setup):
    dev, mined, _ = setup
    with pytest.raises(InputError, match="dev"):
        RetrieverGain(ds, mined)
    with pytest.raises(InputError, match="retrieved negatives"):
        RetrieverGain(dev, [])


def test_guard_proxy_scores_hardness_of_accepted_negatives_only(ds):
    import dspy

    proxy = GuardProxy(Guard(load_encoder()), demo_hardness=0.5)
    qid, pos = ds.positives("train")[0]
    other = next(d for d in ds.corpus if d != pos)
    example = dspy.Example(query=ds.queries[qid], full_positive=ds.doc_text(pos),
                           attributes=Attributes("hard", "short", "topic_drift"), source=None)
    ok = {"answers_query": False, "on_topic": True, "copies_positive": False, "issues": "none"}
    fine = dspy.Prediction(negative=ds.doc_text(other), critique=ok, edit_issue=None)
    copy = dspy.Prediction(negative=ds.doc_text(pos), critique=ok, edit_issue=None)
    score = proxy(example, fine)
    assert 0 < score <= 1
    assert proxy(example, copy) == 0.0  # the guard rejects a copy of the positive
    assert proxy(example, fine, trace=[]) == (score >= 0.5)
    assert proxy(example, dspy.Prediction(negative="", critique=ok, edit_issue="no edit")) == 0.0
    # as GEPA's feedback metric: the same score, and the verdict in words for its reflection LM
    told = proxy(example, fine, [], "generate", [])
    assert told.score == score and told.feedback.startswith("Accepted") and f"{score:.2f}" in told.feedback
    rejected = proxy(example, copy, [], "generate", [])
    assert rejected.score == 0.0 and "copies_positive" in rejected.feedback
    answers = dspy.Prediction(negative=ds.doc_text(other), critique={**ok, "answers_query": True}, edit_issue=None)
    judged = proxy(example, answers, [], "generate", [])  # the critique's rejections are advised on too
    assert judged.score == 0.0 and judged.feedback == f"Rejected (judge_answers): {ADVICE['judge_answers']}."


def test_a_pair_without_a_negative_leaves_a_gap_in_its_own_batch_only():
    every = torch.arange(50)
    without = every.clone()
    without[7] = -1  # the pair at place 7 has no negative this time
    full = batches(every, 8, torch.Generator().manual_seed(3))
    gapped = batches(without, 8, torch.Generator().manual_seed(3))
    assert len(full) == len(gapped) == 7
    changed = [(a.tolist(), b.tolist()) for a, b in zip(full, gapped) if not torch.equal(a, b)]
    assert len(changed) == 1 and [x for x in changed[0][0] if x != 7] == changed[0][1]
