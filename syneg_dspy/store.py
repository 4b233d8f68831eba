"""Files that later stages can trust: atomic writes, and an append-only JSONL store that resumes.

A stage never leaves a half-written artifact: whole files go to a temp file and are renamed into place.
Long runs append one JSON line per finished item and flush it; a rerun reads the keys already there
and skips them, and a torn last line (a ``kill -9`` mid-write) is dropped and overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file written by this package (trusted). User files go through ``syneg_dspy.data``."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class JsonlStore:
    """Append-only JSONL keyed by ``key(row)``: resume-safe and duplicate-free.

    On open, complete lines are indexed; a torn final line is truncated away so the next append
    starts on a clean line. ``add`` writes and flushes one line, so a killed run loses at most
    the items in flight.
    """

    def __init__(self, path: str | Path, key: Callable[[dict], str]):
        self.path = Path(path)
        self.key = key
        self.rows: dict[str, dict] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._f = self.path.open("a", encoding="utf-8")

    def _recover(self) -> None:
        if not self.path.exists():
            return
        good = 0
        with self.path.open("rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # torn last line
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    break
                self.rows[self.key(row)] = row
                good += len(raw)
        if good != self.path.stat().st_size:
            with self.path.open("r+b") as f:
                f.truncate(good)

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: dict) -> None:
        k = self.key(row)
        if k in self.rows:
            return
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.rows[k] = row

    def replace(self, row: dict) -> None:
        """Supersede a row with the same key (e.g. a retried failure); the last line for a key wins."""
        self.rows.pop(self.key(row), None)
        self.add(row)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
