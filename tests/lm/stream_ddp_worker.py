"""Worker for the data-parallel streaming-LM tests: ``torchrun ... stream_ddp_worker.py OUT OPTIONS_JSON [flags]``.

Calls `rnnkit.lm.stream_train.train` with the JSON options; each process writes to
``OUT/rank<r>`` (so the tests can see that only rank 0 writes, and that resuming needs no
shared disk). Flags inject what a real run meets: a stop at a step (``on_log``), a rank
that dies, a rank launched with different options; ``--reference`` first trains the same
run uninterrupted, to compare with."""
import argparse
import json
import os

import torch

from rnnkit.lm import stream_train


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("options", help="train() keyword options as JSON")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--reference", help="first train the same run uninterrupted into REFERENCE/rank<r>")
    p.add_argument("--stop-at", type=int, help="on_log asks to stop at this step (rank 0 decides)")
    p.add_argument("--die-at", type=int, help="rank 1 exits abruptly when fetching the batch of this step")
    p.add_argument("--rank1", help="JSON options that override the others on rank 1 (a misconfigured launch)")
    args = p.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    options = json.loads(args.options)
    if args.rank1 and rank == 1:
        options.update(json.loads(args.rank1))
    if args.die_at is not None and rank == 1:
        stream_train.StreamBatcher = _dying_batcher(args.die_at)
    torch.set_num_threads(1)
    if args.reference:  # in the same launch: a launch costs seconds of imports
        stream_train.train(os.path.join(args.reference, f"rank{rank}"), progress="none", **options)
    on_log = (lambda rec: rec["step"] == args.stop_at) if args.stop_at else None
    summary = stream_train.train(os.path.join(args.out, f"rank{rank}"), resume=args.resume, progress="none",
                                 on_log=on_log, **options)
    print(json.dumps({"rank": rank, **summary}))


def _dying_batcher(step: int):
    class Dying(stream_train.StreamBatcher):
        calls = 0

        def batch(self, pos, device=None):
            if self.world > 1:  # the training streams (validation cuts its own)
                Dying.calls += 1
                if Dying.calls == step:
                    os._exit(3)
            return super().batch(pos, device)

    return Dying


if __name__ == "__main__":
    main()
