import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.layers import clear_session

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"

# One intra-op thread: the suite's models are small, and on a 2-core machine OpenMP's
# thread hand-offs cost more than they save (10x slower small matmuls under load).
torch.set_num_threads(1)
# ... and the same for the CLI runs and workers the tests start as subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# ... and import this checkout's rnnkit, not whichever one pip installed in editable mode
# (a git worktree shares the venv of the main checkout).
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
)
# rnnkit's C kernels are built into a folder of this session's, not the user's ~/.cache.
if "RNNKIT_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["RNNKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnkit-test-cache-")
    atexit.register(shutil.rmtree, os.environ["RNNKIT_CACHE_DIR"], True)


@pytest.fixture(autouse=True)
def _fresh_names_and_seed():
    """Every test starts with Keras's name counters reset and fixed seeds."""
    clear_session()
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def data_dir() -> Path:
    d = os.environ.get("RNNKIT_DATA_DIR")
    if not d or not Path(d).is_dir():
        pytest.skip("RNNKIT_DATA_DIR is not set to the shared corpora folder (../shared/data)")
    return Path(d)
