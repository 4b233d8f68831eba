"""The SyNeg program: attribute sampling, the reflection loop, and save/load of its prompts."""

import json
import re

import dspy
import pytest

from programs import Attributes, SyNeg, program_hash, sample_attributes
from programs.syneg import apply_edit
from syneg_dspy.text import phrases
from programs.attributes import DIFFICULTIES, LENGTHS, NEAR_MISSES, STRATEGIES, parse_strategies
from syneg_dspy.lm import make_lm, register_script

FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)


def fields(messages):
    """Input fields DSPy rendered into the last user message."""
    return dict(FIELD.findall(messages[-1]["content"]))


def step(messages):
    """Which predictor sent this prompt, from the output fields its system message asks for."""
    system = messages[0]["content"]
    for name, marker in (("critique", "`answers_query`"), ("revise", "`revised`"), ("domain", "`domain`")):
        if marker in system.split("Your output fields are:")[1].split("All interactions")[0]:
            return name
    return "rewrite" if "`source`" in system.split("Your output fields are:")[0] else "generate"


def scripted(name, fn):
    register_script(name, fn)
    return make_lm(f"scripted/{name}")


def critique(answers=False, on_topic=True, copies=False, issues="none"):
    return json.dumps({"answers_query": answers, "on_topic": on_topic, "copies_positive": copies, "issues": issues})


def run(program, lm, **inputs):
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return program(**inputs)


INPUTS = dict(
    query="Vitamin D supplementation reduces fracture risk in older adults.",
    positive="A trial of 2,000 adults over 70 found vitamin D lowered hip fractures by 20%.",
    attributes=Attributes("hard", "short", "entity_swap", domain="biomedical research"),
)


def test_sample_attributes_deterministic_distinct_and_serialisable():
    a = sample_attributes("q1", 5, seed=3, domain="law")
    assert a == sample_attributes("q1", 5, seed=3, domain="law")
    assert len(set(a)) == 5 and all(x.domain == "law" and x.strategy == "generate" for x in a)
    assert all(x.difficulty in DIFFICULTIES and x.length in LENGTHS and x.near_miss in NEAR_MISSES for x in a)
    # another seed or query asks for other negatives (over 20 queries, some must differ)
    assert any(sample_attributes(f"q{i}", 3, seed=0) != sample_attributes(f"q{i}", 3, seed=1) for i in range(20))
    assert len({tuple(sample_attributes(f"q{i}", 2)) for i in range(20)}) > 1
    assert [Attributes.from_dict(x.to_dict()) for x in a] == a
    assert len(sample_attributes("q1", 50)) == 50  # beyond the grid, combinations repeat


def test_passing_draft_takes_one_critique_and_prompt_carries_attributes():
    prompts = []

    def fn(messages, kwargs):
        prompts.append(messages)
        if step(messages) == "critique":
            return critique()
        return json.dumps({"reasoning": "swaps the vitamin", "negative": ' "Vitamin K2 changes bone density." '})

    pred = run(SyNeg(max_rounds=3), scripted("prog-pass", fn), **INPUTS)
    assert pred.passed and pred.rounds == 1 and len(prompts) == 2
    assert pred.negative == "Vitamin K2 changes bone density."  # quotes a small model adds are stripped
    assert pred.critique == {"answers_query": False, "on_topic": True, "copies_positive": False, "issues": "none"}
    gen = fields(prompts[0])
    assert gen["query"] == INPUTS["query"] and gen["positive"] == INPUTS["positive"]
    assert "entity_swap" in gen["attributes"] and "biomedical research" in gen["attributes"]
    assert "1-2 sentences" in gen["attributes"]
    assert "hard negative" in prompts[0][0]["content"]


def test_failed_critique_is_revised_until_it_passes():
    calls = []

    def fn(messages, kwargs):
        calls.append(step(messages))
        if step(messages) == "critique":
            answered = fields(messages)["negative"].startswith("draft")
            return critique(answers=answered, issues="it states the finding")
        if step(messages) == "revise":
            assert fields(messages)["issues"] == "it states the finding"
            return json.dumps({"revised": "revised: vitamin K2 and bone density."})
        return json.dumps({"reasoning": "r", "negative": "draft: vitamin D lowers fractures."})

    pred = run(SyNeg(max_rounds=3), scripted("prog-revise", fn), **INPUTS)
    assert calls == ["generate", "critique", "revise", "critique"]
    assert pred.passed and pred.rounds == 2 and pred.negative.startswith("revised")
    assert [h["passed"] for h in pred.history] == [False, True]


@pytest.mark.parametrize("failure", [dict(answers=True), dict(on_topic=False), dict(copies=True)])
def test_critique_that_never_passes_stops_at_the_round_limit(failure):
    calls = []

    def fn(messages, kwargs):
        calls.append(step(messages))
        if step(messages) == "critique":
            return critique(**failure)
        if step(messages) == "revise":
            return json.dumps({"revised": f"attempt {len(calls)}"})
        return json.dumps({"reasoning": "r", "negative": "attempt 1"})

    pred = run(SyNeg(max_rounds=3), scripted("prog-never", fn), **INPUTS)
    assert not pred.passed and pred.rounds == 3 and len(pred.history) == 3
    assert calls == ["generate", "critique", "revise", "critique", "revise", "critique"]  # no revise after the last
    assert pred.negative == pred.history[-1]["negative"]


def test_save_load_restores_identical_prompts(tmp_path):
    program = SyNeg()
    base = program_hash(program)
    program.generate.signature = program.generate.signature.with_instructions("Write a tempting wrong passage.")
    program.critique.demos = [
        dspy.Example(query="q", positive="p", negative="n", answers_query=False, on_topic=True,
                     copies_positive=False, issues="none")
    ]
    assert program_hash(program) != base  # a prompt change is a new program
    program.save(tmp_path / "syneg.json")

    loaded = SyNeg()
    assert program_hash(loaded) == base
    loaded.load(tmp_path / "syneg.json")
    assert program_hash(loaded) == program_hash(program)
    adapter = dspy.JSONAdapter()
    for (name, a), (_, b) in zip(program.named_predictors(), loaded.named_predictors()):
        inputs = {k: "x" for k in a.signature.input_fields}
        assert adapter.format(a.signature, a.demos, inputs) == adapter.format(b.signature, b.demos, inputs), name


def test_domain_is_a_short_clean_line():
    lm = scripted("prog-domain", lambda m, k: json.dumps({"domain": '"Biomedical research of plasma cells in humanized mice."\nmore text'}))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert SyNeg().domain(["passage one", "passage two"]) == "Biomedical research of plasma cells"


def test_max_rounds_must_be_positive():
    with pytest.raises(ValueError):
        SyNeg(max_rounds=0)


def test_parse_strategies():
    assert parse_strategies("mixed") == tuple(STRATEGIES)
    assert parse_strategies("rewrite_mined, generate,rewrite_mined") == ("rewrite_mined", "generate")
    for bad in ("", "rewrite", "generate,bogus"):
        with pytest.raises(ValueError, match="strategy"):
            parse_strategies(bad)


def test_strategy_is_sampled_like_any_attribute():
    mixed = [a for i in range(30) for a in sample_attributes(f"q{i}", 2, strategies=tuple(STRATEGIES))]
    assert {a.strategy for a in mixed} == set(STRATEGIES)
    assert all(a.strategy == "rewrite_mined" for a in sample_attributes("q1", 5, strategies=("rewrite_mined",)))
    # one strategy asks for the same attribute sets as before strategies existed
    assert [(a.difficulty, a.length, a.near_miss) for a in sample_attributes("q1", 4, strategies=("rewrite_mined",))] == [
        (a.difficulty, a.length, a.near_miss) for a in sample_attributes("q1", 4)]


REWRITE = dict(INPUTS, attributes=Attributes("hard", "short", "entity_swap", strategy="rewrite_mined"),
               source="A cohort of 900 children found calcium intake unrelated to growth in height. Calcium did not help.")


def edit(find, replace):
    return json.dumps({"find": find, "replace": replace})


def test_rewrite_asks_for_one_replacement_applied_to_the_whole_source():
    prompts = []

    def fn(messages, kwargs):
        prompts.append(messages)
        if step(messages) == "critique":
            return critique()
        assert step(messages) == "rewrite"
        return edit("calcium", "vitamin D")

    pred = run(SyNeg(source_words=5), scripted("prog-rewrite", fn), **REWRITE)
    assert pred.passed and pred.reasoning == "" and pred.rounds == 1 and len(prompts) == 2
    # every occurrence, whatever its case; the rest of the source unchanged
    assert pred.negative == ("A cohort of 900 children found vitamin D intake unrelated to growth in height. "
                             "vitamin D did not help.")
    rewrite, crit = fields(prompts[0]), fields(prompts[1])
    assert rewrite["source"] == "A cohort of 900 children" and "positive" not in rewrite  # the opening only
    assert json.loads(rewrite["phrases"]) == ["cohort", "900 children", "900"]
    assert rewrite["issues"] == "none"
    assert "strategy: rewrite_mined" in rewrite["attributes"] and "sentences" not in rewrite["attributes"]
    assert crit["positive"] == INPUTS["positive"] and crit["negative"] == pred.negative
    with pytest.raises(ValueError, match="source"):
        run(SyNeg(), scripted("prog-rewrite", fn), **dict(REWRITE, source=None))


def test_an_edit_that_cannot_be_applied_is_retried_without_a_critique_call():
    calls, issues = [], []

    def fn(messages, kwargs):
        calls.append(step(messages))
        if step(messages) == "critique":
            return critique()
        issues.append(fields(messages)["issues"])
        return [edit("vitamin C", "zinc"), edit("children", "children"), edit("calcium", "{query}"),
                edit("A cohort", ""), edit('["900  Children", "cohort"]', '["12 mice"]')][len(issues) - 1]

    pred = run(SyNeg(max_rounds=5), scripted("prog-bad-edit", fn), **REWRITE)
    assert calls == ["rewrite"] * 5 + ["critique"]
    assert "not in the source" in issues[1] and "changed nothing" in issues[2] and "placeholder" in issues[3]
    assert "empty" in issues[4]
    assert pred.passed and pred.rounds == 5 and pred.negative.startswith("A cohort of 12 mice found calcium")
    assert pred.edit == {"find": "900  Children", "replace": "12 mice"}  # a list-shaped answer is its first item
    assert pred.edit_issue is None
    # out of rounds with no applicable edit: no negative, and the reason
    never = run(SyNeg(max_rounds=2), scripted("prog-never-edit", lambda m, k: edit("absent", "x")), **REWRITE)
    assert never.negative == "" and not never.passed and "not in the source" in never.edit_issue


def test_a_rewrite_is_not_failed_for_copying_only_a_free_generation_is():
    calls = []

    def fn(messages, kwargs):
        calls.append(step(messages))
        if step(messages) == "critique":
            return critique(copies=True)
        if step(messages) == "generate":
            return json.dumps({"reasoning": "r", "negative": "Vitamin K2 changes bone density in rats."})
        return edit("calcium", "iron")

    positive = Attributes("hard", "short", "entity_swap", strategy="rewrite_positive")
    for inputs in (REWRITE, dict(REWRITE, attributes=positive)):  # the guard measures a rewrite's copying
        calls.clear()
        assert run(SyNeg(), scripted("prog-rw-copy", fn), **inputs).passed and calls == ["rewrite", "critique"]
    assert not run(SyNeg(max_rounds=1), scripted("prog-rw-copy", fn), **INPUTS).passed


def test_mined_edits_go_uncritiqued_when_asked_and_only_those():
    calls = []

    def fn(messages, kwargs):
        calls.append(step(messages))
        return critique(answers=True) if step(messages) == "critique" else edit("calcium", "vitamin D")

    lm = scripted("prog-no-critique", fn)
    pred = run(SyNeg(critique_mined=False), lm, **REWRITE)
    assert calls == ["rewrite"] and pred.passed and pred.critique is None and pred.rounds == 1
    assert "vitamin D intake" in pred.negative and pred.history[0]["checked_by"] == "none"
    # the guard's check still decides: a draft it rejects is edited again, still without a critique
    calls.clear()
    checks = []

    def check(negatives):  # passes every offered edit, then rejects the first draft only
        checks.append(negatives)
        return ["too close" if len(checks) == 2 else None for _ in negatives]

    pred = run(SyNeg(critique_mined=False, max_rounds=2), scripted("prog-no-critique-2", fn), **REWRITE, check=check)
    assert calls == ["rewrite", "rewrite"] and pred.passed and pred.critique is None
    assert [h["checked_by"] for h in pred.history] == ["guard", "guard"]
    # an edit of the positive (which must stop answering) and free writing are critiqued as before
    calls.clear()
    positive = dict(REWRITE, attributes=Attributes("hard", "short", "entity_swap", strategy="rewrite_positive"))
    pred = run(SyNeg(critique_mined=False, max_rounds=1), scripted("prog-no-critique-3", fn), **positive)
    assert not pred.passed and calls == ["rewrite", "critique"]


def test_apply_edit_exact_everywhere_then_the_closest_span():
    src = "Mesh surgeries are counted among frequent surgical procedures. Meshes and mesh repair differ."
    assert apply_edit(src, "MESH", "net") == (
        "net surgeries are counted among frequent surgical procedures. Meshes and net repair differ.")  # whole words
    # a phrase quoted with a word changed still finds its span; the span's full stop stays
    assert apply_edit(src, "mesh implants are counted among frequent surgical procedures", "Stents fail") == (
        "Stents fail. Meshes and mesh repair differ.")
    assert apply_edit(src, "vitamin D lowers fracture risk", "x") is None


def test_phrases_are_topic_runs_and_entities_in_order():
    text = "Folate and vitamin B6 from diet in relation to coronary heart disease. However, HIV-1 load was low."
    assert phrases(text, 20) == ["Folate", "vitamin B6", "B6", "diet", "relation", "coronary heart disease",
                                 "HIV-1 load", "HIV-1"]  # "low": too short to be worth replacing
    assert phrases(text, 3) == ["Folate", "vitamin B6", "B6"]


def test_a_draft_the_check_rejects_is_revised_with_its_advice_and_no_critique_call():
    calls, seen = [], []

    def fn(messages, kwargs):
        calls.append(step(messages))
        if step(messages) == "critique":
            return critique()
        if step(messages) == "revise":
            seen.append(fields(messages)["issues"])
            return json.dumps({"revised": "Vitamin K2 changes bone density in rats."})
        return json.dumps({"reasoning": "r", "negative": "A copy of the positive."})

    def check(negatives):
        return ["it copies the positive" if "copy" in n else None for n in negatives]

    pred = run(SyNeg(max_rounds=3), scripted("prog-check", fn), **INPUTS, check=check)
    assert calls == ["generate", "revise", "critique"] and seen == ["it copies the positive"]
    assert pred.passed and pred.rounds == 2
    assert [h["checked_by"] for h in pred.history] == ["guard", "critique"]
    # a check that never passes ends at the round limit without any critique call
    calls.clear()
    never = run(SyNeg(max_rounds=2), scripted("prog-check", fn), **INPUTS, check=lambda ns: ["too short"] * len(ns))
    assert calls == ["generate", "revise"] and not never.passed and never.critique["issues"] == "too short"


def test_rewrite_choices_reach_the_grammar_not_the_prompt():
    formats, prompts = [], []

    def fn(messages, kwargs):
        if step(messages) == "critique":
            return critique()
        formats.append(kwargs["response_format"])
        prompts.append(messages[0]["content"])
        return edit("900 children", "older adults")

    pred = run(SyNeg(source_words=5), scripted("prog-choices", fn), **REWRITE)
    assert pred.passed and pred.negative.startswith("A cohort of older adults found calcium")
    schema = formats[0]["json_schema"]["schema"]["properties"]
    assert schema["find"]["enum"] == ["cohort", "900 children", "900"]  # the offered phrases
    # rewrite_mined puts a key phrase of the query in: the choices are the query's phrases
    assert schema["replace"]["enum"] == phrases(INPUTS["query"], 12) == [
        "Vitamin D supplementation", "reduces fracture risk", "older adults"]
    positive = dict(REWRITE, attributes=Attributes("hard", "short", "entity_swap", strategy="rewrite_positive"))
    run(SyNeg(source_words=5), scripted("prog-choices", fn), **positive)
    assert "enum" in formats[1]["json_schema"]["schema"]["properties"]["find"]
    assert "enum" not in formats[1]["json_schema"]["schema"]["properties"]["replace"]  # any other entity
    assert prompts[0] == prompts[1] and "900 children" not in prompts[0]  # one system message for every item


def test_a_mined_rewrite_is_offered_only_edits_the_check_passes():
    formats, prompts, checked = [], [], []

    def fn(messages, kwargs):
        if step(messages) == "critique":
            return critique()
        formats.append(kwargs["response_format"]["json_schema"]["schema"]["properties"])
        prompts.append(fields(messages))
        return edit("900 children", "older adults")

    def check(negatives):  # an edit that puts "fracture" in outscores the positive, say
        checked.append(list(negatives))
        return ["too close" if "fracture" in n else None for n in negatives]

    pred = run(SyNeg(source_words=5), scripted("prog-safe", fn), **REWRITE, check=check)
    assert pred.passed and pred.negative.startswith("A cohort of older adults found calcium")
    assert len(checked[0]) == 3 * 3  # every offered phrase x every query phrase, in one call
    assert formats[0]["replace"]["enum"] == ["Vitamin D supplementation", "older adults"]
    assert formats[0]["find"]["enum"] == json.loads(prompts[0]["phrases"]) == ["cohort", "900 children", "900"]
    # no edit passes: the item ends before any LM call
    calls = []
    none = run(SyNeg(source_words=5), scripted("prog-safe", lambda m, k: calls.append(m) or edit("x", "y")), **REWRITE,
               check=lambda ns: ["too close"] * len(ns))
    assert not calls and not none.passed and none.rounds == 0 and none.negative == ""
    assert none.edit_issue == "no edit of the source passes the guard"


def test_a_mined_rewrite_stops_checking_edits_once_enough_pass():
    from programs.syneg import OFFER, SAFE_EDITS

    source = ("Calcium intake, bone density, growth velocity, serum phosphate, dietary fibre, renal clearance, "
              "muscle strength, sleep duration, school performance, iron status, blood pressure and thyroid "
              "hormone levels were recorded in 900 children.")
    query = "Vitamin D supplementation, hip fracture, older adults, falls, mortality: a meta-analysis."
    checked = []

    def check(negatives, unsafe=lambda n: False):
        checked.extend(negatives)
        return ["too close" if unsafe(n) else None for n in negatives]

    program = SyNeg()
    every = program._choices(query, source, "rewrite_mined", None)
    assert len(every["find"]) * len(every["replace"]) > 4 * SAFE_EDITS  # enough edits for the cap to matter
    choices = program._choices(query, source, "rewrite_mined", check)
    assert len(checked) == 2 * SAFE_EDITS and sum(map(len, choices["pairs"].values())) == OFFER
    spanned = {f for f in every["find"] for text in checked if f not in text}
    assert len(spanned) > 2 * SAFE_EDITS // len(every["replace"])  # the first batch spans the passage
    # when few pass, every edit is checked before the item is given up
    checked.clear()
    few = program._choices(query, source, "rewrite_mined", lambda ns: check(ns, unsafe=lambda n: "mortality" not in n))
    assert len(checked) == len(every["find"]) * len(every["replace"]) and set(few["replace"]) == {"mortality"}


def test_a_mined_rewrite_is_offered_its_hardest_safe_edits_hardest_first():
    from programs.syneg import OFFER

    source = "Calcium intake, bone density, serum phosphate and renal clearance were recorded in 900 children."
    query = "Vitamin D supplementation, hip fracture, older adults: a meta-analysis."
    program = SyNeg()
    every = program._choices(query, source, "rewrite_mined", None)
    edits = [(f, r) for r in every["replace"] for f in every["find"]]  # in checking order
    assert len(edits) > 2 * OFFER
    hard = {apply_edit(source, f, r): i for i, (f, r) in enumerate(edits)}  # the last checked is the hardest

    class Check:  # like the guard's Feedback: advice per draft, and hardness
        def __call__(self, negatives):
            return [None] * len(negatives)

        def hardness(self, negatives):
            return [hard[n] for n in negatives]

    choices = program._choices(query, source, "rewrite_mined", Check())
    offered = {(f, r) for f in choices["find"] for r in choices["pairs"][f]}
    assert offered == set(edits[-OFFER:])
    assert (choices["find"][0], choices["replace"][0]) == edits[-1]  # hardest first


def test_embedded_models_get_each_phrase_tied_to_its_safe_replacements():
    from types import SimpleNamespace

    import jsonschema
    from llama_cpp import LlamaGrammar

    from programs.choice_adapter import ChoiceJSONAdapter
    from programs.signatures import RewriteNegative
    from syneg_dspy.lm.local import grammar_format

    def check(negatives):  # safe: "cohort" replaced by anything but "older adults", or kept and "older adults" put in
        return [None if ("cohort" in n) == ("older adults" in n) else "too close" for n in negatives]

    choices = SyNeg(source_words=5)._choices(INPUTS["query"], REWRITE["source"], "rewrite_mined", check)
    assert choices["pairs"] == {"cohort": ["Vitamin D supplementation", "reduces fracture risk"],
                                "900 children": ["older adults"], "900": ["older adults"]}
    adapter = ChoiceJSONAdapter({"find": choices["find"], "replace": choices["replace"]},
                                pairs=("find", "replace", choices["pairs"]))

    def schema(model):
        lm = SimpleNamespace(model=model, supported_params=["response_format"], supports_response_schema=True)
        kwargs = {}
        adapter._prepare_response_format(lm, kwargs, RewriteNegative)
        return kwargs["response_format"]["json_schema"]["schema"]

    local, remote = schema("local/qwen2.5-coder-0.5b"), schema("openai/gpt-4o-mini")
    unsafe = {"find": "cohort", "replace": "older adults"}  # each value is offered, the pair is not safe
    for ok in ({"find": "cohort", "replace": "reduces fracture risk"}, {"find": "900", "replace": "older adults"}):
        jsonschema.validate(ok, local)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(unsafe, local)
    jsonschema.validate(unsafe, remote)  # strict OpenAI-style schemas cannot tie fields: per-field enums only
    assert "anyOf" not in remote and remote["properties"]["find"]["enum"] == ["cohort", "900 children", "900"]
    LlamaGrammar.from_json_schema(json.dumps(grammar_format({"type": "json_object", "schema": local})["schema"]))
