"""Loaders: BEIR folders and pair files load with string ids, and every bad input names its file and line."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syneg_dspy.data import SAMPLE_PATH, carve_dev, load_beir, load_dataset, load_pairs, stats
from syneg_dspy.errors import InputError

CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin lowers fever in adults.", "metadata": {}},
    {"_id": 2, "title": "", "text": "Ibuprofen is an anti-inflammatory drug."},
    {"_id": "d3", "title": "Vitamin C", "text": "Vitamin C does not prevent colds."},
    {"_id": "d4", "title": "Sleep", "text": "Adults need seven hours of sleep."},
]
QUERIES = [{"_id": "q1", "text": "does aspirin reduce fever"}, {"_id": 7, "text": "vitamin c and colds"}, {"_id": "q3", "text": "how much sleep"}]
QRELS = {
    "train": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t0\n7\td3\t1\n",
    "test": "query-id\tcorpus-id\tscore\nq3\td4\t2\n",
}


def jsonl(rows: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(jsonl(CORPUS))
    (root / "queries.jsonl").write_text(jsonl(QUERIES))
    for split, text in QRELS.items():
        (root / "qrels" / f"{split}.tsv").write_text(text)
    return root


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny")


def test_beir_loads_with_string_ids(beir: Path) -> None:
    ds = load_beir(beir)
    assert set(ds.corpus) == {"d1", "2", "d3", "d4"}
    assert set(ds.queries) == {"q1", "7", "q3"}
    assert ds.qrels == {"train": {"q1": {"d1": 1, "2": 0}, "7": {"d3": 1}}, "test": {"q3": {"d4": 2}}}
    assert ds.corpus["2"] == {"title": "", "text": "Ibuprofen is an anti-inflammatory drug."}
    assert ds.positives("train") == [("q1", "d1"), ("7", "d3")]
    assert ds.name == "tiny"


def test_bundled_sample_counts() -> None:
    ds = load_dataset()
    assert (len(ds.corpus), len(ds.queries)) == (640, 120)
    assert {s: len(j) for s, j in ds.qrels.items()} == {"train": 80, "test": 40}
    ids = [*ds.corpus, *ds.queries, *(d for j in ds.qrels.values() for docs in j.values() for d in docs)]
    assert all(type(i) is str for i in ids)
    assert ds.path == str(SAMPLE_PATH)


def test_blank_lines_bom_and_crlf_are_tolerated(beir: Path) -> None:
    (beir / "corpus.jsonl").write_bytes(b"\xef\xbb\xbf" + jsonl(CORPUS).replace("\n", "\r\n\n").encode())
    (beir / "qrels" / "test.tsv").write_text(QRELS["test"].replace("\n", "\r\n") + "\n\n")
    ds = load_beir(beir)
    assert len(ds.corpus) == 4 and ds.qrels["test"] == {"q3": {"d4": 2}}


# (case, file the error names, line or None, words in the message, mutation of the valid folder)
def _replace(name: str, text: str | bytes):
    def mutate(root: Path) -> None:
        path = root / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)

    return mutate


def _remove(name: str):
    def mutate(root: Path) -> None:
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return mutate


def _qrels_dir_without_tsv(root: Path) -> None:
    for f in (root / "qrels").glob("*.tsv"):
        f.rename(f.with_suffix(".txt"))


BROKEN = [
    ("missing corpus", "corpus.jsonl", None, "missing file", _remove("corpus.jsonl")),
    ("missing queries", "queries.jsonl", None, "missing file", _remove("queries.jsonl")),
    ("missing qrels folder", "qrels", None, "missing folder", _remove("qrels")),
    ("qrels without tsv", "qrels", None, "no .tsv files", _qrels_dir_without_tsv),
    ("empty corpus", "corpus.jsonl", None, "empty file", _replace("corpus.jsonl", "\n  \n")),
    ("empty qrels", "train.tsv", None, "empty file", _replace("qrels/train.tsv", "")),
    ("header only qrels", "train.tsv", None, "no judgements", _replace("qrels/train.tsv", "query-id\tcorpus-id\tscore\n")),
    ("malformed json", "corpus.jsonl", 3, "malformed JSON", _replace("corpus.jsonl", jsonl(CORPUS[:2]) + '{"_id": "d3", "text": "x"\n')),
    ("json after blank line", "queries.jsonl", 4, "malformed JSON", _replace("queries.jsonl", jsonl(QUERIES[:2]) + "\n{'_id': 1}\n")),
    ("not an object", "queries.jsonl", 2, "expected a JSON object, got list", _replace("queries.jsonl", jsonl([QUERIES[0], [1, 2]]))),
    ("missing _id", "corpus.jsonl", 2, "missing '_id'", _replace("corpus.jsonl", jsonl([CORPUS[0], {"text": "x"}]))),
    ("bad _id type", "corpus.jsonl", 1, "'_id' must be a string or an integer", _replace("corpus.jsonl", jsonl([{"_id": None, "text": "x"}]))),
    ("missing query text", "queries.jsonl", 1, "missing 'text'", _replace("queries.jsonl", jsonl([{"_id": "q1"}]))),
    ("non-string text", "corpus.jsonl", 2, "'text' must be a string", _replace("corpus.jsonl", jsonl([CORPUS[0], {"_id": "x", "text": 5}]))),
    ("empty doc", "corpus.jsonl", 4, "empty title and text", _replace("corpus.jsonl", jsonl(CORPUS[:3] + [{"_id": "d4", "title": "", "text": "  "}]))),
    ("empty query", "queries.jsonl", 2, "empty text", _replace("queries.jsonl", jsonl([QUERIES[0], {"_id": 7, "text": ""}]))),
    ("duplicate doc id", "corpus.jsonl", 5, "duplicate _id 'd1' (first on line 1)", _replace("corpus.jsonl", jsonl(CORPUS + [CORPUS[0]]))),
    ("int and str id collide", "queries.jsonl", 4, "duplicate _id '7' (first on line 2)", _replace("queries.jsonl", jsonl(QUERIES + [{"_id": "7", "text": "again"}]))),
    ("invalid utf-8", "queries.jsonl", 2, "not valid UTF-8", _replace("queries.jsonl", jsonl(QUERIES[:1]).encode() + b'{"_id": "q2", "text": "\xff"}\n')),
    ("bad qrels header", "train.tsv", 1, "bad header", _replace("qrels/train.tsv", "qid\tdocid\trel\nq1\td1\t1\n")),
    ("wrong column count", "train.tsv", 3, "expected 3 tab-separated columns, got 2", _replace("qrels/train.tsv", QRELS["train"].replace("q1\t2\t0", "q1\t2"))),
    ("non-integer score", "test.tsv", 2, "score '1.5' is not an integer", _replace("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq3\td4\t1.5\n")),
    ("unknown query id", "train.tsv", 2, "query-id 'q9' is not in queries.jsonl", _replace("qrels/train.tsv", QRELS["train"].replace("q1\td1", "q9\td1"))),
    ("unknown doc id", "train.tsv", 3, "corpus-id '99' is not in corpus.jsonl", _replace("qrels/train.tsv", QRELS["train"].replace("q1\t2\t0", "q1\t99\t0"))),
]


@pytest.mark.parametrize("case,name,line,words,mutate", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_beir_names_file_and_line(beir: Path, case, name, line, words, mutate) -> None:
    mutate(beir)
    with pytest.raises(InputError) as info:
        load_beir(beir)
    err = info.value
    assert Path(err.file).name == name
    assert err.line == line
    assert words in err.message
    assert str(err).startswith(f"{err.file}:{line}: " if line else f"{err.file}: ")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder") as info:
        load_beir(tmp_path / "nope")
    assert info.value.file == str(tmp_path / "nope")
    with pytest.raises(InputError, match="no such file or folder"):
        load_dataset(tmp_path / "nope")


# ---- pair files ---------------------------------------------------------------------------------


def test_jsonl_pairs_hash_ids_and_dedupe_positives(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"query": "what lowers fever", "positive": "Aspirin lowers fever.", "negative": "ignored"},
        {"anchor": "pain relief", "positive": "Aspirin lowers fever."},
        {"query": "colds", "pos": ["Vitamin C does not prevent colds.", "Rest helps."], "neg": ["x"]},
        {"query": "what lowers fever", "positive": "  Paracetamol lowers fever too. "},
    ]
    path.write_text(jsonl(rows))
    ds = load_pairs(path)
    assert len(ds.queries) == 3  # the repeated query is one query with two positives
    assert len(ds.corpus) == 4  # the shared positive is one doc
    assert sorted(ds.qrels) == ["train"]
    assert sum(len(d) for d in ds.qrels["train"].values()) == 5
    fever = next(q for q, t in ds.queries.items() if t == "what lowers fever")
    assert sorted(ds.corpus[d]["text"] for d in ds.qrels["train"][fever]) == ["Aspirin lowers fever.", "Paracetamol lowers fever too."]
    assert load_pairs(path).corpus == ds.corpus and load_pairs(path).queries == ds.queries  # ids are stable


def test_csv_and_tsv_pairs(tmp_path: Path) -> None:
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text('Anchor,positive,score\n"fever, adults","Aspirin,\nlowers fever.",1\n\nsleep,Seven hours.,0\n')
    ds = load_pairs(csv_path)
    assert sorted(ds.queries.values()) == ["fever, adults", "sleep"]
    assert sorted(d["text"] for d in ds.corpus.values()) == ["Aspirin,\nlowers fever.", "Seven hours."]
    tsv_path = tmp_path / "pairs.tsv"
    tsv_path.write_text("query\tpositive\nfever, adults\tAspirin lowers fever.\n")
    assert list(load_pairs(tsv_path).queries.values()) == ["fever, adults"]


def test_extra_corpus_adds_passages_without_duplicating_positives(tmp_path: Path, beir: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(jsonl([{"query": "q", "positive": "Vitamin C does not prevent colds."}]))
    txt = tmp_path / "passages.txt"
    txt.write_text("Vitamin C does not prevent colds.\nZinc may shorten colds.\n\n")
    ds = load_dataset(path, txt)
    assert sorted(d["text"] for d in ds.corpus.values()) == ["Vitamin C does not prevent colds.", "Zinc may shorten colds."]
    # a BEIR corpus (its folder or the file) keeps its own ids; titled docs differ from the untitled positive
    ds = load_pairs(path, beir)
    assert set(ds.corpus) >= {"d1", "2", "d3", "d4"} and len(ds.corpus) == 5
    plain = tmp_path / "passages.jsonl"
    plain.write_text(jsonl([{"text": "Vitamin C does not prevent colds."}, {"text": "Zinc."}]))
    assert len(load_pairs(path, plain).corpus) == 2


BROKEN_PAIRS = [
    ("pairs.jsonl", '{"query": "a", "positive": "b"}\n{"positive": "c"}\n', 2, "missing 'query' (or 'anchor')"),
    ("pairs.jsonl", '{"query": "a"}\n', 1, "missing 'positive' (or 'pos')"),
    ("pairs.jsonl", '{"query": "a", "pos": []}\n', 1, "empty 'pos' list"),
    ("pairs.jsonl", '{"query": "a", "pos": ["b", 3]}\n', 1, "'pos' must be a string"),
    ("pairs.jsonl", '\n{"query": " ", "positive": "b"}\n', 2, "empty 'query'"),
    ("pairs.jsonl", '{"query": "a", "positive": "b"\n', 1, "malformed JSON"),
    ("pairs.csv", "query,positive\na,b\nc\n", 3, "expected 2 columns, got 1"),
    ("pairs.csv", "question,positive\na,b\n", 1, "header has no 'query' (or 'anchor') column"),
    ("pairs.csv", 'query,positive\na,b\nc,""\n', 3, "empty 'positive'"),
    ("pairs.tsv", "query\tpositive\na\tb\n\nc\td\te\n", 4, "expected 2 columns, got 3"),
    ("pairs.tsv", "", None, "empty file"),
    ("pairs.txt", "a\tb\n", None, "unknown pair file type '.txt'"),
]


@pytest.mark.parametrize("name,text,line,words", BROKEN_PAIRS)
def test_broken_pairs_name_file_and_line(tmp_path: Path, name, text, line, words) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_dataset(path)
    assert (info.value.file, info.value.line) == (str(path), line)
    assert words in info.value.message


def test_broken_extra_corpus_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(jsonl([{"query": "q", "positive": "p"}]))
    corpus = tmp_path / "extra.jsonl"
    corpus.write_text(jsonl([{"_id": "a", "text": "x"}, {"_id": "a", "text": "y"}]))
    with pytest.raises(InputError, match=r"extra\.jsonl:2: duplicate _id 'a' \(first on line 1\)"):
        load_pairs(path, corpus)
    with pytest.raises(InputError, match="applies to pair files only"):
        load_dataset(SAMPLE_PATH, corpus)


# ---- carve_dev, stats, to_hf --------------------------------------------------------------------


def test_carve_dev_moves_a_seeded_subset_of_train() -> None:
    ds = load_dataset()
    carved = carve_dev(ds, 20, seed=3)
    assert len(carved.qrels["dev"]) == 20 and len(carved.qrels["train"]) == 60
    assert not set(carved.qrels["dev"]) & set(carved.qrels["train"])
    assert {**carved.qrels["dev"], **carved.qrels["train"]} == ds.qrels["train"]
    assert carved.qrels["test"] == ds.qrels["test"]
    assert "dev" not in ds.qrels and len(ds.qrels["train"]) == 80  # the input is untouched
    assert carve_dev(ds, 20, seed=3).qrels["dev"] == carved.qrels["dev"]
    assert carve_dev(ds, 20, seed=4).qrels["dev"] != carved.qrels["dev"]
    assert len(carve_dev(ds, 0.1, seed=0).qrels["dev"]) == 8


@pytest.mark.parametrize("n", [0, 80, 1.0, 0.0, -1])
def test_carve_dev_rejects_impossible_sizes(n) -> None:
    with pytest.raises(InputError, match="cannot move"):
        carve_dev(load_dataset(), n, seed=0)


def test_carve_dev_keeps_an_existing_dev_split() -> None:
    with pytest.raises(InputError, match="already has a 'dev' split"):
        carve_dev(carve_dev(load_dataset(), 5, seed=0), 5, seed=0)


def test_stats_counts_the_tiny_folder(beir: Path) -> None:
    s = stats(load_beir(beir))
    assert (s["docs"], s["queries"], s["empty_titles"]) == (4, 3, 1)
    assert s["splits"]["train"] == {"queries": 2, "pairs": 3, "relevant": 2, "judged_per_query": {"mean": 1.5, "max": 2}}
    assert s["splits"]["test"]["pairs"] == 1
    # doc words (title + text): 6, 5, 8, 7; query words: 4, 4, 3
    assert s["doc_words"]["mean"] == 6.5 and s["doc_words"]["median"] == 6.5
    assert s["doc_words"]["p95"] == pytest.approx(7.85)
    assert s["query_words"] == {"mean": 3.67, "median": 4.0, "p95": 4.0}
    json.dumps(s)


def test_to_hf_keeps_ids_as_strings(beir: Path) -> None:
    hf = load_beir(beir).to_hf()
    assert set(hf) == {"corpus", "queries", "qrels_train", "qrels_test"}
    assert hf["corpus"].features["_id"].dtype == "string"
    assert hf["corpus"]["_id"] == ["d1", "2", "d3", "d4"]
    assert hf["qrels_train"]["corpus-id"] == ["d1", "2", "d3"] and hf["qrels_train"]["score"] == [1, 0, 1]


# ---- fuzz ---------------------------------------------------------------------------------------

FILES = ["corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"]


def _drop_column(data: bytes, rng: random.Random) -> bytes:
    """Remove one tab-separated column (TSV) or one key (JSONL) from a random line."""
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    if b"\t" in lines[i]:
        cols = lines[i].split(b"\t")
        del cols[rng.randrange(len(cols))]
        lines[i] = b"\t".join(cols)
    elif lines[i].strip():
        obj = json.loads(lines[i])
        obj.pop(rng.choice(sorted(obj)), None)
        lines[i] = json.dumps(obj).encode()
    return b"\n".join(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    file=st.sampled_from(FILES),
    how=st.sampled_from(["truncate", "flip", "drop"]),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    byte=st.integers(0, 255),
    seed=st.integers(0, 2**16),
)
def test_fuzzed_folder_loads_or_names_a_file(file, how, where, byte, seed) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_beir(Path(tmp) / "tiny")
        path = root / file
        data = path.read_bytes()
        at = int(where * len(data))
        if how == "truncate":
            data = data[:at]
        elif how == "flip":
            data = data[:at] + bytes([byte]) + data[at + 1 :]
        else:
            data = _drop_column(data, random.Random(seed))
        path.write_bytes(data)
        try:
            ds = load_dataset(root)
        except InputError as err:
            assert err.file and Path(err.file).name in str(err)
            assert err.line is None or err.line >= 1
        else:
            assert all(type(d) is str for d in ds.corpus) and ds.qrels


# ---- full SciFact -------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_scifact_published_counts(scifact_path: Path) -> None:
    start = time.perf_counter()
    ds = load_dataset(scifact_path)
    seconds = time.perf_counter() - start
    print(f"\nloaded full SciFact in {seconds:.2f}s")
    assert (len(ds.corpus), len(ds.queries)) == (5183, 1109)
    s = stats(ds)["splits"]
    assert (s["train"]["queries"], s["train"]["pairs"]) == (809, 919)
    assert (s["test"]["queries"], s["test"]["pairs"]) == (300, 339)
    assert seconds < 5
