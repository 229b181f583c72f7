"""``rnnkit bench``: train matched models that differ only in their sequence layer, side by side.

    rnnkit bench --quick
    rnnkit bench --cells dense,conv1d,lstm,gru,mingru --seq-len 32,128,512,2048 --threads 1 \\
        --json bench.json --plot bench.png

Prints a table per candidate and length (samples/s, ms/step, parameters, peak
memory, time relative to Dense), then the verdicts on the reference notes'
claims. The command only parses options and calls `rnnkit.bench.run`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .checks import check_writable, device_name, non_negative_int, positive_int, seed_int


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure training cost of Dense, Conv1D, SimpleRNN, GRU, LSTM, MinGRU, MinLSTM side by side",
        description="Train classifiers of matched size (same embedding, hidden width, sequence length and batch) "
                    "that differ only in the sequence layer, alternating candidates in rounds, and check the notes' "
                    "runtime claims (LSTM ~ 2x GRU, LSTM ~ 10x Dense, CNN ~ Dense) on this machine.",
    )
    p.add_argument("--cells", help="comma-separated candidates (default: all): dense, conv1d, simplernn, gru, lstm, "
                                   "mingru, minlstm and bi<rnn> forms such as bilstm")
    p.add_argument("--seq-len", help="sequence length(s), comma-separated for a sweep, e.g. 32,128,512,2048 (default 128)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default 32)")
    p.add_argument("--hidden", type=positive_int, help="width of every sequence layer, per direction (default 64)")
    p.add_argument("--embedding", type=positive_int, help="embedding width (default 32)")
    p.add_argument("--steps", type=positive_int, help="timed training steps per candidate and length (default 30)")
    p.add_argument("--warmup", type=non_negative_int, help="untimed steps per candidate first (default 3)")
    p.add_argument("--rounds", type=positive_int, help="alternating rounds the steps are spread over (default 5)")
    p.add_argument("--device", default="auto", type=device_name, help="auto (CUDA when present), cpu, cuda, cuda:1 ... (default auto)")
    p.add_argument("--threads", type=non_negative_int, default=1,
                   help="torch intra-op threads (default 1: steady timings of small models; 0 keeps torch's setting)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--quick", action="store_true", help="all candidates, length 64, a few steps: under a minute on 2 cores")
    p.add_argument("--json", metavar="PATH", help="write the results and verdicts as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a PNG: bars for one length, lines for a sweep")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import bench
    from ..utils import atomic_write_text

    check_writable("--json", args.json)
    check_writable("--plot", args.plot)
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise ValueError(f"--plot writes a PNG file; got {args.plot!r} (use a .png name)")
    options = dict(bench.QUICK) if args.quick else {}
    given = {"seq_lens": args.seq_len, "batch_size": args.batch_size, "hidden": args.hidden,
             "embedding": args.embedding, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds}
    options.update({k: v for k, v in given.items() if v is not None})
    threads = None if args.threads == 0 else args.threads
    result = bench.run(cells=args.cells, device=args.device, threads=threads, seed=args.seed,
                       progress=sys.stderr, **options)
    print(bench.describe(result))
    print()
    print(bench.results_table(result))
    print()
    print(bench.verdict_table(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwrote {args.json}")
    if args.plot:
        print(f"wrote {bench.plot(result, args.plot)}")
    return 0
