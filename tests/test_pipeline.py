"""``syneg run`` end to end on the sample with a scripted LLM and a tiny encoder; a rerun skips every stage."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from cli import main
from syneg_dspy.data import load_dataset
from syneg_dspy.errors import InputError
from syneg_dspy.lm import register_script
from syneg_dspy.pipeline import STAGES, RunConfig, load_config, run
from syneg_dspy.store import read_jsonl
from tests.test_program import fields

TOPICS = ["dietary sodium", "sleep duration", "air pollution", "statin use", "shift work", "coffee intake"]


def answer(messages, kwargs):
    """One JSON object that satisfies every SyNeg signature (the adapter keeps the fields it asked for)."""
    topic = TOPICS[sum(map(ord, messages[-1]["content"])) % len(TOPICS)]
    text = f"A regional cohort of elderly volunteers examined {topic} and reported outcomes unrelated to the question asked."
    offered = fields(messages).get("phrases")  # a rewrite: replace the first phrase offered
    return json.dumps({
        "reasoning": "changes the exposure", "negative": text, "revised": text, "domain": "biomedical research",
        "answers_query": False, "on_topic": True, "copies_positive": False, "issues": "none",
        "find": json.loads(offered)[0] if offered else "", "replace": topic,
    })


@pytest.fixture(scope="module")
def tiny(tiny_encoder_path):
    return str(tiny_encoder_path)


@pytest.fixture
def config(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNEG_CACHE", str(tmp_path / "cache"))
    register_script("pipeline", answer)
    return RunConfig(
        name="t", runs_dir=str(tmp_path / "runs"), encoder=tiny, guard_encoder="embedded", lm="scripted/pipeline", generate_limit=6,
        mine_source="bm25", batch_size=8, max_steps=2, lr=1e-3, ratio=0.5, progress=False, strategy="generate",
    )


def test_run_then_rerun_skips_every_stage(config, ds):
    first = run(config)
    assert first.stages == {s: "ran" for s in STAGES}
    run_dir = first.run_dir
    for stage in STAGES:
        assert json.loads((run_dir / stage / "stage.json").read_text())["finished"]

    generated = read_jsonl(run_dir / "generate" / "negatives.jsonl")
    assert len(generated) == 6 and all(r["lm"] == "scripted/pipeline" for r in generated)
    stats = json.loads((run_dir / "mix" / "stats.json").read_text())
    accepted = sum(r["verdict"] == "accepted" for r in generated)
    assert stats["accepted_synthetic_rows"] == accepted
    assert 0 < stats["by_source"]["synthetic"] <= accepted  # the LLM's negatives reached the training set
    assert json.loads((run_dir / "train" / "train.json").read_text())["steps"] == 2
    assert set(first.metrics) == {"baseline", "trained"}
    assert first.metrics["baseline"]["model"] != first.metrics["trained"]["model"]
    assert first.report[0].read_text().startswith(f"# SyNeg run: {config.name}")

    mtimes = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    again = run(config)
    assert again.stages == {s: "skipped" for s in STAGES}
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert again.metrics == first.metrics

    # a mixing option reruns mix and what follows, never mining or generation
    third = run(dataclasses.replace(config, ratio=0.0))
    assert third.stages == {"mine": "skipped", "generate": "skipped", "mix": "ran", "train": "ran", "eval": "ran", "report": "ran"}
    stats = json.loads((run_dir / "mix" / "stats.json").read_text())
    assert stats["ratio"] == 0.0  # synthetic only where a pair has no retrieved negative left
    assert stats["by_source"].get("synthetic", 0) == stats["fallback_to_synthetic"]

    # another strategy regenerates (rewriting the mined negatives) but reuses mining
    fourth = run(dataclasses.replace(config, strategy="rewrite_mined"))
    assert fourth.stages["mine"] == "skipped" and fourth.stages["generate"] == "ran"
    rewrites = [r for r in read_jsonl(run_dir / "generate" / "negatives.jsonl") if r["source"]]
    mined = {(r["qid"], r["pos_id"]): r["text"] for r in read_jsonl(run_dir / "mine" / "negatives.jsonl")}
    assert rewrites and all(r["attributes"]["strategy"] == "rewrite_mined" for r in rewrites)
    assert all(r["source"] == mined[r["qid"], r["pos_id"]] for r in rewrites if (r["qid"], r["pos_id"]) in mined)
    deepened = [r for r in rewrites if (r["qid"], r["pos_id"]) not in mined]  # the mining window left these without
    assert deepened and {r["source"] for r in deepened} <= {ds.doc_text(d) for d in ds.corpus}
    assert any(r["verdict"] == "accepted" and r["edit"]["replace"] in r["text"] for r in rewrites)

    # bf16 retrains and re-evaluates, and both say so
    fifth = run(dataclasses.replace(config, strategy="rewrite_mined", bf16=True))
    assert [s for s, how in fifth.stages.items() if how == "ran"] == ["train", "eval", "report"]
    assert {m["precision"] for m in fifth.metrics.values()} == {"bf16"}


def test_config_file_and_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('name = "from-file"\nratio = 0.25\n[train]\nepochs = 2\nbatch_size = 4\n')
    cfg = load_config(path, {"batch_size": 8})
    assert (cfg.name, cfg.ratio, cfg.epochs, cfg.batch_size) == ("from-file", 0.25, 2.0, 8)
    path.write_text("ratoi = 0.3\n")
    with pytest.raises(InputError, match=r"run.toml: unknown option 'ratoi'"):
        load_config(path)
    path.write_text('ratio = "high"\n')
    with pytest.raises(InputError, match="ratio must be float"):
        load_config(path)
    path.write_text('strategy = "rewrite_everything"\n')
    with pytest.raises(InputError, match="strategy: unknown strategy 'rewrite_everything'"):
        load_config(path)
    path.write_text('schedule = "cosine"\n')
    with pytest.raises(InputError, match="schedule must be one of"):
        load_config(path)
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text("mix:\n  ratio: 0.75\n")
    assert load_config(yaml_path).ratio == 0.75


def test_cli_run_reports_bad_config_in_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("negatives = 0\n")
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {path}: negatives must be at least 1"]
