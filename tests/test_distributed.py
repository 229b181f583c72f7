"""rnnkit.distributed: a process that leaves the process group and joins again (``train``
called twice under torchrun) meets the others under fresh keys, whichever arrives first."""
import sys
from pathlib import Path

import pytest

from tests import launch

WORKER = Path(__file__).with_name("distributed_rejoin_worker.py")


@pytest.mark.parametrize("sleeper", [0, 1])
def test_processes_join_leave_and_join_again_in_any_order(sleeper):
    # (before the fix to rnnkit.distributed, both processes waited in the second join)
    codes, outs = launch.spawn([sys.executable, WORKER, sleeper], 2, {"OMP_NUM_THREADS": "1"}, timeout=90)
    assert codes == [0, 0], "".join(err for _, err in outs)[-3000:]
    assert "".join(out for out, _ in outs).count("3 joins") == 2
