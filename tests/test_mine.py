"""Mining hard negatives and writing training sets: real faiss/bm25s, a tiny local encoder, ST as the reference."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from syneg_dspy.errors import InputError
from syneg_dspy.mine import deepen, group_by_pair, mine_negatives, to_flag_rows, to_st_rows, write_training_set
from syneg_dspy.retrieval import BM25Index, corpus_embeddings, encode_queries, load_encoder

COLUMNS = ["qid", "pos_id", "doc_id", "text", "source", "rank", "score", "pos_score"]


@pytest.fixture(scope="module")
def encoder(tiny_encoder_path):
    return load_encoder(tiny_encoder_path)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def mine(ds, encoder, cache):
    def run(**kw):
        return mine_negatives(ds, "train", encoder, cache_dir=cache, show_progress=False, **kw)

    return run


def judged(ds, qid):
    return {d for qrels in ds.qrels.values() for d in qrels.get(qid, {})}


def test_rows_follow_the_contract_and_exclude_judged_docs(ds, mine):
    rows = mine(n=3)
    assert rows and all(list(r) == COLUMNS for r in rows)
    pairs = set(ds.positives("train"))
    assert {(r["qid"], r["pos_id"]) for r in rows} == pairs
    by_pair = group_by_pair(rows)
    assert all(len(negs) == 3 for negs in by_pair.values())
    for r in rows:
        assert r["doc_id"] not in judged(ds, r["qid"]) and r["doc_id"] != r["pos_id"]
        assert r["text"] == ds.doc_text(r["doc_id"]) and r["source"] == "dense"
        assert 10 <= r["rank"] < 50
    for negs in by_pair.values():
        assert [n["rank"] for n in negs] == sorted(n["rank"] for n in negs)
        assert len({n["doc_id"] for n in negs}) == 3


def test_top_sampling_matches_brute_force(ds, encoder, cache, mine):
    rows = group_by_pair(mine(n=2, range_min=5, range_max=20))
    emb = corpus_embeddings(encoder, ds, cache_dir=cache, show_progress=False)
    for (qid, pos_id), negs in rows.items():
        scores = emb.matrix @ encode_queries(encoder, [ds.queries[qid]])[0]
        ranked = [emb.doc_ids[i] for i in np.argsort(-scores, kind="stable") if emb.doc_ids[i] not in judged(ds, qid)]
        # Same docs, or docs tied within float noise (queries are encoded in batches there, alone here).
        brute = {d: float(scores[emb.doc_ids.index(d)]) for d in emb.doc_ids}
        assert [brute[n["doc_id"]] for n in negs] == pytest.approx([brute[d] for d in ranked[5:7]], abs=1e-5)
        assert [n["rank"] for n in negs] == [5, 6]
        assert negs[0]["pos_score"] == pytest.approx(float(scores[emb.doc_ids.index(pos_id)]), abs=1e-5)


@pytest.mark.parametrize("kind", ["margin", "relative_margin"])
def test_margins_hold_against_the_hardest_positive(ds, mine, kind):
    value = 0.004  # the untrained tiny encoder scores everything within ~0.05 of the positive
    rows = mine(n=2, **{kind: value})
    assert rows
    plain = mine(n=2)
    assert [r["doc_id"] for r in rows] != [r["doc_id"] for r in plain]  # the margin did remove candidates
    by_query = {}
    for r in rows:
        by_query.setdefault(r["qid"], []).append(r)
    for qid, qrows in by_query.items():
        ref = min(r["pos_score"] for r in qrows)
        limit = ref - value if kind == "margin" else ref - abs(ref) * value
        assert all(r["score"] <= limit + 1e-6 for r in qrows)


@pytest.mark.parametrize("kw", [{}, {"margin": 0.003}, {"relative_margin": 0.003}])
def test_agrees_with_sentence_transformers(ds, encoder, mine, kw):
    from datasets import Dataset as HFDataset
    from sentence_transformers.util import mine_hard_negatives

    pairs = ds.positives("train")
    pair_ds = HFDataset.from_dict(
        {"anchor": [ds.queries[q] for q, _ in pairs], "positive": [ds.doc_text(d) for _, d in pairs]}
    )
    theirs = mine_hard_negatives(
        pair_ds, encoder, corpus=[ds.doc_text(d) for d in sorted(ds.corpus)], range_min=10, range_max=50,
        absolute_margin=kw.get("margin"), relative_margin=kw.get("relative_margin"), num_negatives=1,
        sampling_strategy="top", output_format="n-tuple", output_scores=True, verbose=False,
    )
    ours = {(ds.queries[r["qid"]], ds.doc_text(r["pos_id"])): r for r in mine(n=1, **kw)}
    assert len(theirs) == len(ours) > 0
    agree = 0
    for row in theirs:
        mine_row = ours[(row["anchor"], row["positive"])]
        # the same doc, or an exact tie in score (then either pick is right)
        agree += mine_row["text"] == row["negative_1"] or abs(mine_row["score"] - row["scores"][1]) < 1e-5
    assert agree / len(theirs) >= 0.97


def test_random_sampling_is_seeded_and_stays_in_the_window(mine):
    a, b, c = (mine(n=2, sampling="random", seed=s) for s in (1, 1, 2))
    top = mine(n=2)
    assert a == b
    assert [r["doc_id"] for r in a] != [r["doc_id"] for r in c]
    assert [r["doc_id"] for r in a] != [r["doc_id"] for r in top]
    assert all(10 <= r["rank"] < 50 for r in a)
    for negs in group_by_pair(a).values():
        assert negs[0]["rank"] < negs[1]["rank"]


def test_bm25_and_both_sources(ds, mine):
    bm25 = mine(n=2, sources=("bm25",))
    assert bm25 and {r["source"] for r in bm25} == {"bm25"}
    index = BM25Index.from_dataset(ds)
    row = {d: i for i, d in enumerate(index.doc_ids)}
    r = bm25[0]
    scores = index.scores(ds.queries[r["qid"]])
    assert r["score"] == pytest.approx(float(scores[row[r["doc_id"]]]), rel=1e-5)
    assert r["pos_score"] == pytest.approx(float(scores[row[r["pos_id"]]]), rel=1e-5)
    assert all(x["doc_id"] not in judged(ds, x["qid"]) and x["score"] > 0 for x in bm25)

    both = group_by_pair(mine(n=4, sources=("dense", "bm25")))
    dense, lexical = group_by_pair(mine(n=2)), group_by_pair(bm25)
    for pair, negs in both.items():
        assert len({n["doc_id"] for n in negs}) == len(negs) == 4
        assert negs[0]["source"] == "dense"  # interleaved, dense first; bm25's first is skipped if dense had it
        assert negs[1]["source"] == "bm25" or lexical[pair][0]["doc_id"] == negs[0]["doc_id"]
        assert negs[0]["doc_id"] == dense[pair][0]["doc_id"]
        assert negs[1]["doc_id"] in {n["doc_id"] for n in lexical[pair]} | {dense[pair][1]["doc_id"]}


def test_deepen_gives_sources_to_pairs_the_window_left_without(ds, encoder, cache, mine):
    options = dict(relative_margin=0.004, range_max=20)  # the untrained encoder leaves most pairs without a candidate
    rows = mine(**options)
    have = {(r["qid"], r["pos_id"]) for r in rows}
    deep = deepen(rows, ds, "train", encoder, depth=len(ds.corpus), cache_dir=cache, **options)
    assert deep[: len(rows)] == rows  # the window's rows are kept as they were
    added = deep[len(rows):]
    assert added and not {(r["qid"], r["pos_id"]) for r in added} & have
    assert added == [r for r in mine(relative_margin=0.004, range_max=len(ds.corpus)) if (r["qid"], r["pos_id"]) not in have]
    assert all(r["score"] <= r["pos_score"] - abs(r["pos_score"]) * 0.004 + 1e-6 for r in added)
    full = mine(n=1)  # every pair has a candidate: nothing to deepen, no second mining
    assert deepen(full, ds, "train", None) == full


def test_bad_settings_are_input_errors(ds, mine):
    for kw in ({"range_min": 50}, {"n": 0}, {"n": 41, "range_max": 50}, {"sampling": "best"}, {"sources": ("sparse",)}):
        with pytest.raises(InputError):
            mine(**kw)
    with pytest.raises(InputError, match="no qrels split"):
        mine_negatives(ds, "nope")


def test_training_set_formats(ds, mine, tmp_path):
    from datasets import load_from_disk

    rows = mine(n=2, range_max=14, relative_margin=0.002)
    by_pair = group_by_pair(rows, ds.positives("train"))
    short = [p for p, negs in by_pair.items() if len(negs) < 2]
    assert short  # the tight window leaves some pairs short, so drop/pad matter

    ts = write_training_set(by_pair, ds, tmp_path, n=2)
    assert ts.dropped == len(short) and ts.padded == 0 and len(ts.rows) == len(by_pair) - len(short)
    hf = load_from_disk(str(tmp_path / "train_hf"))
    assert hf.column_names == ["anchor", "positive", "negative_1", "negative_2"] and len(hf) == len(ts.rows)
    jsonl = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert jsonl == ts.rows == hf.to_list()
    sources = [json.loads(line) for line in (tmp_path / "train_sources.jsonl").read_text().splitlines()]
    for st_row, side in zip(jsonl, sources):
        assert st_row["anchor"] == ds.queries[side["qid"]] and st_row["positive"] == ds.doc_text(side["pos_id"])
        assert [st_row["negative_1"], st_row["negative_2"]] == [ds.doc_text(d) for d in side["negative_ids"]]
        assert side["negative_sources"] == ["dense", "dense"]
    flag = [json.loads(line) for line in (tmp_path / "flag.jsonl").read_text().splitlines()]
    assert flag == to_flag_rows(by_pair, ds)
    assert len(flag) == sum(1 for negs in by_pair.values() if negs)
    assert all(set(f) == {"query", "pos", "neg"} and len(f["pos"]) == 1 and 1 <= len(f["neg"]) <= 2 for f in flag)

    padded = to_st_rows(by_pair, ds, n=2, pad="repeat")
    empty = sum(1 for negs in by_pair.values() if not negs)
    assert padded.dropped == empty and padded.padded == len(short) - empty
    assert len(padded.rows) == len(by_pair) - empty
    with pytest.raises(InputError):
        to_st_rows(by_pair, ds, n=2, pad="zeros")


def test_mined_dataset_trains_unchanged(ds, encoder, mine, tmp_path):
    from datasets import load_from_disk
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    write_training_set(group_by_pair(mine(n=2)), ds, tmp_path, n=2)
    train = load_from_disk(str(tmp_path / "train_hf"))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=8, report_to="none",
        save_strategy="no", use_cpu=True, logging_steps=1,
    )
    before = next(encoder.parameters()).detach().clone()
    trainer = SentenceTransformerTrainer(
        model=encoder, args=args, train_dataset=train, loss=MultipleNegativesRankingLoss(encoder)
    )
    result = trainer.train()
    assert result.global_step == 2 and np.isfinite(result.training_loss)
    assert not np.allclose(before.numpy(), next(encoder.parameters()).detach().numpy())


def test_cli_mine_writes_everything(tiny_encoder_path, tmp_path, monkeypatch):
    from cli import main

    monkeypatch.setenv("SYNEG_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "mined"
    model = str(tiny_encoder_path)
    result = CliRunner().invoke(
        main, ["mine", "--out", str(out), "--model", model, "--source", "both", "-n", "2", "--sampling", "random"]
    )
    assert result.exit_code == 0, result.output
    assert "negatives" in result.output and "pairs dropped" in result.output
    for name in ("negatives.jsonl", "train.jsonl", "train_sources.jsonl", "flag.jsonl", "train_hf/dataset_info.json"):
        assert (out / name).exists(), name
    assert any((tmp_path / "cache" / "embeddings").rglob("*.npy"))  # the embedding cache was used
    bad = CliRunner().invoke(main, ["mine", "--out", str(out), "--model", model, "--range-min", "60"])
    assert bad.exit_code == 2 and "range_min" in bad.output


def test_cli_mine_in_shards_matches_one_piece(tiny_encoder_path, tmp_path, monkeypatch):
    """``--shard-size`` changes how the corpus is encoded, not the cache file or the negatives (up to float near-ties)."""
    from cli import main

    from syneg_dspy.store import read_jsonl

    mined, caches = {}, {}
    for label, extra in (("whole", []), ("shards", ["--shard-size", "200"])):
        cache = tmp_path / label
        monkeypatch.setenv("SYNEG_CACHE", str(cache))
        out = tmp_path / f"mined-{label}"
        result = CliRunner().invoke(main, ["mine", "--out", str(out), "--model", str(tiny_encoder_path), *extra])
        assert result.exit_code == 0, result.output
        mined[label] = [(r["qid"], r["doc_id"]) for r in read_jsonl(out / "negatives.jsonl")]
        caches[label] = sorted(p.relative_to(cache) for p in (cache / "embeddings").rglob("*") if p.is_file())
    assert caches["whole"] == caches["shards"] and len(caches["whole"]) == 2  # the .npy and its .json, no shards left
    assert len(mined["whole"]) == len(mined["shards"])
    assert sum(a == b for a, b in zip(mined["whole"], mined["shards"])) >= 0.95 * len(mined["whole"])
