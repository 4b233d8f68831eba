"""The run report on a hand-made run folder: metrics table first, images written and embedded, examples."""

from __future__ import annotations

import json

import pytest

from syneg_dspy.errors import InputError
from syneg_dspy.report import write_report
from syneg_dspy.store import write_json, write_jsonl


def metrics(ndcg, model):
    return {"split": "test", "ndcg@10": ndcg, "mrr@10": ndcg - 0.05, "recall@100": 0.9, "map": ndcg - 0.1,
            "n_queries": 40, "model": model, "data": "sample"}


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "demo"
    write_json(run / "eval" / "trained.json", metrics(0.7123, "trained-abc"))
    write_json(run / "eval" / "baseline.json", metrics(0.6500, "minilm-123"))
    write_json(run / "eval" / "stage.json", {"stage": "eval", "hash": "abc", "finished": True})  # not a metrics file
    write_json(run / "train" / "log_history.json",
               [{"loss": 2.0 - 0.1 * s, "step": s, "epoch": s / 10} for s in range(1, 8)] + [{"train_runtime": 3.0, "step": 7}])
    rows = [
        {"key": f"q{i}|d{i}|0", "qid": f"q{i}", "pos_id": f"d{i}", "query": f"query {i}", "text": f"synthetic {i}",
         "attributes": {"domain": "biomedical", "difficulty": "hard" if i % 2 else "medium", "length": "short",
                        "near_miss": "entity_swap", "strategy": "s"},
         "rounds": 1, "verdict": ["accepted", "rejected", "failed"][i % 3],
         "reject_reason": "copies_positive" if i % 3 == 1 else None}
        for i in range(9)
    ]
    write_jsonl(run / "generate" / "negatives.jsonl", rows)
    write_jsonl(run / "mix" / "train.jsonl",
                [{"anchor": "what does <X> do?", "positive": "X does Y.", "negative_1": "retrieved text"},
                 {"anchor": "is Z | W?", "positive": "Z is W.", "negative_1": "an LLM-written negative"}])
    write_jsonl(run / "mix" / "train_sources.jsonl",
                [{"qid": "a", "pos_id": "b", "negative_ids": ["n1"], "negative_sources": ["dense"]},
                 {"qid": "c", "pos_id": "d", "negative_ids": ["k1"], "negative_sources": ["synthetic"]}])
    write_json(run / "mix" / "stats.json", {"synthetic_share": 0.5, "fallback_to_retrieved": 1})
    write_json(run / "generate" / "summary.json", {"separability": {"rewrite_mined": {
        "n": 12, "auc": 0.8312, "length_auc": 0.91, "words_synthetic": 61.0, "words_corpus": 198.4,
        "distinct_synthetic": 0.81, "distinct_corpus": 0.66}}})
    return run


def test_report_opens_with_the_metrics_table_and_writes_images(run_dir):
    md_path, html_path = write_report(run_dir)
    md = md_path.read_text()
    # the first block after the title is the metrics table: baseline, trained, then the delta
    first_section = md.split("\n## ")[1]
    assert first_section.startswith("Retrieval metrics")
    table = [line for line in first_section.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| model | split | ndcg@10")
    assert table[1].startswith("| baseline | test | 0.6500")
    assert table[2].startswith("| trained | test | 0.7123")
    assert "+0.0623" in table[3]
    for image in ("loss.png", "synthetic.png"):
        data = (run_dir / "report" / image).read_bytes()
        assert data.startswith(b"\x89PNG") and f"]({image})" in md

    html = html_path.read_text()
    assert html.count("data:image/png;base64,") == 2  # self-contained
    assert "what does &lt;X&gt; do?" in html and "<X>" not in html  # texts are escaped
    assert html.index("Retrieval metrics") < html.index("Training loss") < html.index("Synthetic negatives")
    # examples: the synthetic one comes first; the pipe in a query is escaped in Markdown
    examples = md.split("## Example training rows")[1]
    assert examples.index("an LLM-written negative") < examples.index("retrieved text")
    assert "is Z \\| W?" in examples
    assert "9 items (accepted: 3, rejected: 3, failed: 3)" in md


def test_report_on_a_run_without_results_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    md_path, html_path = write_report(tmp_path / "empty")
    assert "No evaluation results" in md_path.read_text()
    assert not list((tmp_path / "empty" / "report").glob("*.png"))
    assert html_path.exists()


def test_missing_run_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such run folder"):
        write_report(tmp_path / "nope")


def test_metrics_json_feeds_the_table_verbatim(run_dir):
    write_json(run_dir / "eval" / "extra.json", {**json.loads((run_dir / "eval" / "baseline.json").read_text()), "ndcg@10": 0.1})
    md = write_report(run_dir)[0].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:5]] == ["| baseline", "| trained", "| extra", "| Δ trained − baseline"]


def test_cli_report(run_dir):
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 0 and "report.html" in result.output
    assert (run_dir / "report" / "report.html").exists()


def test_report_shows_the_source_shortcut_per_strategy(run_dir):
    md = write_report(run_dir)[0].read_text()
    section = md.split("## Source shortcut")[1].split("\n## ")[0]
    assert "| rewrite_mined | 12 | 0.83 | 0.91 | 61 / 198 | 0.81 / 0.66 |" in section
