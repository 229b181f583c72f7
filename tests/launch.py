"""Start test processes as torchrun starts them, without racing for a port.

Picking a "free" port by binding a socket, closing it and passing the number on races:
until the process meant to listen there binds it, anything else on the machine (another
test's store or gloo sockets, another session's suite) may take it, and a rank then meets
the wrong store, or none. Worse, stores of concurrent launches hold the same keys
(``rnnkit/0/1/...``), so a rank that reached a stranger's store reads a stranger's
addresses and waits in gloo's connect, past every timeout.

Here the parent holds the store, as torchrun's agent does: it binds port 0 (the kernel
picks a port no one holds, and the parent keeps it), and the workers are told so by
``TORCHELASTIC_USE_AGENT_STORE``, which makes every rank, rank 0 included, a client of it.
Each launch gets a store of its own, so no launch reads another's keys. torchrun itself is
run without ``--master_port``: on one node it then serves its store on port 0 too.
"""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
from contextlib import contextmanager

import torch.distributed as dist


@contextmanager
def agent_store():
    """The environment of a launch whose store this process serves, for as long as the block runs."""
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                          timeout=datetime.timedelta(seconds=60))
    try:
        yield {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "TORCHELASTIC_USE_AGENT_STORE": "True"}
    finally:
        del store


def spawn(cmd: list, world: int, env: dict | None = None, timeout: float = 120) -> tuple[list[int], list[tuple[str, str]]]:
    """``world`` processes of ``cmd`` with torchrun's environment (``RANK``, ``WORLD_SIZE``...);
    ``(return codes, [(stdout, stderr)] in rank order)``. A process still running at the
    timeout is killed (and the timeout raised), so that none outlives its test."""
    base = {**os.environ, **(env or {})}
    with agent_store() as launch:
        procs = [subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**base, **launch, "RANK": str(r), "LOCAL_RANK": str(r),
                                       "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world)})
                 for r in range(world)]
        try:
            outs = [p.communicate(timeout=timeout) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    return [p.returncode for p in procs], outs


def torchrun_command(nproc: int, *args, nnodes: str = "1") -> list[str]:
    """``torchrun --nproc_per_node=N --nnodes=NNODES ARGS`` on this machine; the store is served on port 0."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--nnodes={nnodes}"]
    if nnodes != "1":  # elastic: a c10d rendezvous, whose store the agent serves on port 0
        # (last_call_timeout: how long the agent waits for more nodes once the fewest have joined)
        cmd += ["--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0", "--rdzv-id=rnnkit-test",
                "--rdzv-conf=last_call_timeout=1"]
    return cmd + [str(a) for a in args]
