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


@pytest.fixture(scope="session")
def scifact_path() -> Path:
    """The full SciFact from ../shared; slow tests only."""
    path = SHARED / "scifact"
    if not path.exists():
        pytest.skip("../shared/datasets/scifact not present")
    return path
