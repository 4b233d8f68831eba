"""BEIR metrics: a hand-computed example, the qid == doc_id rule, the CLI, and MiniLM's published SciFact numbers."""

import json
import math

import pytest
from click.testing import CliRunner

from syneg_dspy.data import Dataset, load_dataset
from syneg_dspy.errors import InputError
from syneg_dspy.evaluate import evaluate, retrieve, score_run


def test_hand_computed_example():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d5": 1, "d4": 0}}
    run = {
        "q1": {"d2": 0.9, "d1": 0.8, "d4": 0.7, "d3": 0.6, "d5": 0.5},  # relevant at ranks 2 and 4
        "q2": {"d4": 0.9, "d3": 0.8, "d2": 0.7, "d5": 0.6},  # relevant at rank 4 (d4 is judged non-relevant)
    }
    ndcg1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    ndcg2 = 1 / math.log2(5)
    m = score_run(qrels, run)
    assert m["ndcg@10"] == pytest.approx((ndcg1 + ndcg2) / 2, abs=1e-4)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert m["recall@100"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx(((1 / 2 + 2 / 4) / 2 + 1 / 4) / 2)
    assert m["n_queries"] == 2


def test_mrr_counts_only_the_top_10():
    run = {"q": {f"d{i}": 1.0 - i / 100 for i in range(12)}}
    m = score_run({"q": {"d10": 1}}, run)  # first relevant at rank 11
    assert m["mrr@10"] == 0.0 and m["ndcg@10"] == 0.0
    assert m["map"] == pytest.approx(1 / 11) and m["recall@100"] == 1.0


def test_a_doc_with_the_query_id_is_skipped(tiny_encoder_path):
    from syneg_dspy.retrieval import load_encoder

    corpus = {f"d{i}": {"title": "", "text": f"document number {i} about topic {i % 3}"} for i in range(30)}
    corpus["q1"] = {"title": "", "text": "what causes topic 1"}  # same id and text as the query: would rank first
    ds = Dataset(corpus, {"q1": "what causes topic 1"}, {"test": {"q1": {"d1": 1}}})
    run = retrieve(load_encoder(tiny_encoder_path), ds, ["q1"], k=10)
    assert len(run["q1"]) == 10 and "q1" not in run["q1"]


def test_evaluate_on_the_sample(ds, tiny_encoder_path, tmp_path):
    m = evaluate(tiny_encoder_path, ds, "test", cache_dir=tmp_path)
    assert set(m) == {"split", "ndcg@10", "mrr@10", "recall@100", "map", "n_queries", "model", "data", "precision"}
    assert m["split"] == "test" and m["n_queries"] == len(ds.qrels["test"]) and m["data"] == ds.path
    assert m["precision"] == "fp32"
    assert m["model"].startswith("tiny-encoder-")
    assert all(0 <= m[k] <= 1 for k in ("ndcg@10", "mrr@10", "recall@100", "map"))
    # a random encoder still retrieves most of a 640-doc corpus' relevant docs in its top 100
    assert m["recall@100"] > 0.1
    half = evaluate(tiny_encoder_path, ds, "test", cache_dir=tmp_path, bf16=True)
    assert half["precision"] == "bf16" and half["ndcg@10"] == pytest.approx(m["ndcg@10"], abs=0.05)
    with pytest.raises(InputError, match="no qrels split"):
        evaluate(tiny_encoder_path, ds, "dev", cache_dir=tmp_path)


def test_cli_evaluate(tiny_encoder_path, tmp_path, monkeypatch):
    from cli import main

    monkeypatch.setenv("SYNEG_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_encoder_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert f"{metrics['ndcg@10']:.4f}" in result.output and metrics["n_queries"] == 40
    assert metrics["precision"] == "fp32"
    half = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_encoder_path), "--out", str(out), "--bf16"])
    assert half.exit_code == 0, half.output
    assert json.loads(out.read_text())["precision"] == "bf16"
    missing = CliRunner().invoke(main, ["evaluate", "--model", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "error:" in missing.output


@pytest.mark.slow
def test_minilm_reproduces_scifact(scifact_path, tmp_path):
    """all-MiniLM-L6-v2 on SciFact test: the published BEIR numbers (title + " " + text, cosine, exact)."""
    m = evaluate(None, load_dataset(scifact_path), "test", cache_dir=tmp_path)
    assert m["n_queries"] == 300
    assert m["ndcg@10"] == pytest.approx(0.6451, abs=0.005)
    assert m["mrr@10"] == pytest.approx(0.6047, abs=0.005)
    assert m["recall@100"] == pytest.approx(0.925, abs=0.005)
