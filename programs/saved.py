"""Compiled programs on disk: DSPy's own JSON (prompts and demos) plus a sidecar that says where it came from.

``NAME.json`` is ``program.save`` output and loads with ``load_program``; ``NAME.meta.json`` records
the dataset, dev split, metric before/after, LM, strategy, budget, library versions and date. Neither holds an
API key: predictors carry no LM, and the sidecar stores the model string only. Programs shipped in
``programs/compiled/`` become the default for the LM string and strategy their sidecar names.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import dspy

from programs.attributes import parse_strategies
from programs.syneg import program_hash
from syneg_dspy.errors import InputError
from syneg_dspy.store import atomic_path, write_json

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
UNCOMPILED = ("uncompiled", "none")  # --program values that ask for the uncompiled program explicitly
PACKAGES = ("syneg-dspy", "dspy", "litellm", "sentence-transformers", "torch", "llama-cpp-python")


def sidecar_path(program_path: str | Path) -> Path:
    path = Path(program_path)
    return path.with_name(path.stem + ".meta.json")


def versions() -> dict[str, str | None]:
    def get(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {name: get(name) for name in PACKAGES}


def save_program(program: dspy.Module, path: str | Path, meta: dict) -> tuple[Path, Path]:
    """Write ``path`` (DSPy JSON) and its sidecar (``meta`` plus hash, versions and date), each atomically."""
    path = Path(path)
    if path.suffix != ".json":
        raise InputError("a compiled program is saved as .json", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        program.save(str(tmp.with_suffix(".json")))
        tmp.with_suffix(".json").replace(tmp)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **meta, "program": path.name,
            "program_hash": program_hash(program), "versions": versions()}
    write_json(sidecar_path(path), meta)
    return path, sidecar_path(path)


def read_meta(program_path: str | Path) -> dict | None:
    path = sidecar_path(program_path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise InputError(f"not a program sidecar: {err}", path) from None


def shipped_program(lm: str, strategy: str = "generate", folder: Path = COMPILED_DIR) -> Path | None:
    """The newest program in ``folder`` compiled for ``lm`` and the same generation strategies, if any
    (a program compiled for rewrites has no demos for free generation, and the other way round)."""
    wanted = parse_strategies(strategy)

    def fits(meta: dict | None) -> bool:
        return bool(meta) and meta.get("lm") == lm and parse_strategies(meta.get("strategy", "generate")) == wanted

    matches = [p for p in sorted(folder.glob("*.json")) if not p.name.endswith(".meta.json") and fits(read_meta(p))]
    return max(matches, key=lambda p: read_meta(p).get("date", "")) if matches else None


def resolve_program(value: str | Path | None, lm: str, strategy: str = "generate") -> Path | None:
    """``--program``: a file; ``uncompiled``/``none``; or nothing given, which means the shipped program for
    ``lm`` and ``strategy``."""
    if value is None:
        return shipped_program(lm, strategy)
    if str(value).lower() in UNCOMPILED:
        return None
    path = Path(value)
    if not path.is_file():
        raise InputError("no such program file", path)
    return path
