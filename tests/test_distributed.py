"""rnnkit.distributed: a process that leaves the process group and joins again (``train``
called twice under torchrun) meets the others under fresh keys, whichever arrives first."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("distributed_rejoin_worker.py")


@pytest.mark.parametrize("sleeper", [0, 1])
def test_processes_join_leave_and_join_again_in_any_order(sleeper):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(sleeper)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    try:
        outs = [p.communicate(timeout=90) for p in procs]  # before the fix: both wait in the second join
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "".join(err for _, err in outs)[-3000:]
    assert "".join(out for out, _ in outs).count("3 joins") == 2
