"""`syneg data validate|stats`: a summary line or a table, and bad input as one stderr line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from test_data import BROKEN, BROKEN_PAIRS, write_beir


def invoke(*args: str):
    return CliRunner().invoke(main, ["data", *args])


def test_validate_bundled_sample() -> None:
    result = invoke("validate")
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 640 docs, 120 queries, splits test (40 q), train (80 q)\n"


def test_stats_json_and_table(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "tiny")
    result = invoke("stats", str(root), "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert (s["docs"], s["queries"], s["splits"]["train"]["pairs"]) == (4, 3, 3)
    table = invoke("stats", str(root))
    assert table.exit_code == 0, table.output
    assert "tiny: 4 docs, 3 queries, 1 empty titles" in table.stdout
    assert all(word in table.stdout for word in ("train", "test", "docs", "queries", "p95"))


def _assert_one_line_error(result, file: Path, line: int | None) -> None:
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {file}:{line}: " if line else f"error: {file}: ")


@pytest.mark.parametrize("case,name,line,words,mutate", BROKEN, ids=[c[0] for c in BROKEN])
def test_validate_broken_beir(tmp_path: Path, case, name, line, words, mutate) -> None:
    root = write_beir(tmp_path / "tiny")
    mutate(root)
    result = invoke("validate", str(root))
    file = root / "qrels" / name if name.endswith(".tsv") else root / name
    _assert_one_line_error(result, file, line)
    assert words in result.stderr


@pytest.mark.parametrize("name,text,line,words", BROKEN_PAIRS)
def test_validate_broken_pairs(tmp_path: Path, name, text, line, words) -> None:
    path = tmp_path / name
    path.write_text(text)
    result = invoke("validate", str(path))
    _assert_one_line_error(result, path, line)
    assert words in result.stderr


def test_missing_path(tmp_path: Path) -> None:
    result = invoke("stats", str(tmp_path / "nope"))
    _assert_one_line_error(result, tmp_path / "nope", None)
    assert "no such file or folder" in result.stderr


def test_validate_pairs_with_extra_corpus(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("query,positive\nfever,Aspirin lowers fever.\n")
    extra = tmp_path / "extra.txt"
    extra.write_text("Zinc may shorten colds.\nSleep helps.\n")
    result = invoke("validate", str(pairs), "--corpus", str(extra))
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 3 docs, 1 queries, splits train (1 q)\n"
