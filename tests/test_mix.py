"""Hybrid sampler: ratio, fallbacks, warmup, accepted-only, determinism, and output that trains."""

from __future__ import annotations

import pytest

from syneg_dspy.errors import InputError
from syneg_dspy.data import load_dataset
from syneg_dspy.mix import mix_negatives, save_mix
from syneg_dspy.store import read_jsonl
from syneg_dspy.train import load_training_dataset


def _pairs(k: int) -> list[tuple[str, str]]:
    return [(f"q{i}", f"d{i}") for i in range(k)]


def _synthetic(k: int, per: int, verdict: str = "accepted") -> list[dict]:
    return [
        {"key": f"q{i}-{j}-{verdict}", "qid": f"q{i}", "pos_id": f"d{i}", "text": f"synthetic {verdict} {i}.{j}", "verdict": verdict}
        for i in range(k)
        for j in range(per)
    ]


def _retrieved(k: int, per: int, source: str = "dense") -> list[dict]:
    return [
        {"qid": f"q{i}", "pos_id": f"d{i}", "doc_id": f"n{i}.{j}", "text": f"{source} {i}.{j}", "source": source, "rank": j}
        for i in range(k)
        for j in range(per)
    ]


def test_ratio_is_honoured_statistically():
    res = mix_negatives(_pairs(2000), _synthetic(2000, 2), _retrieved(2000, 2), n=2, ratio=0.3, seed=1)
    assert res.stats["instances"] == 2000 and res.stats["slots"] == 4000
    assert res.stats["fallback_to_retrieved"] == res.stats["fallback_to_synthetic"] == 0
    # binomial(4000, 0.3): sd ≈ 0.0072
    assert abs(res.stats["synthetic_share"] - 0.3) < 0.03
    counted = sum(s == "synthetic" for inst in res.instances for s in inst.sources)
    assert counted == res.stats["by_source"]["synthetic"]
    for inst in res.instances:
        assert len(inst.negatives) == len(inst.sources) == 2
        assert len({neg["text"] for neg in inst.negatives}) == 2  # never the same negative twice in one instance
        for neg in inst.negatives:
            assert neg["text"].startswith(neg["source"]) and (neg["qid"], neg["pos_id"]) == (inst.qid, inst.pos_id)


def test_ratio_extremes_use_one_pool():
    only_syn = mix_negatives(_pairs(50), _synthetic(50, 1), _retrieved(50, 1), ratio=1.0)
    only_ret = mix_negatives(_pairs(50), _synthetic(50, 1), _retrieved(50, 1), ratio=0.0)
    assert only_syn.stats["synthetic_share"] == 1.0
    assert only_ret.stats["synthetic_share"] == 0.0


def test_fallbacks_are_counted_and_short_pairs_dropped():
    # pairs 0-9 have no synthetic negatives; pairs 10-19 have no retrieved ones; pair 20 has one negative only
    synthetic = [r for r in _synthetic(21, 2) if 10 <= int(r["qid"][1:]) < 20]
    retrieved = [r for r in _retrieved(21, 2) if int(r["qid"][1:]) < 10] + _retrieved(21, 1)[20:]
    res = mix_negatives(_pairs(21), synthetic, retrieved, n=2, ratio=0.5, seed=3)
    stats = res.stats
    assert stats["dropped"] == 1 and stats["instances"] == 20
    assert stats["fallback_to_retrieved"] > 0 and stats["fallback_to_synthetic"] > 0
    for inst in res.instances:
        expected = "dense" if int(inst.qid[1:]) < 10 else "synthetic"
        assert inst.sources == [expected, expected]
    # every fallback is a slot whose draw went the other way: total slots is still n * instances
    assert sum(stats["by_source"].values()) == stats["slots"] == 40


def test_only_accepted_synthetic_rows_are_used():
    synthetic = _synthetic(30, 1, "accepted") + _synthetic(30, 3, "rejected") + _synthetic(30, 3, "failed")
    res = mix_negatives(_pairs(30), synthetic, _retrieved(30, 3), n=2, ratio=0.9, seed=0)
    texts = [neg["text"] for inst in res.instances for neg in inst.negatives if neg["source"] == "synthetic"]
    assert texts and all("accepted" in t for t in texts)
    assert res.stats["ignored_synthetic_rows"] == 180
    # one accepted row per pair: the second synthetic-drawn slot must fall back
    assert res.stats["fallback_to_retrieved"] > 0


def test_warmup_ramps_ratio_then_holds():
    res = mix_negatives(_pairs(1000), _synthetic(1000, 1), _retrieved(1000, 1), ratio=0.6, schedule="warmup", warmup_frac=0.5, seed=0)
    ratios = [inst.ratio for inst in res.instances]
    assert ratios[0] == 0.0
    assert all(a <= b for a, b in zip(ratios, ratios[1:]))
    assert ratios[250] == pytest.approx(0.3)
    assert all(r == pytest.approx(0.6) for r in ratios[500:])
    early = sum(inst.sources[0] == "synthetic" for inst in res.instances[:200]) / 200
    late = sum(inst.sources[0] == "synthetic" for inst in res.instances[500:]) / 500
    assert early < 0.2 and abs(late - 0.6) < 0.08
    # averaged over the ramp the share is below the target
    assert res.stats["synthetic_share"] < 0.6


def test_seeded_order_and_draws():
    args = (_pairs(100), _synthetic(100, 3), _retrieved(100, 3))
    a = mix_negatives(*args, n=2, seed=7)
    b = mix_negatives(*args, n=2, seed=7)
    c = mix_negatives(*args, n=2, seed=8)
    assert a.instances == b.instances
    assert [i.qid for i in a.instances] != [i.qid for i in c.instances]
    assert sorted(i.qid for i in a.instances) == sorted(q for q, _ in args[0])


def test_a_pair_s_draws_do_not_depend_on_other_pairs_pools():
    # pairs 40-59 have no retrieved negative: without synthetic rows they are dropped
    retrieved = [r for r in _retrieved(60, 3) if int(r["qid"][1:]) < 40]
    some = [r for r in _synthetic(60, 2) if int(r["qid"][1:]) < 20]
    more = some + [r for r in _synthetic(60, 2) if int(r["qid"][1:]) >= 20]  # new rows for 20-59, 40-59 join
    a = mix_negatives(_pairs(60), some, retrieved, n=2, ratio=0.5, seed=4)
    b = mix_negatives(_pairs(60), more, retrieved, n=2, ratio=0.5, seed=4)
    assert a.stats["instances"] == 40 and b.stats["instances"] == 60
    old = {i.qid: i.negatives for i in a.instances}
    new = {i.qid: i.negatives for i in b.instances}
    assert all(new[q] == old[q] for q in old if int(q[1:]) < 20)  # untouched pools: the same negatives
    assert any(new[q] != old[q] for q in old if 20 <= int(q[1:]) < 40)  # now drawn from both pools
    assert [i.qid for i in b.instances if i.qid in old] == [i.qid for i in a.instances]  # and the same order


def test_bad_options_are_input_errors():
    with pytest.raises(InputError, match="ratio"):
        mix_negatives(_pairs(2), [], _retrieved(2, 1), ratio=1.5)
    with pytest.raises(InputError, match="schedule"):
        mix_negatives(_pairs(2), [], _retrieved(2, 1), schedule="cosine")


def test_saved_mix_loads_for_training_in_training_order(sample_path, tmp_path):
    ds = load_dataset(sample_path)
    pairs = ds.positives("train")
    ids = sorted(ds.corpus)
    retrieved = [
        {"qid": q, "pos_id": d, "doc_id": ids[(i + j) % len(ids)], "text": ds.doc_text(ids[(i + j) % len(ids)]), "source": "bm25"}
        for i, (q, d) in enumerate(pairs)
        for j in range(2)
    ]
    synthetic = [
        {"key": f"{q}|{d}|0", "qid": q, "pos_id": d, "text": f"A made-up study about {ds.queries[q]}", "verdict": "accepted"}
        for q, d in pairs[::2]
    ]
    res = mix_negatives(pairs, synthetic, retrieved, n=2, ratio=0.5, seed=0)
    ts = save_mix(res, ds, tmp_path)
    assert ts.dropped == 0 and len(ts.rows) == len(pairs)
    data = load_training_dataset(tmp_path)
    assert data.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert data["anchor"] == [ds.queries[inst.qid] for inst in res.instances]  # the mixer's order is the file's
    sources = read_jsonl(tmp_path / "train_sources.jsonl")
    assert [s["negative_sources"] for s in sources] == [inst.sources for inst in res.instances]
    assert read_jsonl(tmp_path / "flag.jsonl")[0]["neg"] == [n["text"] for n in res.instances[0].negatives]
    stats = (tmp_path / "stats.json").read_text()
    assert '"synthetic_share"' in stats


def test_cli_mix_writes_a_training_set_and_rejects_bad_rows(sample_path, tmp_path):
    from click.testing import CliRunner

    from cli import main
    from syneg_dspy.store import write_jsonl

    ds = load_dataset(sample_path)
    pairs = ds.positives("train")
    write_jsonl(tmp_path / "mine" / "negatives.jsonl",
                [{"qid": q, "pos_id": d, "doc_id": "x", "text": f"retrieved {q}", "source": "dense"} for q, d in pairs])
    write_jsonl(tmp_path / "syn.jsonl",
                [{"key": f"{q}|{d}", "qid": q, "pos_id": d, "text": f"llm {q}", "verdict": "accepted"} for q, d in pairs])
    args = ["mix", "--synthetic", str(tmp_path / "syn.jsonl"), "--retrieved", str(tmp_path / "mine"), "--out", str(tmp_path / "out"),
            "--ratio", "1.0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"{len(pairs)} instances, synthetic share 1.000" in result.output
    assert all(r["negative_1"].startswith("llm ") for r in read_jsonl(tmp_path / "out" / "train.jsonl"))

    (tmp_path / "syn.jsonl").write_text('{"qid": "1", "pos_id": "2", "text": "t"}\n')
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'syn.jsonl'}:1: not a synthetic negative row: missing key, verdict"
