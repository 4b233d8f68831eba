"""Retrieved negatives as generator demos, and the positive excerpt the generator sees."""

import json

from optimizers.mined_demos import mined_examples, with_mined_demos
from programs import SyNeg, program_hash
from syneg_dspy.data import load_dataset
from syneg_dspy.generate import Guard, generate_negatives
from syneg_dspy.generate.runner import POSITIVE_WORDS
from syneg_dspy.lm import make_lm, register_script
from tests.test_program import critique, step
from syneg_dspy.retrieval import load_encoder


def retrieved_rows(ds, n=3):
    rows = []
    for qid, pos_id in ds.positives("train")[:n]:
        other = next(d for d in ds.corpus if d not in ds.qrels["train"][qid])
        rows.append({"qid": qid, "pos_id": pos_id, "doc_id": other, "text": ds.doc_text(other), "source": "dense"})
    return rows


def test_demos_go_to_the_generator_only_and_change_the_hash(sample_path):
    ds = load_dataset(sample_path)
    rows = retrieved_rows(ds)
    program = with_mined_demos(SyNeg(), ds, rows, k=2, seed=0)
    assert len(program.generate.demos) == 2
    assert program.critique.demos == [] and program.revise.demos == []
    assert program_hash(program) != program_hash(SyNeg())
    demo = program.generate.demos[0]
    assert demo.negative in {" ".join(r["text"].split()[:POSITIVE_WORDS]) for r in rows}
    assert len(demo.positive.split()) <= POSITIVE_WORDS
    # A program that already has demos (a compiled one) keeps them; k=0 or no rows changes nothing.
    assert with_mined_demos(program, ds, retrieved_rows(ds, 1), k=1).generate.demos == program.generate.demos
    assert with_mined_demos(SyNeg(), ds, [], k=2).generate.demos == []
    # Seeded: the same demos for the same seed.
    assert [d.toDict() for d in with_mined_demos(SyNeg(), ds, rows, k=2, seed=0).generate.demos] == [
        d.toDict() for d in program.generate.demos
    ]


def test_generator_sees_demos_and_only_the_positive_opening(sample_path, tmp_path, tiny_encoder_path):
    ds = load_dataset(sample_path)
    rows = retrieved_rows(ds)
    seen = []

    def fn(messages, kwargs):
        kind = step(messages)
        if kind == "critique":
            return critique()
        seen.append("\n".join(m["content"] for m in messages))
        return json.dumps({"reasoning": "r", "negative": "Coral reefs bleach when sea temperatures stay high for weeks."})

    register_script("mined-demos", fn)
    program = with_mined_demos(SyNeg(max_rounds=1), ds, rows, k=2)
    generate_negatives(ds, "train", program, make_lm("scripted/mined-demos"), tmp_path / "negatives.jsonl",
                       guard=Guard(load_encoder(tiny_encoder_path), max_positive_cosine=1.01, score_margin=1.0), limit=1, domain="biomedical research",
                       progress=False)
    prompt = seen[0]
    for demo in program.generate.demos:
        assert demo.negative in prompt
    qid, pos_id = ds.positives("train")[0]
    words = ds.doc_text(pos_id).split()
    assert " ".join(words[:POSITIVE_WORDS]) in prompt
    assert " ".join(words[POSITIVE_WORDS:POSITIVE_WORDS + 12]) not in prompt


def test_examples_one_per_pair(sample_path):
    ds = load_dataset(sample_path)
    rows = retrieved_rows(ds) * 2  # the same pair twice gives one example
    assert len(mined_examples(ds, rows)) == 3
