"""Test-wide setup: offline switches before any heavy import, a throwaway DSPy cache, shared fixtures."""

import os
import tempfile
from pathlib import Path

# DSPy's LM cache must not leak answers between tests or into the user's cache.
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="syneg-test-dspy-")

import syneg_dspy  # noqa: E402,F401  (sets LITELLM_LOCAL_MODEL_COST_MAP, HF_*_OFFLINE)
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def sample_path() -> Path:
    """The SciFact sample bundled with the package (quick start and fast tests)."""
    from syneg_dspy.data.sample import SAMPLE_PATH

    return SAMPLE_PATH


@pytest.fixture(scope="module")
def ds(sample_path):
    """The bundled sample, loaded once per test module (a module may override it)."""
    from syneg_dspy.data import load_dataset

    return load_dataset(sample_path)


@pytest.fixture(scope="session")
def scifact_path() -> Path:
    """The full SciFact from ../shared; slow tests only."""
    path = SHARED / "scifact"
    if not path.exists():
        pytest.skip("../shared/datasets/scifact not present")
    return path


@pytest.fixture(scope="session")
def tiny_encoder_path(sample_path, tmp_path_factory) -> Path:
    """A 2-layer BERT sentence encoder built locally on the sample's texts: fast, no download."""
    from syneg_dspy.data import load_dataset
    from tiny_encoder import build_tiny_encoder

    ds = load_dataset(sample_path)
    texts = [ds.doc_text(d) for d in ds.corpus] + list(ds.queries.values())
    return build_tiny_encoder(tmp_path_factory.getbasetemp() / "tiny-encoder", texts)


@pytest.fixture(scope="session")
def lexical_encoder_path(sample_path, tmp_path_factory) -> Path:
    """The tiny encoder with nothing mixing tokens: a bag-of-words ranking, for pipelines that mine with a
    margin and guard by cosine (the compile), at a fraction of MiniLM's cost."""
    from syneg_dspy.data import load_dataset
    from tiny_encoder import build_tiny_encoder

    ds = load_dataset(sample_path)
    texts = [ds.doc_text(d) for d in ds.corpus] + list(ds.queries.values())
    return build_tiny_encoder(tmp_path_factory.getbasetemp() / "lexical-encoder", texts, lexical=True)
