"""`generate_negatives` and `syneg generate` end to end: scripted LLM, real MiniLM guard, real JSONL store."""

import json

import pytest
from click.testing import CliRunner

from programs import DEFAULT_STRATEGY, SyNeg
from syneg_dspy.data import Dataset, load_dataset
from syneg_dspy.generate import Guard, generate_negatives
from syneg_dspy.lm import make_lm, register_script
from syneg_dspy.retrieval import load_encoder
from syneg_dspy.store import read_jsonl, write_jsonl
from tests.test_program import critique, fields, step

ROW_KEYS = {"key", "qid", "pos_id", "query", "text", "attributes", "rounds", "verdict", "reject_reason", "llm_calls",
            "tokens", "latency_s", "program_hash", "lm", "scores", "critique", "error", "source", "edit"}
GOOD = ("Zebrafish fin regeneration depends on Wnt signalling in the blastema, whereas retinoic acid controls "
        "the pattern of regenerated rays.")


@pytest.fixture(scope="module")
def guard():
    return Guard(load_encoder())


@pytest.fixture(scope="module")
def ds(sample_path):
    """Four sample train queries of 8+ words (so a restated query is long enough to reach that check)."""
    full = load_dataset(sample_path)
    picked = {}
    for qid, pos_id in full.positives("train"):
        if qid not in picked and len(full.queries[qid].split()) >= 8:
            picked[qid] = {pos_id: 1}
        if len(picked) == 4:
            break
    return Dataset(full.corpus, {q: full.queries[q] for q in picked}, {"train": picked}, name="sample4")


def script(name, negative, *, answers=lambda query: False, domain="biomedical research"):
    """Register a well-behaved LLM whose negative is ``negative(query, positive, attributes)``."""

    def fn(messages, kwargs):
        f = fields(messages)
        kind = step(messages)
        if kind == "domain":
            return json.dumps({"domain": domain})
        if kind == "critique":
            return critique(answers=answers(f["query"]))
        if kind == "revise":
            return json.dumps({"revised": f["negative"]})
        if kind == "rewrite":
            find, replace = negative(f["query"], f["source"], f["attributes"])
            return json.dumps({"find": find, "replace": replace})
        return json.dumps({"reasoning": "near miss", "negative": negative(f["query"], f["positive"], f["attributes"])})

    register_script(name, fn)
    return make_lm(f"scripted/{name}")


FILLERS = {
    "topic_drift": "Coral reefs bleach when sea temperatures stay high for several weeks.",
    "entity_swap": "Medieval guilds regulated the training of apprentices in European towns.",
    "partial_answer": "Volcanic soils hold water well and suit coffee plantations.",
    "wrong_condition": "Jazz musicians in the 1940s developed bebop in small New York clubs.",
    "passing_mention": "Glaciers carve U-shaped valleys as they slide over bedrock.",
    "easy": "Sourdough bread rises because wild yeasts ferment the flour.",
    "medium": "Chess engines search millions of positions per second.",
    "hard": "Tidal power plants turn the rise and fall of the sea into electricity.",
    "1-2": "Owls hunt at night using sharp hearing.",
    "3-4": "Saturn's rings are made mostly of ice particles.",
    "5-6": "Roman aqueducts carried water across valleys on stone arches.",
}


def good(query, positive, attributes):
    """An acceptable negative, distinct for each attribute set of a query (no duplicates)."""
    return " ".join(text for key, text in FILLERS.items() if f" {key} " in f" {attributes} ".replace(":", " "))


def final_rows(path):
    return {r["key"]: r for r in read_jsonl(path)}


def outcome(rows):
    return {k: (r["verdict"], r["reject_reason"], r["text"]) for k, r in rows.items()}


def test_happy_path_rows_summary_and_domain(ds, guard, tmp_path):
    lm = script("gen-happy", good)
    out = tmp_path / "negatives.jsonl"
    summary = generate_negatives(ds, "train", SyNeg(), lm, out, guard=guard, per_query=2, progress=False)
    rows = read_jsonl(out)
    assert len(rows) == 8 and summary.items == 8 and summary.accepted == 8 and summary.run_accepted == 8
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["verdict"] == "accepted" and row["reject_reason"] is None and row["rounds"] == 1
        assert row["text"] and row["query"] == ds.queries[row["qid"]]
        assert row["pos_id"] in ds.qrels["train"][row["qid"]] and row["lm"] == "scripted/gen-happy"
        assert row["attributes"]["domain"] == "biomedical research" and row["attributes"]["strategy"] == "generate"
        assert row["llm_calls"] == 2 and row["tokens"] > 0 and row["latency_s"] > 0
    assert len({r["key"] for r in rows}) == 8
    assert summary.llm_calls == 16 and summary.llm_calls_per_accepted == 2.0 and summary.negatives_per_minute > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == summary.to_dict()
    assert json.loads((tmp_path / "domain.json").read_text())["domain"] == "biomedical research"


def test_another_programs_rows_in_the_same_file_are_not_duplicates_of_this_ones(ds, guard, tmp_path):
    lm = script("gen-two-programs", good)
    out = tmp_path / "negatives.jsonl"
    first = generate_negatives(ds, "train", SyNeg(), lm, out, guard=guard, progress=False)
    other = SyNeg()
    other.critique.signature = other.critique.signature.with_instructions(
        other.critique.signature.instructions + " Be strict.")
    second = generate_negatives(ds, "train", other, lm, out, guard=guard, progress=False)
    assert first.program_hash != second.program_hash and first.accepted == second.accepted == 4
    assert len(read_jsonl(out)) == 8  # the same texts, each accepted under its own program


def test_guard_reasons_are_counted(ds, guard, tmp_path):
    q_copy, q_restate, q_answer, q_dup = (ds.queries[q] for q in ds.qrels["train"])

    def negative(query, positive, attributes):
        if query == q_copy:
            return " ".join(positive.split(". ")[1:3])
        if query == q_restate:
            return query
        return GOOD  # the same text for both items of q_dup: the second is a duplicate

    lm = script("gen-reasons", negative, answers=lambda query: query == q_answer)
    out = tmp_path / "negatives.jsonl"
    summary = generate_negatives(ds, "train", SyNeg(max_rounds=2), lm, out, guard=guard, per_query=2,
                                 domain="biomedical research", progress=False)
    assert summary.accepted == 1
    assert summary.rejected == {"copies_positive": 2, "restates_query": 2, "judge_answers": 2, "duplicate": 1}
    assert summary.failed == {}
    answered = [r for r in read_jsonl(out) if r["query"] == q_answer]
    assert all(r["rounds"] == 2 and r["llm_calls"] == 4 for r in answered)  # generate, critique, revise, critique
    assert summary.llm_calls == 2 * 2 + 2 * 2 + 2 * 4 + 2 * 2
    assert not (tmp_path / "domain.json").exists()  # a given domain is not inferred


def test_llm_failures_become_failed_rows_and_the_run_goes_on(ds, guard, tmp_path):
    q_garbage, q_down = list(ds.qrels["train"])[:2]

    def fn(messages, kwargs):
        f = fields(messages)
        if step(messages) == "critique":
            return critique()
        if f["query"] == ds.queries[q_garbage]:
            return "Sure! Here is a hard negative passage about the topic."
        if f["query"] == ds.queries[q_down]:
            raise RuntimeError("backend down")
        return json.dumps({"reasoning": "r", "negative": good(f["query"], f["positive"], f["attributes"])})

    register_script("gen-fail", fn)
    out = tmp_path / "negatives.jsonl"
    summary = generate_negatives(ds, "train", SyNeg(), make_lm("scripted/gen-fail"), out, guard=guard,
                                 domain="science", progress=False)
    rows = {r["qid"]: r for r in read_jsonl(out)}
    assert rows[q_garbage]["verdict"] == "failed" and rows[q_garbage]["reject_reason"] == "parse_error"
    assert rows[q_down]["verdict"] == "failed" and "backend down" in rows[q_down]["error"]
    assert all(rows[q]["llm_calls"] >= 1 and rows[q]["text"] == "" for q in (q_garbage, q_down))
    assert summary.accepted == 2 and sum(summary.failed.values()) == 2 and summary.failed["parse_error"] == 1


def test_retry_failed_redoes_only_failed_rows(ds, guard, tmp_path):
    q_bad = next(iter(ds.qrels["train"]))
    flaky = {"broken": True}

    def negative(query, positive, attributes):
        if query == ds.queries[q_bad] and flaky["broken"]:
            raise RuntimeError("rate limited")
        return good(query, positive, attributes)

    out = tmp_path / "negatives.jsonl"
    run = dict(guard=guard, per_query=2, domain="science", progress=False)
    first = generate_negatives(ds, "train", SyNeg(), script("gen-retry", negative), out, **run)
    assert sum(first.failed.values()) == 2 and first.accepted == 6
    before = final_rows(out)

    flaky["broken"] = False
    again = generate_negatives(ds, "train", SyNeg(), script("gen-retry", negative), out, **run)
    assert again.run_items == 0 and again.failed == first.failed  # a plain rerun skips failed items too

    retried = generate_negatives(ds, "train", SyNeg(), script("gen-retry", negative), out, retry_failed=True, **run)
    after = final_rows(out)
    assert retried.run_items == 2 and retried.failed == {} and retried.accepted == 8
    redone = {k for k, r in before.items() if r["verdict"] == "failed"}
    assert {k for k in after if after[k] != before[k]} == redone
    assert len(read_jsonl(out)) == 8 + 2  # superseded lines stay; the last line per key wins


def test_resume_after_interrupt_and_torn_line_equals_uninterrupted_run(ds, guard, tmp_path):
    reference = tmp_path / "ref" / "negatives.jsonl"
    run = dict(guard=guard, per_query=2, domain="science", progress=False)
    generate_negatives(ds, "train", SyNeg(), script("gen-ref", good), reference, **run)

    calls = {"n": 0}

    def interrupted(query, positive, attributes):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the 4th item
        return good(query, positive, attributes)

    out = tmp_path / "run" / "negatives.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_negatives(ds, "train", SyNeg(), script("gen-int", interrupted), out, **run)
    assert len(read_jsonl(out)) == 3
    with out.open("a") as f:
        f.write('{"key": "torn line of a killed wri')  # kill -9 mid-write

    resumed = generate_negatives(ds, "train", SyNeg(), script("gen-resume", good), out, **run)
    assert resumed.run_items == 5 and resumed.items == 8
    lines = out.read_text().splitlines()
    assert len(lines) == 8 and len({json.loads(line)["key"] for line in lines}) == 8
    assert outcome(final_rows(out)) == outcome(final_rows(reference))


def test_threads_give_the_same_negatives_and_stop_on_interrupt(ds, guard, tmp_path):
    run = dict(guard=guard, per_query=2, domain="science", progress=False)
    serial = generate_negatives(ds, "train", SyNeg(), script("gen-serial", good), tmp_path / "a.jsonl", **run)

    def interrupted(query, positive, attributes):
        if query == ds.queries[next(iter(ds.qrels["train"]))]:
            raise KeyboardInterrupt
        return good(query, positive, attributes)

    with pytest.raises(KeyboardInterrupt):
        generate_negatives(ds, "train", SyNeg(), script("gen-threads-int", interrupted), tmp_path / "b.jsonl",
                           concurrency=2, **run)
    assert len(read_jsonl(tmp_path / "b.jsonl")) < 8
    threaded = generate_negatives(ds, "train", SyNeg(), script("gen-threads", good), tmp_path / "b.jsonl",
                                  concurrency=4, **run)
    assert outcome(final_rows(tmp_path / "a.jsonl")) == outcome(final_rows(tmp_path / "b.jsonl"))
    assert threaded.items == serial.accepted == 8 and threaded.accepted == 8


def test_cli_generate(sample_path, tmp_path):
    from cli import main

    script("cli-gen", good)
    out = tmp_path / "gen"
    args = ["generate", "--data", str(sample_path), "--out", str(out), "--lm", "scripted/cli-gen", "--limit", "2",
            "--per-query", "2", "--domain", "biomedical research", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output and "neg/min" in result.output
    assert len(read_jsonl(out / "negatives.jsonl")) == 4
    assert json.loads((out / "summary.json").read_text())["items"] == 4

    program = tmp_path / "program.json"
    SyNeg().save(program)
    result = CliRunner().invoke(main, args + ["--program", str(program)])
    assert result.exit_code == 0, result.output  # same prompts, same program hash: nothing left to do
    assert json.loads((out / "summary.json").read_text())["run_items"] == 0

    program.write_text("{not json")
    result = CliRunner().invoke(main, args + ["--program", str(program)])
    assert result.exit_code == 2 and "program.json" in result.output and "Traceback" not in result.output


@pytest.mark.llm
def test_embedded_llm_end_to_end(ds, guard, tmp_path):
    """The real 0.5B model on two queries: every item finishes with a row, whatever the model writes."""
    lm = make_lm("local/qwen2.5-coder-0.5b", max_tokens=192)
    two = Dataset(ds.corpus, ds.queries, {"train": dict(list(ds.qrels["train"].items())[:2])})
    out = tmp_path / "negatives.jsonl"
    summary = generate_negatives(two, "train", SyNeg(max_rounds=1), lm, out, guard=guard, progress=False)
    rows = read_jsonl(out)
    assert len(rows) == summary.items == 2
    for row in rows:
        assert 1 <= row["llm_calls"] <= 2 and row["verdict"] in {"accepted", "rejected", "failed"}
        assert row["verdict"] == "failed" or row["text"]
    print(json.dumps({"summary": summary.to_dict(), "rows": rows}, indent=1))


def test_rewrite_mined_edits_each_pairs_retrieved_negatives(ds, guard, tmp_path):
    pairs = ds.positives("train")
    mined = [d for d in sorted(ds.corpus) if d not in {p for _, p in pairs}][:6]
    sources = {pairs[0]: [ds.doc_text(mined[0]), ds.doc_text(mined[1])], pairs[1]: [ds.doc_text(mined[2])]}

    def negative(query, source, attributes):
        if "strategy:" in attributes:  # a rewrite: replace the source's fourth word
            return source.split()[3], "zebrafish"
        return good(query, source, attributes)

    out = tmp_path / "negatives.jsonl"
    summary = generate_negatives(ds, "train", SyNeg(), script("gen-rewrite", negative), out, guard=guard, per_query=2,
                                 domain="biomedical research", strategies=("rewrite_mined",), sources=sources,
                                 progress=False)
    rows = {(r["qid"], r["key"].split("|")[2]): r for r in read_jsonl(out)}
    q0, q1 = pairs[0][0], pairs[1][0]
    # the index-th retrieved negative (cycling) is the source, edited in place
    assert rows[(q0, "0")]["source"] == ds.doc_text(mined[0]) and rows[(q0, "1")]["source"] == ds.doc_text(mined[1])
    assert rows[(q1, "0")]["source"] == rows[(q1, "1")]["source"] == ds.doc_text(mined[2])
    row = rows[(q0, "0")]
    assert row["verdict"] == "accepted" and "zebrafish" in row["text"]
    assert len(row["text"].split()) >= len(row["source"].split()) - 1  # the whole passage, not an excerpt
    # the second item of q1 makes the same edit of the same source: a duplicate
    assert rows[(q1, "1")]["reject_reason"] == "duplicate"
    # pairs without retrieved negatives fall back to free generation, and say so
    others = [r for k, r in rows.items() if k[0] not in (q0, q1)]
    assert others and all(r["attributes"]["strategy"] == "generate" and r["source"] is None for r in others)
    assert all("|rewrite_mined|" in r["key"] for k, r in rows.items() if k[0] in (q0, q1))
    assert summary.by_strategy["rewrite_mined"] == {"items": 4, "accepted": 3, "llm_calls": 8,
                                                    "llm_calls_per_accepted": 2.67}
    assert summary.by_strategy["generate"]["items"] == 4
    assert set(summary.separability) == {"rewrite_mined", "generate", "all"}
    assert summary.separability["all"]["n"] == summary.accepted and summary.separability["all"]["auc"] is None  # < 10


def test_mined_source_with_no_edit_the_guard_passes_costs_no_llm_call(ds, guard, tmp_path):
    pair = ds.positives("train")[0]
    mined = next(d for d in sorted(ds.corpus) if d != pair[1])
    strict = Guard(guard.encoder, score_margin=-2.0)  # every edit "outscores the positive"
    summary = generate_negatives(ds, "train", SyNeg(), script("gen-no-safe", good), tmp_path / "n.jsonl", guard=strict,
                                 limit=1, domain="biomedical research", strategies=("rewrite_mined",),
                                 sources={pair: [ds.doc_text(mined)]}, progress=False)
    assert summary.rejected == {"no_safe_edit": 1} and summary.llm_calls == 0


def test_edit_that_never_applies_is_rejected_as_bad_edit(ds, guard, tmp_path):
    pair = ds.positives("train")[0]
    lm = script("gen-bad-edit", lambda q, src, attrs: ("no such phrase", "x"))
    out = tmp_path / "negatives.jsonl"
    summary = generate_negatives(ds, "train", SyNeg(max_rounds=2), lm, out, guard=guard, limit=1,
                                 domain="biomedical research", strategies=("rewrite_positive",), progress=False)
    assert summary.rejected == {"bad_edit": 1} and summary.llm_calls == 2  # two edits, no critique
    assert read_jsonl(out)[0]["source"] == ds.doc_text(pair[1])


def test_cli_generate_rewrites_mined_negatives_by_default_when_given_them(ds, sample_path, tmp_path):
    from cli import main

    pair = ds.positives("train")[0]
    mined = next(d for d in sorted(ds.corpus) if d != pair[1])
    write_jsonl(tmp_path / "mine" / "negatives.jsonl",
                [{"qid": pair[0], "pos_id": pair[1], "doc_id": mined, "text": ds.doc_text(mined), "source": "dense"}])
    script("cli-default", lambda q, text, attrs: (text.split()[3], "zebrafish") if "strategy:" in attrs else good(q, text, attrs))
    base = ["generate", "--data", str(sample_path), "--lm", "scripted/cli-default", "--limit", "1",
            "--domain", "biomedical research", "--no-progress", "--demos", "0"]
    for extra, strategy in (([], "generate"), (["--mined", str(tmp_path / "mine")], DEFAULT_STRATEGY)):
        out = tmp_path / strategy
        result = CliRunner().invoke(main, base + ["--out", str(out)] + extra)
        assert result.exit_code == 0 and f"strategy: {strategy};" in result.output, result.output
        assert read_jsonl(out / "negatives.jsonl")[0]["attributes"]["strategy"] == strategy


def test_cli_generate_critique_mined_never_costs_one_call_per_rewrite(ds, sample_path, tmp_path):
    from cli import main

    pair = ds.positives("train")[0]
    mined = next(d for d in sorted(ds.corpus) if d != pair[1])
    write_jsonl(tmp_path / "mine" / "negatives.jsonl",
                [{"qid": pair[0], "pos_id": pair[1], "doc_id": mined, "text": ds.doc_text(mined), "source": "dense"}])
    script("cli-critique", lambda q, text, attrs: (text.split()[3], "zebrafish"))
    base = ["generate", "--data", str(sample_path), "--lm", "scripted/cli-critique", "--limit", "1", "--demos", "0",
            "--domain", "biomedical research", "--no-progress", "--mined", str(tmp_path / "mine")]
    for choice, said, calls in (("auto", "on (auto)", 2), ("never", "off (never)", 1)):
        out = tmp_path / choice
        result = CliRunner().invoke(main, base + ["--out", str(out), "--critique-mined", choice])
        assert result.exit_code == 0 and f"critique of mined edits: {said}" in result.output, result.output
        row = read_jsonl(out / "negatives.jsonl")[0]
        assert row["verdict"] == "accepted" and row["llm_calls"] == calls and (row["critique"] is None) == (calls == 1)


def test_cli_generate_strategy_errors(sample_path, tmp_path):
    from cli import main

    base = ["generate", "--data", str(sample_path), "--out", str(tmp_path / "g"), "--lm", "scripted/none", "--no-progress"]
    for extra, message in ((["--strategy", "rewrite_mined"], "--mined"), (["--strategy", "bogus"], "unknown strategy")):
        result = CliRunner().invoke(main, base + extra)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "g").exists()
