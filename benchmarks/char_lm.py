"""Character-level LM benchmarks: training throughput against a hand-written PyTorch loop,
generation speed, thread count, and the 10-minute quality run.

    RNNKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/char_lm.py            # throughput, generation, threads
    RNNKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/char_lm.py quality    # the 10-minute preset run + PNG

Every comparison runs its candidates in the same process, alternating, several rounds,
and reports the median of each and their ratio: on a shared machine only ratios mean much.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnkit import native  # noqa: E402
from rnnkit.data import load_corpus  # noqa: E402
from rnnkit.lm.charlm import CharLM, CharLMConfig  # noqa: E402
from rnnkit.lm.stream_train import train  # noqa: E402
from rnnkit.lm.streams import StreamBatcher, Vocab  # noqa: E402


# ------------------------------------------------------------ the reference
class HandLM(nn.Module):
    """What one writes by hand: nn.Embedding -> nn.LSTM -> nn.Linear."""

    def __init__(self, vocab, embedding, hidden, layers):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


def hand_loop(ids, steps, batch, seq, hidden, layers, embedding, lr=3e-3, clip=1.0, warmup=5) -> float:
    """chars/s of a plain truncated-BPTT loop over the same streams (no logging, no evaluation),
    timed after ``warmup`` steps as the engine's figure is."""
    torch.manual_seed(0)
    batcher = StreamBatcher(ids, batch, seq)
    model = HandLM(int(ids.max()) + 1, embedding, hidden, layers)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0, fused=True)
    state, pos = None, 0
    for i in range(steps):
        if i == warmup:
            t0 = time.perf_counter()
        x, y = batcher.batch(pos)
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        state = tuple(s.detach() for s in state)
        pos += seq
        loss.item()
    return (steps - warmup) * batch * seq / (time.perf_counter() - t0)


def engine_run(corpus, steps, batch, seq, hidden, layers, embedding, log_every=5) -> float:
    """chars/s of rnnkit's `train` itself, from its metrics.jsonl (first logged step to last, wall clock)."""
    out = Path(tempfile.mkdtemp(prefix="charlm-bench-"))
    try:
        train(out / "run", corpus=corpus, steps=steps, batch_size=batch, seq_len=seq, hidden=hidden, layers=layers,
              embedding=embedding, lr=3e-3, warmup_steps=0, schedule="constant", eval_every=10 ** 9,
              log_every=log_every, progress="none", val_fraction=0.01)
        recs = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
        a, b = recs[0], recs[-1]  # logged in the loop: the final evaluation comes after
        return (b["step"] - a["step"]) * batch * seq / (b["elapsed_s"] - a["elapsed_s"])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bench_throughput(args, corpus_ids) -> dict:
    """rnnkit's loop against the hand-written one, alternating (and swapping which goes first)
    round by round; the figure is the median of the per-round ratios."""
    results = {}
    for hidden, layers in ((512, 1), (512, 2)):
        eng, hand = [], []
        for r in range(args.rounds):
            runs = [("eng", lambda: engine_run(args.corpus_path, args.steps, 32, 128, hidden, layers, 64)),
                    ("hand", lambda: hand_loop(corpus_ids, args.steps, 32, 128, hidden, layers, 64))]
            for name, run in runs if r % 2 == 0 else runs[::-1]:
                (eng if name == "eng" else hand).append(run())
        ratios = [e / h for e, h in zip(eng, hand)]
        ratio = statistics.median(ratios)
        results[f"{layers}x{hidden}"] = {"rnnkit": statistics.median(eng), "hand": statistics.median(hand),
                                         "ratio": ratio, "ratios": ratios}
        print(f"training {layers}x{hidden} LSTM, batch 32 x seq 128: rnnkit {statistics.median(eng):,.0f} chars/s, "
              f"hand-written {statistics.median(hand):,.0f} chars/s (medians); median per-round ratio {ratio:.3f} "
              f"(rounds: {', '.join(f'{x:.3f}' for x in ratios)})", flush=True)
    return results


# --------------------------------------------------------------- generation
#: Generation candidates: label -> (precision, engine). "fast" is rnnkit.lm.fastgen.FastLSTM
#: (what `generate` uses by default for LSTMs on the CPU), "torch" the per-token torch step.
GEN_CANDIDATES = {
    "fast fp32": ("fp32", "fast"), "fast fp32, numpy step": ("fp32", "fast"),
    "fast int8": ("int8", "fast"), "fast fp16": ("fp16", "fast"),
    "torch fp32": ("fp32", "torch"), "torch fp16": ("fp16", "torch"), "torch int8": ("int8", "torch"),
}


def _generation_rate(model, n, precision, engine="auto", kernel="auto"):
    """(chars/s over n chars, per-char times of each 100-char block) for one generation run."""
    model.fast_stepper = functools.partial(CharLM.fast_stepper, model, kernel=kernel)
    g = torch.Generator().manual_seed(0)
    stamps = []
    t0 = time.perf_counter()
    for i, _tok in enumerate(model.generate(list(range(20)), n, 0.8, generator=g, precision=precision,
                                            engine=engine), 1):
        if i % 100 == 0:
            stamps.append(time.perf_counter())
    total = time.perf_counter() - t0
    return n / total, [(b - a) / 100 for a, b in zip(stamps, stamps[1:])]  # block k: chars 100k+1 .. 100(k+1)


def bench_generation(args) -> dict:
    """Single-stream sampling speed (batch of one, temperature 0.8) of a 2x512 LSTM (embedding 64,
    vocab 65; random weights: speed does not depend on them), every engine and precision
    alternating within each round.

    "fast fp32" is the default single-stream step: C (`rnnkit.native`) where it can be built;
    "numpy step" rows force the numpy step. Threads: OpenMP's for the C step, OpenBLAS's for
    the numpy one, torch's for the torch steps (all set to the same count).

    The fast engine generates ``--gen-chars`` (10,000) characters a run, the torch steps
    ``--old-chars`` (2,000: they are 10x slower). Per-character cost early (chars 100-1,100)
    and late (the last 1,000) is given as the median and the fastest 100-character block of
    each range over all rounds: the fastest block is the one least disturbed by other jobs."""
    from rnnkit.lm import fastgen

    torch.manual_seed(0)
    model = CharLM(CharLMConfig(vocab_size=65, layers=2, hidden=512, embedding=64)).eval()
    candidates = dict(GEN_CANDIDATES)
    default_threads = fastgen.blas_threads() or os.cpu_count()  # OpenBLAS's own choice: all cores
    if default_threads > 1:  # also the fp32 step on one thread
        candidates["fast fp32, 1 thread"] = ("fp32", "fast")
        candidates["fast fp32, numpy step, 1 BLAS thread"] = ("fp32", "fast")
    raw = {label: [] for label in candidates}
    torch_threads = torch.get_num_threads()
    print(f"native step: {fastgen.FastLSTM(model).kernel} ({native.unavailable() or 'built'})", flush=True)
    for _ in range(args.rounds):
        for label, (precision, engine) in candidates.items():  # alternate within each round
            threads = 1 if "1 thread" in label or "1 BLAS thread" in label else default_threads
            fastgen.set_blas_threads(threads)
            torch.set_num_threads(threads)  # the C step's OpenMP threads, and the torch steps'
            n = args.gen_chars if engine == "fast" else args.old_chars
            kernel = "numpy" if "numpy step" in label else "auto"
            raw[label].append(_generation_rate(model, n, precision, engine, kernel))
    fastgen.set_blas_threads(default_threads)
    torch.set_num_threads(torch_threads)
    model.fast_stepper = functools.partial(CharLM.fast_stepper, model)
    out = {"blas_threads": default_threads, "native": native.unavailable() or "built"}
    for label, rows in raw.items():
        n = args.gen_chars if candidates[label][1] == "fast" else args.old_chars
        rate = statistics.median(r[0] for r in rows)
        early = [t * 1e6 for r in rows for t in r[1][:10]]
        late = [t * 1e6 for r in rows for t in r[1][-10:]]
        out[label] = {"chars": n, "chars_per_s": rate, "rates": [r[0] for r in rows],
                      "us_per_char_early": statistics.median(early), "us_per_char_late": statistics.median(late),
                      "best_us_per_char_early": min(early), "best_us_per_char_late": min(late)}
        o = out[label]
        print(f"generation, 2x512 LSTM, {label}: median {rate:,.0f} chars/s over {n:,} chars; per char, median "
              f"(fastest) 100-char block: {o['us_per_char_early']:.0f} ({o['best_us_per_char_early']:.0f}) us at "
              f"chars 100-1,100 vs {o['us_per_char_late']:.0f} ({o['best_us_per_char_late']:.0f}) us at chars "
              f"{n - 1000:,}-{n:,}, late/early {o['us_per_char_late'] / o['us_per_char_early']:.2f}", flush=True)
    base = out["torch fp32"]["chars_per_s"]
    print("  speed-up over the torch fp32 step: " + ", ".join(
        f"{label} {out[label]['chars_per_s'] / base:.1f}x" for label in candidates if label != "torch fp32"))

    # Many samples as one batch (`generate_many`, `rnnkit generate --num-samples N`): chars/s of all together.
    for n_samples in (4, 16):
        rates = {"fast": [], "torch": []}
        for _ in range(args.rounds):
            for engine in rates:
                t0 = time.perf_counter()
                model.generate_many(list(range(20)), args.batch_chars, n_samples, 0.8,
                                    generator=torch.Generator().manual_seed(0), engine=engine)
                rates[engine].append(n_samples * args.batch_chars / (time.perf_counter() - t0))
        out[f"batch of {n_samples}"] = {engine: statistics.median(r) for engine, r in rates.items()}
        print(f"  {n_samples} samples as one batch, {args.batch_chars:,} chars each: fast engine "
              f"{statistics.median(rates['fast']):,.0f} chars/s in all, torch step "
              f"{statistics.median(rates['torch']):,.0f} (medians)", flush=True)

    # The hand-written way: nn.LSTM called on one character at a time (carried state).
    hand = HandLM(65, 64, 512, 2).eval()
    with torch.inference_mode():
        state, tok, m = None, torch.zeros(1, 1, dtype=torch.long), 300
        t0 = time.perf_counter()
        for _ in range(m):
            logits, state = hand(tok, state)
            tok = torch.multinomial(torch.softmax(logits[0, -1] / 0.8, -1), 1).view(1, 1)
        out["nn_lstm_one_char_per_call"] = m / (time.perf_counter() - t0)
    print(f"  nn.LSTM called once per char (same size): {out['nn_lstm_one_char_per_call']:,.0f} chars/s", flush=True)
    if args.model:
        out["teacher_forced_bpc"] = _packed_quality(args)
    return out


@torch.inference_mode()
def _packed_quality(args, chars=3000) -> dict:
    """Bits per character of the validation text's first ``chars`` characters, read through each
    engine's and precision's per-token step (what generation uses)."""
    from rnnkit.lm.stream import StreamLM

    lm = StreamLM.load(args.model)
    model = lm.model
    text = load_corpus("tiny-shakespeare")
    ids = torch.as_tensor(lm.vocab.encode(text[-111_539:][:chars + 1])[0].astype("int64"))
    out = {}
    for label, (precision, engine) in GEN_CANDIDATES.items():
        nll = 0.0
        if engine == "fast":
            fast = model.fast_stepper(precision, "fast")
            fast.load_state(model.initial_state(1))
            for i in range(chars):
                nll -= float(torch.log_softmax(torch.from_numpy(fast.step(int(ids[i]))), -1)[ids[i + 1]])
        else:
            step, state = model.stepper(precision), model.initial_state(1)
            for i in range(chars):
                logits, state = step(ids[i:i + 1], state)
                nll -= float(torch.log_softmax(logits[0], -1)[ids[i + 1]])
        out[label] = nll / chars / 0.6931471805599453
        print(f"  teacher-forced through the {label} step: {out[label]:.4f} bits/char ({chars:,} chars of "
              f"{Path(args.model).name}, {model.config.layers}x{model.config.hidden})")
    return out


# ------------------------------------------------------------------ threads
def bench_threads(args, corpus_ids) -> dict:
    out = {}
    for hidden, layers in ((256, 1), (512, 1)):
        rates = {1: [], 2: []}
        for _ in range(args.rounds):
            for t in (1, 2):
                torch.set_num_threads(t)
                rates[t].append(hand_loop(corpus_ids, 15, 32, 128, hidden, layers, 64, warmup=3))
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        out[f"{layers}x{hidden}"] = {"1": one, "2": two}
        print(f"threads, {layers}x{hidden} training: 1 thread {one:,.0f} chars/s, 2 threads {two:,.0f} chars/s "
              f"({two / one:.2f}x)", flush=True)
    torch.set_num_threads(1)
    g = {1: [], 2: []}
    model = CharLM(CharLMConfig(vocab_size=65, layers=2, hidden=512, embedding=64)).eval()
    for _ in range(args.rounds):
        for t in (1, 2):
            torch.set_num_threads(t)
            t0 = time.perf_counter()
            for _tok in model.generate([0], 1000, generator=torch.Generator().manual_seed(0), engine="torch"):
                pass
            g[t].append(1000 / (time.perf_counter() - t0))
    one, two = statistics.median(g[1]), statistics.median(g[2])
    out["generation 2x512"] = {"1": one, "2": two}
    print(f"threads, 2x512 generation: 1 thread {one:,.0f} chars/s, 2 threads {two:,.0f} chars/s ({two / one:.2f}x)",
          flush=True)
    torch.set_num_threads(1)
    return out


# ------------------------------------------------------------------ quality
def bench_quality(args) -> dict:
    from rnnkit.lm.stream_cli import plot_metrics

    run = Path(args.run_dir)
    if run.exists():
        shutil.rmtree(run)
    t0 = time.perf_counter()
    summary = train(run, preset=args.preset, minutes=args.minutes, progress="lines")
    wall = time.perf_counter() - t0
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["elapsed_s"], r["val_loss"]) for r in recs if "val_loss" in r]
    png = plot_metrics({args.preset: run}, args.png, title=f"{args.preset}: tiny-shakespeare, CPU, "
                                                            f"{torch.get_num_threads()} thread(s)")
    rate = statistics.median(r["chars_per_s"] for r in recs)
    print(f"quality: preset {args.preset}, {args.minutes:g} min budget: final validation loss "
          f"{summary['val_loss']:.4f} nats/char (best {summary['best_val_loss']:.4f}), {summary['step']:,} steps, "
          f"median {rate:,.0f} chars/s, wall {wall:.0f}s (setup included); curve -> {png}")
    for t, v in curve:
        print(f"  {t / 60:5.2f} min  val {v:.4f}")
    return {"summary": summary, "curve": curve, "median_chars_per_s": rate, "wall_s": wall}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="*", default=["throughput", "generation", "threads"],
                   choices=["throughput", "generation", "threads", "quality"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=25, help="training steps per throughput round")
    p.add_argument("--gen-chars", type=int, default=10_000, help="characters per fast-engine generation run")
    p.add_argument("--old-chars", type=int, default=2_000, help="characters per torch-step generation run")
    p.add_argument("--batch-chars", type=int, default=1_000, help="characters per sample in the batched runs")
    p.add_argument("--model", help="a trained tiny-shakespeare run: bits/char through each precision's step")
    p.add_argument("--preset", default="shakespeare-10min")
    p.add_argument("--minutes", type=float, default=10.0, help="quality run budget")
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "bench-shakespeare-10min"))
    p.add_argument("--png", default=str(ROOT / "docs" / "char-lm-loss-vs-time.png"))
    p.add_argument("--json", help="write all figures to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    text = load_corpus("tiny-shakespeare")
    tmp = Path(tempfile.mkdtemp(prefix="charlm-corpus-"))
    args.corpus_path = str(tmp / "tiny-shakespeare.txt")
    Path(args.corpus_path).write_text(text)  # a plain path: the engine reads it like any file
    ids, _ = Vocab.build(text, "char").encode(text)
    load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else "?"
    print(f"torch {torch.__version__}, load average {' '.join(load)}", flush=True)
    results = {}
    try:
        if "throughput" in args.what:
            results["throughput"] = bench_throughput(args, ids)
        if "generation" in args.what:
            results["generation"] = bench_generation(args)
        if "threads" in args.what:
            results["threads"] = bench_threads(args, ids)
        if "quality" in args.what:
            results["quality"] = bench_quality(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
