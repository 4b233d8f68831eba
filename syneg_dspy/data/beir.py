"""BEIR folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``), checked line by line.

Each file is read once with the standard ``json`` module: the 7 MB SciFact corpus parses in a
fraction of a second, and every problem is reported with its file and 1-based line, which a
columnar reader (``datasets``/pyarrow) cannot do. ``Dataset.to_hf`` gives Arrow tables when wanted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from syneg_dspy.data.dataset import Dataset
from syneg_dspy.errors import InputError

QRELS_HEADER = ["query-id", "corpus-id", "score"]


def read_text(path: Path) -> str:
    """A whole UTF-8 file (a BOM is dropped); missing, undecodable or blank is an InputError."""
    if not path.is_file():
        raise InputError("missing file" if not path.exists() else "not a file", path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError("not valid UTF-8", path, data.count(b"\n", 0, err.start) + 1) from None
    if not text.strip():
        raise InputError("empty file", path)
    return text


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-blank line; only ``\\n`` ends a line, as in JSON Lines."""
    for n, line in enumerate(read_text(path).split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip():
            yield n, line


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON Lines file."""
    for n, line in read_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"malformed JSON: {err.msg} (column {err.colno})", path, n) from None
        except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4300 digits
            raise InputError(f"malformed JSON: {err}", path, n) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", path, n)
        yield n, obj


def get_id(obj: dict, path: Path, n: int) -> str:
    """``_id`` as a string: BEIR ids such as 13734012 are sometimes written as JSON integers."""
    if "_id" not in obj:
        raise InputError("missing '_id'", path, n)
    value = obj["_id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"'_id' must be a string or an integer, got {type(value).__name__}", path, n)
    value = str(value)
    if not value.strip():
        raise InputError("empty '_id'", path, n)
    return value


def get_text(obj: dict, key: str, path: Path, n: int, required: bool = True) -> str:
    """A string field; an optional one (a title) may be absent or null."""
    value = obj.get(key)
    if value is None:
        if required:
            raise InputError(f"missing {key!r}", path, n)
        return ""
    if not isinstance(value, str):
        raise InputError(f"{key!r} must be a string, got {type(value).__name__}", path, n)
    return value


def check_unique(first: dict[str, int], key: str, what: str, path: Path, n: int) -> None:
    """Remember where ``key`` was first seen; a second sighting is an InputError naming both lines."""
    if key in first:
        raise InputError(f"duplicate {what} {key!r} (first on line {first[key]})", path, n)
    first[key] = n


def read_corpus(path: Path) -> dict[str, dict[str, str]]:
    corpus: dict[str, dict[str, str]] = {}
    first: dict[str, int] = {}
    for n, obj in iter_jsonl(path):
        doc_id = get_id(obj, path, n)
        title = get_text(obj, "title", path, n, required=False)
        text = get_text(obj, "text", path, n)
        if not title.strip() and not text.strip():
            raise InputError(f"document {doc_id!r} has an empty title and text", path, n)
        check_unique(first, doc_id, "_id", path, n)
        corpus[doc_id] = {"title": title, "text": text}
    return corpus


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    first: dict[str, int] = {}
    for n, obj in iter_jsonl(path):
        qid = get_id(obj, path, n)
        text = get_text(obj, "text", path, n)
        if not text.strip():
            raise InputError(f"query {qid!r} has an empty text", path, n)
        check_unique(first, qid, "_id", path, n)
        queries[qid] = text
    return queries


def read_qrels(path: Path, queries: dict[str, str], corpus: dict) -> dict[str, dict[str, int]]:
    """``query-id<TAB>corpus-id<TAB>score`` rows under that header; every id must be known."""
    lines = read_lines(path)
    n, header = next(lines)
    if header.split("\t") != QRELS_HEADER:
        raise InputError(f"bad header {header!r}, expected {chr(9).join(QRELS_HEADER)!r}", path, n)
    judged: dict[str, dict[str, int]] = {}
    for n, line in lines:
        cols = line.split("\t")
        if len(cols) != 3:
            raise InputError(f"expected 3 tab-separated columns, got {len(cols)}", path, n)
        qid, doc_id, score = cols
        try:
            grade = int(score)
        except ValueError:
            raise InputError(f"score {score!r} is not an integer", path, n) from None
        if qid not in queries:
            raise InputError(f"query-id {qid!r} is not in queries.jsonl", path, n)
        if doc_id not in corpus:
            raise InputError(f"corpus-id {doc_id!r} is not in corpus.jsonl", path, n)
        judged.setdefault(qid, {})[doc_id] = grade
    if not judged:
        raise InputError("no judgements after the header", path)
    return judged


def load_beir(path: str | Path) -> Dataset:
    """A BEIR folder with every check applied; each split is named after its ``qrels/<split>.tsv``."""
    root = Path(path)
    if not root.is_dir():
        raise InputError("no such folder" if not root.exists() else "not a folder (a BEIR dataset is a folder)", root)
    corpus = read_corpus(root / "corpus.jsonl")
    queries = read_queries(root / "queries.jsonl")
    qrels_dir = root / "qrels"
    if not qrels_dir.is_dir():
        raise InputError("missing folder", qrels_dir)
    files = sorted(qrels_dir.glob("*.tsv"))
    if not files:
        raise InputError("no .tsv files (expected e.g. qrels/test.tsv)", qrels_dir)
    qrels = {f.stem: read_qrels(f, queries, corpus) for f in files}
    return Dataset(corpus, queries, qrels, name=root.name, path=str(root))
