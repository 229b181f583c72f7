"""``rnnkit export RUN --format onnx OUT.onnx``: a run of any engine as an ONNX file.

    rnnkit export runs/shakes --format onnx shakes.onnx            # streaming LM: one-step graph
    rnnkit export runs/dates --format onnx dates.onnx              # seq2seq: greedy translation
    rnnkit export runs/sonnets --format onnx sonnets.onnx          # n-gram word run: next-word model

What each graph computes and what its metadata holds: `rnnkit.export`.
"""
from __future__ import annotations

from .checks import int_range


def register(sub) -> None:
    from ..export.runs import FORMATS

    p = sub.add_parser("export", help="export a run's model to ONNX (any ONNX runtime can then generate)",
                       description="Write a run's model as an ONNX file, atomically, with its vocabulary in the "
                                   "file's metadata (key 'rnnkit'). Streaming LMs: one step, token + state in, "
                                   "logits + state out; seq2seq: the greedy translation; n-gram word runs: the "
                                   "next-word model on the run's window.")
    p.add_argument("run", metavar="RUN", help="run folder (rnnkit lm train / rnnkit train / rnnkit seq2seq train)")
    p.add_argument("out", metavar="OUT", help="the ONNX file to write")
    p.add_argument("--format", required=True, choices=FORMATS, help="export format (onnx)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="streaming runs: which checkpoint (default best; last when there is no best yet)")
    p.add_argument("--opset", type=int_range(14, 20), metavar="N", help="ONNX opset, 14..20 (default 17)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..export.runs import export_run
    from .checks import check_writable

    check_writable("OUT", args.out)
    meta = export_run(args.run, args.out, args.format, args.checkpoint, args.opset)
    print(f"wrote {args.out}: {meta['kind']} graph of {args.run}", file=sys.stderr)
    return 0
