"""``rnnkit serve``: the batched step against its arithmetic limit, and throughput, latency,
overhead and memory through the server (issue #18's targets), side by side in one run.

    .venv/bin/python benchmarks/serve.py            # short: about 40 s, fewer streams and tokens
    .venv/bin/python benchmarks/serve.py --full     # the figures of benchmarks/README.md (~4 min)

The model is a 2x512 LSTM `CharLM` (65 tokens, embedding 64, random weights: a step's cost does
not depend on their values), saved as a streaming run folder and served by a real
``rnnkit serve`` process on loopback with ``--threads`` (default 1; the machine is shared).

1. Limit: the two matrix products of one step alone (NumPy/OpenBLAS, ``--threads`` threads),
   against `BatchLSTM`'s whole step (gates, head, plain sampling) at batch 1, 64 and 256;
   the two alternate, median of ``--rounds`` rounds.
2. Aggregate chars/s through the server with 1, 4, 16, 64 and 256 concurrent streams (each
   client loops on requests of 1,000 tokens (short: 200) that do not stream; 64 also with SSE).
3. Time to first token: an SSE request on the idle server, until its first text chunk
   (median of 20), against the prime alone (`CharLM.prime`) in this process.
4. Overhead: 64 streams through the server against `BatchLSTM` stepping 64 rows directly
   (measured just before and after), as ``1 - server / direct``.
5. Memory: the server's resident set with 64 SSE streams open, after 100 and after 10,000
   tokens each (short: 16 streams, 100 and 2,000), per stream above the idle server's.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnkit.lm import checkpoint as ckpt  # noqa: E402
from rnnkit.lm.batchgen import BatchLSTM  # noqa: E402
from rnnkit.lm.charlm import CharLM, CharLMConfig  # noqa: E402
from rnnkit.lm.fastgen import set_blas_threads  # noqa: E402
from rnnkit.lm.streams import Vocab  # noqa: E402
from rnnkit.serve.server import spawn  # noqa: E402

TOKENS = [chr(c) for c in range(32, 97)]  # 65 printable characters


def make_run(folder: Path) -> CharLM:
    """A 2x512 LSTM streaming run folder (config.json + best.safetensors) with random weights."""
    torch.manual_seed(0)
    config = CharLMConfig(vocab_size=len(TOKENS), layers=2, hidden=512, embedding=64)
    model = CharLM(config).eval()
    folder.mkdir(parents=True)
    vocab = Vocab.from_dict({"level": "char", "tokens": TOKENS})
    ckpt.save_checkpoint(folder / "best.safetensors", ckpt.pack("model", model.state_dict()),
                         {"model": config.to_dict(), "vocab": vocab.to_dict(), "progress": {"step": 0}})
    (folder / "config.json").write_text(json.dumps({"format": "rnnkit-run/1", "engine": "stream", "level": "char",
                                                    "model": config.to_dict()}))
    return model


# ------------------------------------------------------------ 1. the limit
def products_rate(batch: BatchLSTM, rows: int, steps: int) -> float:
    """Tokens/s of the step's matrix products alone (one per layer: hidden [and input] x gates)."""
    xs = [np.random.default_rng(0).standard_normal((rows, w.shape[1])).astype(np.float32) for w in batch.weights]
    outs = [np.empty((rows, w.shape[0]), np.float32) for w in batch.weights]
    wts = [np.ascontiguousarray(w.T) for w in batch.weights]
    t0 = time.perf_counter()
    for _ in range(steps):
        for x, w, out in zip(xs, wts, outs):
            np.matmul(x, w, out=out)
    return rows * steps / (time.perf_counter() - t0)


def step_rate(model: CharLM, batch: BatchLSTM, rows: int, steps: int) -> float:
    """Tokens/s of `BatchLSTM` with ``rows`` streams: plain sampling, then the step."""
    while batch.n:
        batch.remove(batch.n - 1)
    _, state = model.prime([1, 2, 3])
    for _ in range(rows):
        batch.add(state)
    plain, temps = np.ones(rows, bool), np.ones(rows)
    uniforms = np.random.default_rng(1).random((steps, rows))
    tokens = np.zeros(rows, np.int32)
    t0 = time.perf_counter()
    for i in range(steps):
        batch.sample_plain(plain, uniforms[i], temps, tokens)
        batch.step(tokens)
    return rows * steps / (time.perf_counter() - t0)


# ------------------------------------------------------------ the server
def start_server(run: Path, threads: int) -> tuple[subprocess.Popen, str]:
    return spawn([run, "--port", "0", "--threads", threads, "--max-tokens", "100000", "--max-streams", "512"],
                 cwd=ROOT)


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def aggregate(url: str, streams: int, tokens: int, seconds: float, stream: bool = False) -> float:
    """Chars/s over all of ``streams`` clients, each looping on ``tokens``-token requests."""
    import httpx

    total = 0
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=streams + 8)) as c:
        end = time.perf_counter() + seconds

        async def client(i: int) -> None:
            nonlocal total
            seed = i
            while time.perf_counter() < end:
                body = {"model": "lstm", "prompt": "ROMEO:", "max_tokens": tokens, "seed": seed, "stream": stream}
                seed += 1000
                if stream:  # the client reads bytes and parses only the usage chunk at the end
                    tail = b""
                    async with c.stream("POST", "/v1/completions", json=body) as r:
                        async for data in r.aiter_raw():
                            tail = (tail + data)[-4096:]
                    usage = next(x for x in tail.split(b"\n\n") if b'"usage"' in x)
                    total += json.loads(usage[6:])["usage"]["completion_tokens"]
                else:
                    r = await c.post("/v1/completions", json=body)
                    r.raise_for_status()
                    total += r.json()["usage"]["completion_tokens"]

        t0 = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(streams)))
        return total / (time.perf_counter() - t0)


async def first_token(url: str, times: int) -> float:
    import httpx

    out = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        for i in range(times):
            t0 = time.perf_counter()
            async with c.stream("POST", "/v1/completions", json={"model": "lstm", "prompt": "ROMEO: what is this",
                                                                  "max_tokens": 5, "seed": i, "stream": True}) as r:
                lines = r.aiter_lines()
                async for line in lines:
                    if line.startswith("data: {") and '"text": ""' not in line:
                        out.append(time.perf_counter() - t0)
                        break
                async for _ in lines:
                    pass
    return statistics.median(out)


async def memory(url: str, pid: int, streams: int, marks: tuple[int, int]) -> dict:
    """RSS (MiB) when every one of ``streams`` open SSE streams has passed each mark of tokens."""
    import httpx

    counts = [0] * streams
    seen: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=streams + 8)) as c:
        async def client(i):
            body = {"model": "lstm", "prompt": "ROMEO:", "max_tokens": 2 * marks[1], "seed": i, "stream": True}
            async with c.stream("POST", "/v1/completions", json=body) as r:
                async for data in r.aiter_raw():
                    # chunks, not characters: a chunk holds one token or more, so a mark is passed late, never early
                    counts[i] += data.count(b'"finish_reason": null')
                    for mark in marks:
                        if mark not in seen and min(counts) >= mark:
                            seen[mark] = rss_mib(pid)

        await asyncio.gather(*(client(i) for i in range(streams)))
    return seen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="every figure at full size (~4 min)")
    p.add_argument("--threads", type=int, default=1, help="threads of the step, numpy and the server (default 1)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    set_blas_threads(args.threads)
    full = args.full
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "lstm"
        model = make_run(run)
        batch = BatchLSTM(model, 256, threads=args.threads)
        print(f"2x512 LSTM, {len(TOKENS)} tokens, {args.threads} thread(s), batched step kernel: {batch.kernel}")
        print("\n1. the step against its matrix products (tokens/s, median of rounds)")
        print("| batch | matrix products only | batched step | step / products |\n|---|---|---|---|")
        direct64 = []
        for rows in (1, 64, 256):
            steps = max(2000 // rows, 40) * (3 if full else 1)
            prod, step = [], []
            for _ in range(args.rounds):
                prod.append(products_rate(batch, rows, steps))
                step.append(step_rate(model, batch, rows, steps))
            if rows == 64:
                direct64 += step
            mp, ms = statistics.median(prod), statistics.median(step)
            print(f"| {rows} | {mp:,.0f} | {ms:,.0f} | {ms / mp:.0%} |", flush=True)

        proc, url = start_server(run, args.threads)
        try:
            asyncio.run(aggregate(url, 4, 20, 0.5))  # warm: the server's first requests build its pools
            idle = rss_mib(proc.pid)
            model.prime([1] * 19)
            prime_s = min(_time(lambda: model.prime([1] * 19)) for _ in range(10))
            ttft = asyncio.run(first_token(url, 20))
            print(f"\n3. time to first token (idle server, SSE, prime of 19 chars): {ttft * 1000:.1f} ms "
                  f"(the prime alone, in process: {prime_s * 1000:.1f} ms)")
            print("\n2. aggregate chars/s through the server (requests that do not stream)")
            print("| streams | chars/s | x one stream |\n|---|---|---|")
            rates = {}
            tokens, seconds = (1000, 5.0) if full else (200, 1.5)
            for streams in ((1, 4, 16, 64, 256) if full else (1, 4, 16, 64)):
                rates[streams] = asyncio.run(aggregate(url, streams, tokens, seconds))
                print(f"| {streams} | {rates[streams]:,.0f} | {rates[streams] / rates[1]:.2f}x |", flush=True)
            sse = asyncio.run(aggregate(url, 64, tokens, seconds, stream=True))
            print(f"| 64, SSE | {sse:,.0f} | {sse / rates[1]:.2f}x |")
            direct64.append(step_rate(model, batch, 64, 200 * (3 if full else 1)))
            direct = statistics.median(direct64)
            print(f"\n4. 64 streams: server {rates[64]:,.0f} chars/s (SSE {sse:,.0f}) against the batched step "
                  f"directly {direct:,.0f} tokens/s: overhead {1 - rates[64] / direct:.0%} (SSE {1 - sse / direct:.0%})")
            streams, marks = (64, (100, 10_000)) if full else (16, (100, 2_000))
            seen = asyncio.run(memory(url, proc.pid, streams, marks))
            per = {m: (seen[m] - idle) * 1024 / streams for m in marks}
            print(f"\n5. resident set: idle {idle:.1f} MiB; {streams} SSE streams open: "
                  + ", ".join(f"after {m:,} tokens {seen[m]:.1f} MiB ({per[m]:.1f} KiB per stream)" for m in marks))
        finally:
            proc.terminate()
            proc.wait(30)
    return 0


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
