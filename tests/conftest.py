import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

REPO = TESTS.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    """Where the test corpus of quantized models is built once per session (or SWSC_CORPUS_DIR)."""
    d = os.environ.get("SWSC_CORPUS_DIR")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        return Path(d)
    return tmp_path_factory.mktemp("corpus")
