"""(query, positive) pair files for a new domain that has no qrels: JSONL, CSV or TSV.

Column names follow sentence-transformers (``anchor``/``positive``) and FlagEmbedding (``query``/
``pos`` list); other columns (negatives, scores) are ignored. Ids are hashes of the text, so the
same query or passage always gets the same id and identical positives collapse into one document.
All pairs form the ``train`` split; an extra corpus adds passages to mine negatives from.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Iterator

from syneg_dspy.data.beir import check_unique, get_id, get_text, iter_jsonl, read_lines, read_text
from syneg_dspy.data.dataset import Dataset
from syneg_dspy.errors import InputError

QUERY_KEYS = ("query", "anchor")
POSITIVE_KEYS = ("positive", "pos")
DELIMITERS = {".csv": ",", ".tsv": "\t"}


def stable_id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _first_key(row: dict, keys: tuple[str, ...], path: Path, n: int) -> str:
    for key in keys:
        if key in row:
            return key
    raise InputError(f"missing {keys[0]!r} (or {keys[1]!r})", path, n)


def _nonempty(value: object, key: str, path: Path, n: int) -> str:
    if not isinstance(value, str):
        raise InputError(f"{key!r} must be a string, got {type(value).__name__}", path, n)
    if not value.strip():
        raise InputError(f"empty {key!r}", path, n)
    return value.strip()


def _jsonl_pairs(path: Path) -> Iterator[tuple[str, list[str]]]:
    for n, obj in iter_jsonl(path):
        query = _nonempty(obj[_first_key(obj, QUERY_KEYS, path, n)], "query", path, n)
        key = _first_key(obj, POSITIVE_KEYS, path, n)
        value = obj[key]
        values = value if isinstance(value, list) else [value]
        if not values:
            raise InputError(f"empty {key!r} list", path, n)
        yield query, [_nonempty(v, key, path, n) for v in values]


def _table_pairs(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Rows of a CSV/TSV with a header; ``csv`` handles quoting, and its ``line_num`` locates errors."""
    reader = csv.reader(
        (line + "\n" for line in read_text(path).split("\n")), delimiter=DELIMITERS[path.suffix.lower()]
    )
    try:
        header = [c.strip().lower() for c in next((row for row in reader if row), [])]
        cols = {}
        for keys in (QUERY_KEYS, POSITIVE_KEYS):
            found = [k for k in keys if k in header]
            if not found:
                raise InputError(f"header has no {keys[0]!r} (or {keys[1]!r}) column", path, reader.line_num)
            cols[keys[0]] = header.index(found[0])
        for row in reader:
            n = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise InputError(f"expected {len(header)} columns, got {len(row)}", path, n)
            yield _nonempty(row[cols["query"]], "query", path, n), [_nonempty(row[cols["positive"]], "positive", path, n)]
    except csv.Error as err:
        raise InputError(f"malformed {path.suffix[1:].upper()}: {err}", path, reader.line_num) from None


def read_passages(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(doc id, doc) from a BEIR ``corpus.jsonl`` (or its folder), a JSONL of ``{"text"}``, or a .txt of lines."""
    if path.is_dir():
        path = path / "corpus.jsonl"
    if path.suffix.lower() == ".txt":
        for _, line in read_lines(path):
            yield stable_id("d", line.strip()), {"title": "", "text": line.strip()}
        return
    first: dict[str, int] = {}
    for n, obj in iter_jsonl(path):
        doc = {"title": get_text(obj, "title", path, n, required=False), "text": get_text(obj, "text", path, n)}
        text = f"{doc['title']} {doc['text']}".strip()
        if not text:
            raise InputError("empty passage (no title and no text)", path, n)
        doc_id = get_id(obj, path, n) if "_id" in obj else stable_id("d", text)
        check_unique(first, doc_id, "_id", path, n)
        yield doc_id, doc


def load_pairs(path: str | Path, corpus: str | Path | None = None) -> Dataset:
    """A pair file as a Dataset whose ``train`` split holds every pair (grade 1)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = _jsonl_pairs(path)
    elif suffix in DELIMITERS:
        rows = _table_pairs(path)
    else:
        raise InputError(f"unknown pair file type {suffix or '(none)'!r}: expected .jsonl, .csv or .tsv", path)
    docs: dict[str, dict[str, str]] = {}
    queries: dict[str, str] = {}
    judged: dict[str, dict[str, int]] = {}
    for query, positives in rows:
        qid = stable_id("q", query)
        queries[qid] = query
        for positive in positives:
            doc_id = stable_id("d", positive)
            docs[doc_id] = {"title": "", "text": positive}
            judged.setdefault(qid, {})[doc_id] = 1
    if corpus is not None:
        texts = {doc["text"] for doc in docs.values()}
        for doc_id, doc in read_passages(Path(corpus)):
            if doc_id not in docs and f"{doc['title']} {doc['text']}".strip() not in texts:
                docs[doc_id] = doc
    return Dataset(docs, queries, {"train": judged}, name=path.stem, path=str(path))
