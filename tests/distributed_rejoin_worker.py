"""Worker for tests/test_distributed.py: join the process group, run a DDP step, leave, and
join again, three times, rank SLEEPER arriving 2 s late at every join after the first
(``python WORKER SLEEPER``, with torchrun's environment)."""
import os
import sys
import time

import torch

from rnnkit import distributed


def main():
    rank, sleeper = int(os.environ["RANK"]), int(sys.argv[1])
    for join in range(3):
        if rank == sleeper and join:
            time.sleep(2.0)  # the other process joins first and would read this one's old address
        assert distributed.setup(torch.device("cpu"), timeout_s=20)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 3))
        model(torch.ones(2, 3)).sum().backward()
        total = distributed.all_reduce_sum(torch.tensor([float(rank + 1)]))
        assert float(total) == 3.0, float(total)
        del model
        distributed.shutdown()
    print(f"rank {rank}: 3 joins", flush=True)


if __name__ == "__main__":
    main()
