"""Compiling SyNeg programs: the set-level selection, the end-to-end compile with a scripted LLM, and
saved programs (sidecar, shipped defaults, a fresh process reproducing prompts and outputs)."""

import json
import logging
import re
import subprocess
import sys

import dspy
import pytest
from click.testing import CliRunner

from cli import main
from optimizers.compile import BUDGETS
from optimizers.gain_select import GainSelect, paired_z
from programs import SyNeg, load_program, program_hash
from programs.saved import read_meta, resolve_program, save_program, shipped_program
from syneg_dspy.errors import InputError
from syneg_dspy.lm import make_lm, register_script
from syneg_dspy.store import read_jsonl
from tests.test_program import INPUTS, critique, fields, step

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def with_demo(program: SyNeg, text: str) -> SyNeg:
    program = program.deepcopy()
    program.generate.demos = [dspy.Example(query="q", positive="p", attributes="a", reasoning="r", negative=text)]
    return program


class FixedProposer(dspy.teleprompt.Teleprompter):
    """Stands in for a DSPy optimizer: returns its best program with ``candidate_programs`` as DSPy's do."""

    def __init__(self, candidates):
        self.candidates = candidates

    def compile(self, student, *, trainset, valset=None, **kwargs):
        best = max(self.candidates, key=lambda c: c["score"])["program"].deepcopy()
        best.candidate_programs = self.candidates
        return best


def test_gain_select_keeps_the_highest_gain_not_the_highest_proxy():
    student = SyNeg()
    a, b, c = (with_demo(student, t) for t in ("alpha", "beta", "gamma"))
    gains = {program_hash(student): 0.0, program_hash(a): -0.01, program_hash(b): 0.02, program_hash(c): 0.5}
    scored = []

    def gain(program):
        scored.append(program_hash(program))
        return {"gain": gains[program_hash(program)], "per_query": spread(gains[program_hash(program)])}

    proposer = FixedProposer([{"program": a, "score": 0.9}, {"program": b, "score": 0.5}, {"program": c, "score": 0.1}])
    best = GainSelect(proposer, gain, keep=2).compile(student, trainset=[], valset=[])
    # c has the best gain but the worst proxy: only the proxy's top 2 (and the student) are scored
    assert scored == [program_hash(student), program_hash(a), program_hash(b)]
    assert program_hash(best) == program_hash(b)
    assert [r["candidate"] for r in best.compile_report] == ["student", "proposed #1", "proposed #2"]
    assert [r["proxy"] for r in best.compile_report] == [None, 0.9, 0.5]


def spread(gain: float, queries: int = 20) -> dict[str, float]:
    """Per-query gains with mean ``gain`` that every query shares (a consistent gain)."""
    return {f"q{i}": gain + (0.001 if i % 2 else -0.001) for i in range(queries)}


def test_gain_select_keeps_the_student_on_a_tie():
    student = SyNeg()
    proposer = FixedProposer([{"program": with_demo(student, "alpha"), "score": 1.0}])
    best = GainSelect(proposer, lambda p: {"gain": 0.0, "per_query": spread(0.0)}).compile(student, trainset=[],
                                                                                         valset=[])
    assert program_hash(best) == program_hash(student)


def test_gain_select_does_not_keep_a_gain_carried_by_one_query():
    student = SyNeg()
    lucky = with_demo(student, "alpha")
    one_query = {f"q{i}": 1.0 if i == 0 else 0.0 for i in range(20)}  # +0.05 on average, all of it one query

    def gain(program):
        per_query = one_query if program_hash(program) == program_hash(lucky) else dict.fromkeys(one_query, 0.0)
        return {"gain": sum(per_query.values()) / len(per_query), "per_query": per_query}

    best = GainSelect(FixedProposer([{"program": lucky, "score": 1.0}]), gain).compile(student, trainset=[], valset=[])
    assert program_hash(best) == program_hash(student)
    report = {r["candidate"]: r for r in best.compile_report}
    assert report["proposed #1"]["gain"] == pytest.approx(0.05)
    assert report["proposed #1"]["z_vs_student"] == pytest.approx(1.0)
    assert "per_query" not in report["proposed #1"]  # a hundred floats per candidate stay out of the sidecar
    # the same gain spread over the queries is evidence
    def spread_gain(program):
        g = 0.0 if program is student else 0.05
        return {"gain": g, "per_query": spread(g)}

    best = GainSelect(FixedProposer([{"program": lucky, "score": 1.0}]), spread_gain).compile(student, trainset=[],
                                                                                            valset=[])
    assert program_hash(best) == program_hash(lucky)


def test_paired_z():
    assert paired_z({"a": 0.1, "b": 0.1}, {"a": 0.1, "b": 0.1}) == 0.0
    assert paired_z({"a": 0.3, "b": 0.1, "c": 0.2}, {"a": 0.1, "b": 0.1, "c": 0.1}) == pytest.approx(0.1 / (0.1 / 3 ** 0.5))
    assert paired_z({"a": 0.0, "b": 0.0, "c": 0.0}, {"a": 0.2, "b": 0.1, "c": 0.0}) < 0


# ---- end to end with a scripted LLM ------------------------------------------------------------

NEGATIVES = [
    "Zebrafish fin regeneration depends on Wnt signalling in the blastema, while retinoic acid patterns the rays.",
    "Coral reefs bleach when sea temperatures stay high for several weeks during strong El Nino years.",
    "Medieval guilds regulated the training of apprentices in European towns for several centuries.",
    "Volcanic soils hold water well and suit coffee plantations on the slopes of tropical mountains.",
]


def compile_script(name: str) -> dspy.LM:
    """A deterministic LLM: a negative (or, for a rewrite, the offered phrase and replacement) chosen by
    the query's hash, always passing its own critique."""

    def fn(messages, kwargs):
        f, kind = fields(messages), step(messages)
        pick = sum(map(ord, f.get("query", ""))) + len(messages)
        if kind == "domain":
            return json.dumps({"domain": "biomedical research"})
        if kind == "rewrite":
            enums = kwargs["response_format"]["json_schema"]["schema"]["properties"]
            return json.dumps({k: enums[k]["enum"][pick % len(enums[k]["enum"])] for k in ("find", "replace")})
        if kind == "critique":
            return critique()
        if kind == "revise":
            return json.dumps({"revised": f["negative"]})
        negative = NEGATIVES[sum(map(ord, f["query"])) % len(NEGATIVES)]
        return json.dumps({"reasoning": "near miss", "negative": f"{negative} ({len(messages)} messages)"})

    register_script(name, fn)
    return make_lm(f"scripted/{name}")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, sample_path, lexical_encoder_path):
    """One `syneg compile` of the bundled sample with the scripted LLM (light budget) and the lexical tiny
    encoder (the guard encodes every edit a rewrite could offer: with MiniLM that is most of a compile's time)."""
    compile_script("compile-e2e")
    out = tmp_path_factory.mktemp("compile") / "sample-scripted.json"
    result = CliRunner().invoke(main, ["compile", "--data", str(sample_path), "--out", str(out), "--lm",
                                       "scripted/compile-e2e", "--dev-queries", "10", "--work", str(out.parent / "work"),
                                       "--encoder", str(lexical_encoder_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_compile_saves_program_and_sidecar(compiled):
    out, output = compiled
    meta = read_meta(out)
    assert meta["lm"] == "scripted/compile-e2e" and meta["optimizer"] == "bootstrap" and meta["budget"] == "light"
    assert meta["dev_split"] == {"queries": 10, "carved_from": "train", "seed": 0}
    assert meta["dataset"]["corpus"] and meta["versions"]["dspy"] == dspy.__version__ and meta["date"]
    candidates = meta["candidates"]
    assert candidates[0]["candidate"] == "student" and len(candidates) >= 2
    # the kept program is the best-gain candidate among those 2 standard errors above the student (else the
    # student), and before/after are the student's and its rows
    evidence = [c for c in candidates if c["z_vs_student"] >= 2.0]
    assert meta["metric"]["after"] == (max(evidence, key=lambda c: c["gain"]) if evidence else candidates[0])
    assert meta["metric"]["before"] == candidates[0]
    assert meta["program_hash"] == program_hash(load_program(out)) == meta["metric"]["after"]["program_hash"]
    scoring = BUDGETS["light"].val_items
    for c in candidates:  # every candidate wrote negatives for the same scoring pairs, and some were accepted
        assert c["items"] == scoring and 0 <= c["accepted"] <= scoring and c["retrieved_ndcg"] > 0
    assert candidates[0]["accepted"] > 0 and candidates[0]["z_vs_student"] == 0.0
    for c in candidates:  # each scored candidate is kept for later comparison, kept or not
        saved = ROOT.joinpath(meta["work"], "candidates", c["program_hash"])
        assert program_hash(load_program(saved / "program.json")) == c["program_hash"]
        assert len(read_jsonl(saved / "negatives.jsonl")) == scoring
    assert f"{meta['metric']['before']['gain']:+.4f}" in output
    # --no-progress silences the bars DSPy's Evaluate draws too (its log line stays: it ends in "%)", a bar in "%):")
    assert "Average Metric" in output and not re.search(r"Average Metric: [\d.]+ / \d+ \([\d.]+%\):", output)
    assert "api_key" not in out.read_text() + out.with_name(out.stem + ".meta.json").read_text()


def test_compile_candidates_differ_by_their_demos(compiled):
    out, _ = compiled
    demos = [c["demos"] for c in read_meta(out)["candidates"]]
    assert demos[0]["generate"] == 2 and demos[0]["rewrite"] == 0  # the student: two mined negatives as examples
    assert any(d["rewrite"] > 0 for d in demos[1:])  # bootstrapped candidates carry the LM's own accepted edits


def test_generate_loads_the_compiled_program(compiled, sample_path, tmp_path):
    out, _ = compiled
    gen = tmp_path / "gen"
    result = CliRunner().invoke(main, ["generate", "--data", str(sample_path), "--out", str(gen), "--lm",
                                       "scripted/compile-e2e", "--program", str(out), "--limit", "2", "--no-progress",
                                       "--domain", "biomedical research"])
    assert result.exit_code == 0, result.output
    assert f"program: {out}" in result.output
    assert {r["program_hash"] for r in read_jsonl(gen / "negatives.jsonl")} == {read_meta(out)["program_hash"]}


FRESH = """
import json, sys
sys.path.insert(0, {root!r})
import syneg_dspy, dspy
from programs import Attributes, load_program
from syneg_dspy.lm import make_lm
from tests.test_compile import compile_script
from tests.test_program import INPUTS
compile_script("fresh")
prompts = []
program = load_program(sys.argv[1])
with dspy.context(lm=make_lm("scripted/fresh", cache=False), adapter=dspy.JSONAdapter()):
    pred = program(**INPUTS)
    history = dspy.settings.lm.history
print(json.dumps({{"negative": pred.negative, "rounds": pred.rounds,
                  "prompts": [h["messages"] for h in history]}}))
"""


def test_saved_program_reproduces_prompts_and_outputs_in_a_fresh_process(compiled, tmp_path):
    out, _ = compiled
    program = load_program(out)
    compile_script("fresh")
    lm = make_lm("scripted/fresh", cache=False)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        pred = program(**INPUTS)
    here = {"negative": pred.negative, "rounds": pred.rounds, "prompts": [h["messages"] for h in lm.history]}
    proc = subprocess.run([sys.executable, "-c", FRESH.format(root=str(ROOT)), str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    assert there == json.loads(json.dumps(here))
    demos = len(program.generate.demos)
    assert demos and f"({2 + 2 * demos} messages)" in there["negative"]  # the demos reached the prompt


# ---- shipped programs and --program ------------------------------------------------------------


def test_shipped_program_is_the_default_only_for_its_lm_and_strategy(tmp_path):
    program = with_demo(SyNeg(), "alpha")
    save_program(program, tmp_path / "old.json", {"lm": "local/x", "strategy": "generate", "date": "2000-01-01"})
    path, _ = save_program(program, tmp_path / "new.json", {"lm": "local/x", "strategy": "generate"})
    rewrite, _ = save_program(program, tmp_path / "rewrite.json", {"lm": "local/x", "strategy": "rewrite_mined"})
    save_program(program, tmp_path / "other.json", {"lm": "openai/gpt-4o-mini", "strategy": "generate"})
    assert shipped_program("local/x", folder=tmp_path) == path  # newest by the sidecar's date
    assert shipped_program("local/x", "rewrite_mined", tmp_path) == rewrite
    assert shipped_program("local/x", "mixed", tmp_path) is None
    assert shipped_program("local/y", folder=tmp_path) is None
    assert resolve_program("uncompiled", "local/x") is None
    assert resolve_program(path, "local/y") == path
    with pytest.raises(InputError, match="no such program file"):
        resolve_program(tmp_path / "missing.json", "local/x")


def test_a_bad_out_path_fails_before_any_llm_call(tmp_path, sample_path):
    calls = []
    register_script("compile-bad-out", lambda messages, kwargs: calls.append(1) or "{}")
    result = CliRunner().invoke(main, ["compile", "--data", str(sample_path), "--out", str(tmp_path / "p.txt"),
                                       "--lm", "scripted/compile-bad-out"])
    assert result.exit_code == 2 and "NAME.json" in result.output and calls == []


def test_a_broken_program_file_is_one_line(tmp_path, sample_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(main, ["generate", "--data", str(sample_path), "--out", str(tmp_path / "g"),
                                       "--lm", "scripted/compile-e2e", "--program", str(bad), "--limit", "1"])
    assert result.exit_code == 2 and "bad.json" in result.output and "Traceback" not in result.output


# ---- a new domain: pairs without qrels -------------------------------------------------------------


def test_compile_from_a_pair_file_carves_dev_from_the_pairs(tmp_path, ds, lexical_encoder_path):
    pairs = tmp_path / "pairs.jsonl"
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"query": ds.queries[q], "positive": ds.doc_text(d)} for q, d in ds.positives("train")]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus.write_text("".join(json.dumps({"text": ds.doc_text(d)}) + "\n" for d in list(ds.corpus)[:200]))
    compile_script("compile-pairs")
    out = tmp_path / "mine.json"
    result = CliRunner().invoke(main, ["compile", "--pairs", str(pairs), "--corpus", str(corpus), "--out", str(out),
                                       "--lm", "scripted/compile-pairs", "--dev-queries", "10", "--no-progress",
                                       "--work", str(tmp_path / "work"), "--domain", "biomedical research",
                                       "--encoder", str(lexical_encoder_path)])
    assert result.exit_code == 0, result.output
    meta = read_meta(out)
    assert meta["dev_split"]["queries"] == 10 and meta["dataset"]["train_pairs"] < len(rows)
    assert load_program(out)  # loads


# ---- MIPROv2 as the proposer, with its own prompt LM -------------------------------------------------

OUTPUT_FIELD = re.compile(r"\d+\. `(\w+)` \((\w+)")


def compile_mipro(sample_path, out, task_script, prompt_script, encoder_path):
    """``syneg compile --optimizer mipro`` on the sample, both LMs scripted, work beside ``out``."""
    return CliRunner().invoke(main, ["compile", "--data", str(sample_path), "--out", str(out), "--lm",
                                     f"scripted/{task_script}", "--prompt-lm", f"scripted/{prompt_script}",
                                     "--optimizer", "mipro", "--dev-queries", "10", "--work", str(out.parent / "work"),
                                     "--domain", "biomedical research", "--encoder", str(encoder_path),
                                     "--no-progress"])


def test_compile_with_mipro_uses_the_prompt_lm_to_propose_instructions(sample_path, tmp_path, lexical_encoder_path):
    compile_script("mipro-task")
    proposals = []

    def prompt_fn(messages, kwargs):
        """MIPROv2's proposer signatures: every output field gets a plausible value."""
        outputs = messages[0]["content"].split("Your output fields are:")[1].split("All interactions")[0]
        names = OUTPUT_FIELD.findall(outputs)
        proposals.append([n for n, _ in names])
        return json.dumps({n: True if t == "bool" else f"Write a near-miss passage ({len(proposals)})." for n, t in names})

    register_script("mipro-prompt", prompt_fn)
    out = tmp_path / "mipro.json"
    result = compile_mipro(sample_path, out, "mipro-task", "mipro-prompt", lexical_encoder_path)
    assert result.exit_code == 0, result.output
    meta = read_meta(out)
    assert meta["optimizer"] == "mipro" and meta["prompt_lm"] == "scripted/mipro-prompt"
    assert any("proposed_instruction" in names for names in proposals)  # instructions came from the prompt LM
    instructions = {c["program_hash"] for c in meta["candidates"]}
    assert len(instructions) >= 2


def test_a_prompt_lm_that_fails_mid_compile_is_one_line_and_exit_1(sample_path, tmp_path, lexical_encoder_path):
    """An instruction proposal that fails (here as llama.cpp refuses a prompt longer than its context)
    ends the compile with one line naming the failure, not DSPy's traceback."""
    compile_script("mipro-task-2")

    def too_long(messages, kwargs):
        raise ValueError("Requested tokens (4572) exceed context window of 4096")

    register_script("mipro-too-long", too_long)
    out = tmp_path / "mipro.json"
    result = compile_mipro(sample_path, out, "mipro-task-2", "mipro-too-long", lexical_encoder_path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: LM call failed:") and "exceed context window of 4096" in last
    assert not out.exists()


# ---- GEPA as the proposer, reflecting on the guard's feedback ------------------------------------------

def test_compile_with_gepa_reflects_on_the_guards_feedback(sample_path, tmp_path, lexical_encoder_path, caplog):
    """The uncompiled rewrite instruction gets no-op edits (rejected); the prompt LM, shown why, writes
    an instruction under which the edits are real: GEPA proposes it and the retriever gain scores it."""
    reflected = "Replace one listed phrase of the source with one listed query phrase (reflected)."

    def task(messages, kwargs):
        if step(messages) == "domain":
            return json.dumps({"domain": "biomedical research"})
        if step(messages) == "critique":
            return critique()
        if step(messages) != "rewrite":
            return json.dumps({"reasoning": "near miss", "negative": NEGATIVES[len(messages) % len(NEGATIVES)]})
        enums = kwargs["response_format"]["json_schema"]["schema"]["properties"]
        find, replace = enums["find"]["enum"], enums["replace"]["enum"]
        if reflected not in messages[0]["content"]:
            return json.dumps({"find": find[0], "replace": find[0]})  # changes nothing: an edit issue
        pick = sum(map(ord, fields(messages).get("query", "")))
        return json.dumps({"find": find[pick % len(find)], "replace": replace[pick % len(replace)]})

    prompts = []

    def reflect(messages, kwargs):
        """DSPy's GEPA asks through the adapter in use (JSON) for a ``new_instruction``."""
        prompts.append(messages[-1]["content"])
        return json.dumps({"new_instruction": reflected})

    register_script("gepa-task", task)
    register_script("gepa-reflect", reflect)
    out = tmp_path / "gepa.json"
    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(main, ["compile", "--data", str(sample_path), "--out", str(out), "--lm",
                                           "scripted/gepa-task", "--prompt-lm", "scripted/gepa-reflect",
                                           "--optimizer", "gepa", "--dev-queries", "10", "--work",
                                           str(tmp_path / "work"), "--domain", "biomedical research", "--encoder",
                                           str(lexical_encoder_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    # --no-progress keeps GEPA's per-iteration log out
    assert not [r for r in caplog.records if r.name.startswith("dspy.teleprompt.gepa") and r.levelno < logging.WARNING]
    assert prompts and "the edit changed nothing" in prompts[0]  # the guard's feedback reached the reflection LM
    meta = read_meta(out)
    assert meta["optimizer"] == "gepa"
    student, *proposed = meta["candidates"]
    assert student["accepted"] == 0 and proposed and proposed[0]["accepted"] > 0
    assert reflected in json.dumps(json.loads((tmp_path / "work" / "candidates" / proposed[0]["program_hash"]
                                               / "program.json").read_text()))


def test_no_progress_silences_gepas_bar_and_restores_it():
    import gepa.core.engine as engine
    import tqdm

    from optimizers.compile import progress_bars

    bar, shown = engine.tqdm, tqdm.tqdm
    with progress_bars(False):
        assert engine.tqdm(range(3)).disable and tqdm.tqdm(range(3)).disable
    assert engine.tqdm is bar and tqdm.tqdm is shown
