"""The trainer on a tiny local encoder: a few real MNRL steps, a model that reloads, the loss curve, the sampler."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

from syneg_dspy.errors import InputError
from syneg_dspy.mine import group_by_pair, write_training_set
from syneg_dspy.train import build_trainer, load_training_dataset, train
from syneg_dspy.train.trainer import OrderedNoDuplicatesBatchSampler


@pytest.fixture(scope="module")
def tiny(tiny_encoder_path):
    return str(tiny_encoder_path)


def random_negative_rows(ds, seed=0):
    rng, ids = random.Random(seed), sorted(ds.corpus)
    rows = []
    for q, d in ds.positives("train"):
        neg = rng.choice([i for i in ids if i not in ds.qrels["train"][q]])
        rows.append({"anchor": ds.queries[q], "positive": ds.doc_text(d), "negative_1": ds.doc_text(neg)})
    return rows


def test_few_steps_save_a_model_that_reloads_and_log_the_loss(ds, tiny, tmp_path):
    out = tmp_path / "run"
    res = train(
        random_negative_rows(ds), base_model=tiny, out_dir=out, batch_size=8, lr=1e-3, max_steps=3,
        eval_ds=ds, eval_split="test", eval_steps=3, save_steps=2,
    )
    assert res.steps == 3 and res.train_seconds > 0
    model = SentenceTransformer(res.model_path, device="cpu")
    base = SentenceTransformer(tiny, device="cpu")
    assert model.encode(["a query"]).shape == (1, 64)
    changed = [not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values())]
    assert any(changed)  # the steps updated the weights

    log = json.loads((out / "log_history.json").read_text())
    losses = [e for e in log if "loss" in e]
    assert [e["step"] for e in losses] == [1, 2, 3] and all(e["loss"] > 0 for e in losses)
    assert any("eval_test_cosine_ndcg@10" in e for e in log)  # the IR evaluator ran on the given split
    assert json.loads((out / "train.json").read_text())["steps"] == 3
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    assert not (out / ".model.tmp").exists()


def test_bf16_autocast_trains_float32_weights(ds, tiny, tmp_path):
    rows = random_negative_rows(ds)[:16]
    runs = {bf16: train(rows, base_model=tiny, out_dir=tmp_path / str(bf16), batch_size=8, lr=1e-3, max_steps=2, bf16=bf16)
            for bf16 in (False, True)}
    losses = {bf16: [e["loss"] for e in res.log_history if "loss" in e] for bf16, res in runs.items()}
    assert losses[True] != losses[False]  # same seed and batches: only the precision differs
    assert losses[True] == pytest.approx(losses[False], rel=0.1)
    model = SentenceTransformer(runs[True].model_path, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # master weights stay fp32


def test_max_seq_length_cuts_training_texts_but_the_saved_model_keeps_the_encoders(ds, tiny, tmp_path):
    rows = random_negative_rows(ds)[:16]
    runs = {n: train(rows, base_model=tiny, out_dir=tmp_path / str(n), batch_size=8, lr=1e-3, max_steps=2,
                     max_seq_length=n) for n in (None, 16)}
    losses = {n: [e["loss"] for e in res.log_history if "loss" in e] for n, res in runs.items()}
    assert losses[16] != losses[None]  # the steps saw cut texts
    assert SentenceTransformer(runs[16].model_path, device="cpu").max_seq_length == 128  # the tiny encoder's


def test_cached_mnrl_trains(ds, tiny, tmp_path):
    res = train(random_negative_rows(ds)[:16], base_model=tiny, out_dir=tmp_path, batch_size=8, max_steps=1,
                loss="cached_mnrl", mini_batch_size=4)
    assert res.steps == 1 and any("loss" in e for e in res.log_history)


def _batches_texts(trainer):
    data = trainer.train_dataset
    for batch in trainer.get_train_dataloader().batch_sampler:
        yield batch, [t for i in batch for t in data[i].values()]


def test_no_duplicates_sampler_keeps_repeated_texts_apart(ds, tiny, tmp_path):
    # 12 distinct queries, each with 4 rows sharing the anchor: any plain batch of 8 would repeat anchors
    rows = [r for r in random_negative_rows(ds) for _ in range(4)][:48]
    for i, row in enumerate(rows):
        row["positive"] = f"{row['positive']} #{i}"
    trainer = build_trainer(rows, base_model=tiny, out_dir=tmp_path, batch_size=8, max_steps=1)
    assert isinstance(trainer.get_train_dataloader().batch_sampler, NoDuplicatesBatchSampler)
    for _, texts in _batches_texts(trainer):
        assert len(texts) == len(set(texts))


def test_unshuffled_sampler_follows_file_order_without_duplicates(ds, tiny, tmp_path):
    rows = random_negative_rows(ds)[:40]
    rows[1]["anchor"] = rows[0]["anchor"]  # row 1 must wait for the next batch
    trainer = build_trainer(rows, base_model=tiny, out_dir=tmp_path, batch_size=8, max_steps=1, shuffle=False)
    assert isinstance(trainer.get_train_dataloader().batch_sampler, OrderedNoDuplicatesBatchSampler)
    batches = []
    for batch, texts in _batches_texts(trainer):
        assert len(texts) == len(set(texts))
        batches.append(batch)
    assert len(batches) == 5
    assert batches[0] == [0, 2, 3, 4, 5, 6, 7, 8]
    assert batches[1][0] == 1
    assert sorted(i for b in batches for i in b) == list(range(40))


def test_loads_the_mining_writers_folder(ds, tmp_path):
    negs = [
        {"qid": q, "pos_id": d, "doc_id": "x", "text": f"negative for {q}", "source": "dense"}
        for q, d in ds.positives("train")
    ]
    write_training_set(group_by_pair(negs), ds, tmp_path, n=1)
    from_folder = load_training_dataset(tmp_path)
    assert from_folder.column_names == ["anchor", "positive", "negative_1"]
    assert len(from_folder) == len(negs)
    assert load_training_dataset(tmp_path / "train.jsonl")[0] == from_folder[0]


def test_bad_training_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"anchor": "q", "positive": "p"}\n{"anchor": "q"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: .*positive"):
        load_training_dataset(bad)
    with pytest.raises(InputError, match="not a training set"):
        load_training_dataset(tmp_path / "missing")


def test_cli_train(ds, tiny, tmp_path):
    from click.testing import CliRunner

    from cli import main
    from syneg_dspy.store import write_jsonl

    write_jsonl(tmp_path / "train.jsonl", random_negative_rows(ds)[:16])
    result = CliRunner().invoke(main, ["train", "--train", str(tmp_path / "train.jsonl"), "--out", str(tmp_path / "out"),
                                       "--base-model", tiny, "--batch-size", "8", "--max-steps", "1", "--bf16"])
    assert result.exit_code == 0, result.output
    assert "1 steps" in result.output and (tmp_path / "out" / "model" / "modules.json").exists()


@pytest.mark.slow
def test_torchrun_trains_ddp_on_two_cpu_processes(ds, tiny, tmp_path):
    """The documented scale-out: ``torchrun --nproc_per_node 2 $(which syneg) train ...`` on CPU (gloo), no
    distributed code of ours. Each process takes a batch of 8 per step, so a step covers 16 of the 64 rows."""
    from syneg_dspy.store import write_jsonl

    write_jsonl(tmp_path / "train.jsonl", random_negative_rows(ds)[:64])
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "out"
    cmd = [bin_dir / "torchrun", "--standalone", "--nproc_per_node", "2", bin_dir / "syneg", "train", "--train",
           tmp_path / "train.jsonl", "--out", out, "--base-model", tiny, "--batch-size", "8", "--max-steps", "3",
           "--lr", "1e-3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNEG_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(list(map(str, cmd)), env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    assert done.stdout.count("3 steps in") == 2  # both processes trained and returned
    meta = json.loads((out / "train.json").read_text())
    assert meta["world_size"] == 2 and meta["steps"] == 3
    log = json.loads((out / "log_history.json").read_text())
    first = next(e for e in log if e.get("step") == 1 and "loss" in e)
    assert first["epoch"] == pytest.approx(16 / 64)  # 2 processes x 8 rows per step
    model = SentenceTransformer(str(out / "model"), device="cpu")
    assert model.encode(["a query"]).shape == (1, 64)
    base = SentenceTransformer(tiny, device="cpu")
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    assert not (out / ".model.tmp").exists()
