"""Generation under faults: a flaky LLM server (429, 500, garbage bodies, non-JSON and truncated replies),
and a ``syneg generate`` process killed with SIGKILL midway. Every item must end with exactly one row."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from programs import load_program
from syneg_dspy.data import Dataset
from syneg_dspy.generate import Guard, generate_negatives
from syneg_dspy.lm import make_lm
from syneg_dspy.retrieval import load_encoder
from syneg_dspy.store import read_jsonl
from tests.fake_openai import FakeOpenAI, syneg_reply

SUBJECTS = ("insulin", "dopamine", "p53", "collagen", "ferritin", "myelin", "cortisol", "keratin", "leptin", "actin")
EFFECTS = ("secretion", "folding", "turnover", "signalling", "binding")
DOMAIN = "test domain"
FAULT_RATES = {"429": 0.10, "500": 0.05, "garbage": 0.05, "truncated": 0.05, "non_json": 0.05}


def pairs_dataset(n: int) -> Dataset:
    """``n`` short (query, positive) pairs, every query different; the first fifth also form a 'test' split."""
    corpus, queries, train = {}, {}, {}
    for i in range(n):
        subject, effect = SUBJECTS[i % len(SUBJECTS)], EFFECTS[i // len(SUBJECTS) % len(EFFECTS)]
        queries[f"q{i}"] = f"Does {subject} {effect} change in cohort {i}?"
        corpus[f"d{i}"] = {"title": f"{subject} {effect} {i}",
                           "text": f"In cohort {i}, {subject} {effect} rose by {i % 7 + 2} percent after treatment."}
        train[f"q{i}"] = {f"d{i}": 1}
    return Dataset(corpus, queries, {"train": train, "test": dict(list(train.items())[: max(1, n // 5)])},
                   name=f"pairs{n}")


def write_beir(ds: Dataset, folder: Path) -> Path:
    """The dataset as a BEIR folder, for the CLI."""
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for doc_id, doc in ds.corpus.items():
            f.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for qid, text in ds.queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, qrels in ds.qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, docs in qrels.items() for d, g in docs.items()]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def cli_env(tmp_path: Path, key: str = "sk-test-dummy") -> dict:
    """Environment of a ``syneg`` subprocess: its own caches under ``tmp_path``, a dummy API key."""
    cache = tmp_path / "syneg-cache"
    return {**os.environ, "OPENAI_API_KEY": key, "SYNEG_CACHE": str(cache), "DSPY_CACHEDIR": str(cache / "dspy"),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


def syneg_cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "syneg"), *map(str, args)]


def outcomes(path: Path) -> dict[str, tuple]:
    return {r["key"]: (r["verdict"], r["reject_reason"], r["text"]) for r in read_jsonl(path)}


@pytest.fixture(scope="module")
def lenient_guard(tiny_encoder_path):
    """The tiny encoder is random: its cosines say nothing, so only the string checks may reject here."""
    return Guard(load_encoder(str(tiny_encoder_path)), max_positive_cosine=2.0, score_margin=2.0,
                 max_duplicate_cosine=2.0)


def test_200_items_through_a_flaky_server_all_end_and_retry_failed_heals(lenient_guard, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    ds = pairs_dataset(200)
    out = tmp_path / "negatives.jsonl"
    run = dict(guard=lenient_guard, domain=DOMAIN, concurrency=8, progress=False)
    with FakeOpenAI(syneg_reply, rates=FAULT_RATES, seed=1) as server:
        # num_retries=1: one retry after LiteLLM's 1 s backoff, so some transient faults heal and some fail the item
        lm = make_lm("openai/fake", api_base=server.url, cache=False, num_retries=1)
        first = generate_negatives(ds, "train", load_program(), lm, out, **run)
    assert all(server.injected[fault] > 0 for fault in FAULT_RATES), server.injected

    rows = read_jsonl(out)
    assert len(rows) == 200 and len({r["key"] for r in rows}) == 200
    assert {r["qid"] for r in rows} == set(ds.queries)
    for row in rows:
        assert row["verdict"] in {"accepted", "rejected", "failed"}
        if row["verdict"] == "accepted":
            assert row["text"] and row["reject_reason"] is None
        else:
            assert row["reject_reason"], row
        if row["verdict"] == "failed":
            assert row["error"] and row["llm_calls"] >= 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == first.to_dict() and summary["items"] == summary["run_items"] == 200
    n_failed = sum(summary["failed"].values())
    assert summary["accepted"] + sum(summary["rejected"].values()) + n_failed == 200
    assert n_failed == sum(r["verdict"] == "failed" for r in rows) > 0
    assert summary["failed"].get("parse_error", 0) > 0  # non-JSON replies are not retried: they fail the item
    assert summary["accepted"] > 100

    before = {r["key"]: r for r in rows}
    failed_keys = {k for k, r in before.items() if r["verdict"] == "failed"}
    with FakeOpenAI(syneg_reply) as clean:
        lm = make_lm("openai/fake", api_base=clean.url, cache=False, num_retries=0)
        healed = generate_negatives(ds, "train", load_program(), lm, out, retry_failed=True, **run)
    assert healed.run_items == len(failed_keys) and healed.failed == {} and healed.items == 200
    after = {r["key"]: r for r in read_jsonl(out)}
    assert set(after) == set(before)
    assert {k for k in after if after[k] != before[k]} == failed_keys
    assert len(read_jsonl(out)) == 200 + len(failed_keys)  # one superseding line per retried item, the last wins


def test_sigkill_midway_then_resume_equals_an_uninterrupted_run(tiny_encoder_path, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    ds = pairs_dataset(60)
    data = write_beir(ds, tmp_path / "data")
    with FakeOpenAI(syneg_reply, latency_s=0.2) as server:
        reference = tmp_path / "ref" / "negatives.jsonl"
        lm = make_lm("openai/fake", api_base=server.url, cache=False, max_tokens=256)
        generate_negatives(ds, "train", load_program(max_rounds=2), lm, reference,
                           guard=Guard(load_encoder(str(tiny_encoder_path))), domain=DOMAIN, concurrency=8,
                           progress=False)

        out = tmp_path / "run"
        args = syneg_cli("generate", "--data", data, "--out", out, "--lm", "openai/fake", "--api-base", server.url,
                         "--encoder", tiny_encoder_path, "--domain", DOMAIN, "--concurrency", "4", "--no-progress")
        env = cli_env(tmp_path)
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        jsonl, deadline = out / "negatives.jsonl", time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if jsonl.exists() and jsonl.read_bytes().count(b"\n") >= 10:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]  # still running: the kill lands midway
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        n_killed = jsonl.read_bytes().count(b"\n")
        assert 10 <= n_killed < 60
        with jsonl.open("a") as f:
            f.write('{"key": "q1|d1|0|torn')  # as if killed in the middle of a write

        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    lines = jsonl.read_text().splitlines()
    keys = [json.loads(line)["key"] for line in lines]
    assert len(lines) == 60 and len(set(keys)) == 60  # the torn line is gone, nothing duplicated, nothing lost
    assert outcomes(jsonl) == outcomes(reference)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items"] == 60 and summary["run_items"] == 60 - n_killed
