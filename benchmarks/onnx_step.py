"""ONNX export: onnxruntime's one-step latency against rnnkit's fast step (`rnnkit.lm.fastgen`).

    .venv/bin/python benchmarks/onnx_step.py                    # 2x512 LSTM, batch 1 and 64, ~20 s
    .venv/bin/python benchmarks/onnx_step.py --steps 2000 --rounds 7

A `CharLM` (LSTM, ``--layers`` x ``--hidden``, 65 tokens, embedding 64; random weights: the
cost of a step does not depend on their values) is exported with `rnnkit.export.export_lm_step`
and stepped token by token from the same start: by ``FastLSTM`` (C for one stream, numpy for a
batch) and by an onnxruntime session fed the packed state it returned, as a user's loop does
(the run call, its inputs and outputs included). Both get the same number of threads
(``--threads``, default 1: the machine is shared). Candidates alternate within each round;
the median of the rounds' per-step times is reported, and their ratio. The logits of both
after the timed steps are compared (they must agree within 1e-4).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnkit.export import export_lm_step  # noqa: E402
from rnnkit.lm import fastgen  # noqa: E402
from rnnkit.lm.charlm import CharLM, CharLMConfig  # noqa: E402


def fast_steps(fast, tokens: np.ndarray) -> tuple[float, np.ndarray]:
    """Seconds per step of ``fast`` over ``tokens (steps, batch)``, and the last logits."""
    single = fast.batch is None
    fast.load_state([[torch.zeros(tokens.shape[1], fast.hidden)] * 2 for _ in range(fast.layers)])
    t0 = time.perf_counter()
    for row in tokens:
        logits = fast.step(int(row[0]) if single else row)
    return (time.perf_counter() - t0) / len(tokens), np.array(logits).reshape(tokens.shape[1], -1)


def onnx_steps(session, state_shape, tokens: np.ndarray) -> tuple[float, np.ndarray]:
    state = np.zeros((tokens.shape[1], *state_shape), np.float32)
    t0 = time.perf_counter()
    for row in tokens:
        logits, state = session.run(None, {"token": row, "state": state})
    return (time.perf_counter() - t0) / len(tokens), logits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batches", default="1,64", help="comma-separated batch sizes (default 1,64)")
    parser.add_argument("--steps", type=int, default=300, help="steps a candidate a round (default 300)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import onnxruntime as ort

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    fastgen.set_blas_threads(args.threads)
    model = CharLM(CharLMConfig(vocab_size=65, layers=args.layers, hidden=args.hidden, embedding=64)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lm.onnx"
        export_lm_step(model, {"level": "char", "tokens": [chr(32 + i) for i in range(65)]}, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    state_shape = session.get_inputs()[1].shape[1:]
    rng = np.random.default_rng(0)
    print(f"{args.layers}x{args.hidden} LSTM, {args.threads} thread(s), {args.steps} steps x {args.rounds} rounds; "
          f"onnxruntime {ort.__version__}, torch {torch.__version__}")
    print("| batch | rnnkit fast step | onnxruntime step | onnxruntime / fast | tokens/s fast | tokens/s onnxruntime |")
    print("|---|---|---|---|---|---|")
    for batch in (int(b) for b in args.batches.split(",")):
        fast = fastgen.FastLSTM(model, batch=None if batch == 1 else batch)
        tokens = rng.integers(0, 65, (args.steps, batch))
        times = {"fast": [], "onnx": []}
        for _ in range(args.rounds):
            t, fast_logits = fast_steps(fast, tokens)
            times["fast"].append(t)
            t, onnx_logits = onnx_steps(session, state_shape, tokens)
            times["onnx"].append(t)
        gap = float(np.abs(fast_logits - onnx_logits).max())
        if gap > 1e-4:
            raise SystemExit(f"batch {batch}: the two steps disagree (max logit difference {gap:.2e})")
        f, o = statistics.median(times["fast"]), statistics.median(times["onnx"])
        label = f"{batch} ({fast.kernel})"
        print(f"| {label} | {f * 1e6:,.0f} us | {o * 1e6:,.0f} us | {o / f:.2f}x | {batch / f:,.0f} | {batch / o:,.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
