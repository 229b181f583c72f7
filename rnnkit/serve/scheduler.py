"""Generating completions: concurrent requests on one LSTM model stepped together as one batch.

`BatchScheduler` owns a `rnnkit.lm.batchgen.BatchLSTM` and one worker thread that loops:
admit the streams whose prime has been read (`BatchLSTM.add`), sample a token for every row,
hand each request its tokens (``loop.call_soon_threadsafe`` into its asyncio queue), drop the
rows of finished or cancelled requests (highest row first: `remove` moves the last row into the
freed one), step the batch. Each request keeps its own settings and random generator, drawn as
`CharLM.generate_many` draws them, and the C step gives a stream the same logits in any row of
any batch, so choice k of a request is the text of sample k of ``rnnkit lm generate
--num-samples n --seed S --length max_tokens`` (and with n = 1, of ``rnnkit lm generate``):

- plain sampling (no top-k/top-p, temperature > 0): the ``(n, max_tokens)`` uniforms are drawn
  up front from the request's generator; choice k reads row k (`BatchLSTM.sample_plain`);
- top-k / top-p / greedy: `rnnkit.lm.sampling.sample_next` on the request's n rows together,
  with its generator, once per step: so a request's rows stay in the batch until all its
  choices are done, a choice cut by a stop sequence just stops being sent.

`SoloGenerator` serves what the batched step cannot (GRU/RNN cells, n-gram word runs, no C
compiler): one request at a time per pool thread, through the very calls of the CLI.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..lm.sampling import sample_next
from .text import ChoiceText


@dataclass(frozen=True)
class Completion:
    """A checked completion request (see `rnnkit.serve.schema.completion`)."""

    prompt: str
    max_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int
    n: int
    stop: tuple[str, ...]
    stream: bool

    @property
    def plain(self) -> bool:
        """Inverse-CDF sampling on uniforms drawn up front (as `CharLM.generate`)."""
        return self.top_k is None and self.top_p is None and self.temperature != 0


class Job:
    """One completion request in flight: ``n`` choices, their texts, and the asyncio queue its
    handler reads. Each queue item is ``(deltas, finishes, error)``: ``deltas`` ``[(k, text)]``,
    ``finishes`` ``[(k, reason)]`` with reason ``"length"`` or ``"stop"``, ``error`` None or a
    message (the job is over)."""

    def __init__(self, request: Completion, loop: asyncio.AbstractEventLoop, prime_ids: list[int] | None = None,
                 prev: int | None = None):
        self.request, self.loop, self.prime_ids = request, loop, prime_ids
        self.queue: asyncio.Queue = asyncio.Queue()
        n = request.n
        self.texts = [ChoiceText(list(request.stop)) for _ in range(n)]
        self.finish: list[str | None] = [None] * n
        self.counts, self.prev, self.rows = [0] * n, [prev] * n, [0] * n
        self.generated = 0  # tokens generated over all choices (usage.completion_tokens)
        self.cancelled = False  # set by the handler (disconnect, timeout); the worker drops the job
        self.step = 0
        self._held: list[list[str]] = [[] for _ in range(n)]  # text of a request that does not stream
        self._ended: list = []
        self.logits = self.state = self.uniforms = self.generator = None

    @property
    def done(self) -> bool:
        return all(f is not None for f in self.finish)

    def cancel(self) -> None:
        self.cancelled = True

    def push(self, k: int, piece: str, deltas: list, finishes: list) -> None:
        """Choice ``k`` generated one token whose text is ``piece``: what becomes final goes into
        ``deltas``, an end into ``finishes``."""
        if self.finish[k] is not None:
            return
        self.counts[k] += 1
        self.generated += 1
        out, stopped = self.texts[k].add(piece)
        reason = "stop" if stopped else "length" if self.counts[k] >= self.request.max_tokens else None
        if reason == "length":
            out += self.texts[k].flush()
        if out:
            deltas.append((k, out))
        if reason:
            self.finish[k] = reason
            finishes.append((k, reason))

    def emit(self, deltas: list, finishes: list, error: str | None = None) -> None:
        """Hand a step's results to the handler's event loop (from any thread)."""
        item = self.item(deltas, finishes, error)
        if item is not None:
            try:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def item(self, deltas: list, finishes: list, error: str | None = None) -> tuple | None:
        """The queue item for a step's results, or None when there is nothing to send yet: a
        request that does not stream gets its text once, when every choice is done (or on an error)."""
        if not self.request.stream:
            for k, text in deltas:
                self._held[k].append(text)
            self._ended += finishes
            if not (self.done or error):
                return
            deltas = [(k, "".join(parts)) for k, parts in enumerate(self._held) if parts]
            finishes, self._held, self._ended = self._ended, [[] for _ in self._held], []
        return (deltas, finishes, error) if deltas or finishes or error else None

    def end_empty(self) -> None:
        """``max_tokens`` 0: every choice ends at once, with no text."""
        finishes = [(k, "length") for k in range(self.request.n)]
        self.finish = ["length"] * self.request.n
        self.emit([], finishes)


def _put_all(items: list) -> None:
    for queue, item in items:
        queue.put_nowait(item)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class BatchScheduler:
    """Completions of one float32 LSTM `StreamLM` stepped together; up to ``capacity`` choices
    (rows) at once. ``on_step(rows, tokens)`` is called after every step (metrics)."""

    def __init__(self, lm, batch, prime_threads: int = 2):
        self.lm, self.batch, self.vocab = lm, batch, lm.vocab
        self.on_step: Callable[[int, int], None] | None = None
        self._pending: list[Job] = []
        self._jobs: list[Job] = []
        self._owner: list[tuple[Job, int]] = []  # row -> (job, choice)
        self._tokens = np.zeros(batch.capacity, np.int32)
        self._plain = np.zeros(batch.capacity, bool)
        self._u = np.zeros(batch.capacity, np.float64)
        self._t = np.ones(batch.capacity, np.float64)
        self._cond = threading.Condition()
        self._closing = False
        self._primer = ThreadPoolExecutor(prime_threads, thread_name_prefix="rnnkit-prime")
        self._thread = threading.Thread(target=self._loop, name="rnnkit-batch", daemon=True)
        self._thread.start()

    @property
    def rows(self) -> int:
        return self.batch.n

    async def start(self, job: Job) -> None:
        """Read the prime (in a pool thread), draw the request's uniforms, queue it: it joins
        the batch at the worker's next step."""
        if job.request.max_tokens == 0:
            job.end_empty()
            return
        await asyncio.get_running_loop().run_in_executor(self._primer, self._prime, job)
        with self._cond:
            if self._closing:
                raise RuntimeError("the server is shutting down")
            self._pending.append(job)
            self._cond.notify()

    def _prime(self, job: Job) -> None:
        r = job.request
        logits, job.state = self.lm.model.prime(job.prime_ids)
        job.logits = logits.numpy()
        job.generator = _seeded(r.seed)
        if r.plain:  # as generate_many: choice k takes row k of the draws
            job.uniforms = torch.rand(r.n, r.max_tokens, generator=job.generator, dtype=torch.float64).numpy()

    def close(self) -> None:
        """Stop the worker; requests still running end with an error event."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=10)
        self._primer.shutdown(wait=False, cancel_futures=True)
        for job in self._pending + self._jobs:
            job.emit([], [], "the server shut down before this completion finished")

    # ---------------------------------------------------------------- worker
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._jobs and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                new, self._pending = self._pending, []
            try:
                self._admit(new)
                self._drop([j for j in self._jobs if j.cancelled])
                if self._jobs:
                    self._step()
            except Exception as exc:  # noqa: BLE001 - a bug must not hang its requests: they end with it
                for job in self._jobs + new:
                    job.emit([], [], f"generation failed: {type(exc).__name__}: {exc}")
                self._drop(list(self._jobs))

    def _admit(self, jobs: list[Job]) -> None:
        b = self.batch
        for job in jobs:
            if job.cancelled:
                continue
            for k in range(job.request.n):
                row = b.add(job.state)
                b.logits_buffer[row, :b.vocab] = job.logits
                job.rows[k] = row
                self._owner.append((job, k))
                self._plain[row] = job.request.plain
                self._t[row] = job.request.temperature if job.request.plain else 1.0
            job.state = None
            self._jobs.append(job)

    def _step(self) -> None:
        b, n = self.batch, self.batch.n
        tokens, u = self._tokens[:n], self._u[:n]
        for r, (job, k) in enumerate(self._owner):
            if job.uniforms is not None:
                u[r] = job.uniforms[k, job.step]
        b.sample_plain(self._plain[:n], u, self._t[:n], tokens)
        for job in self._jobs:
            if not job.request.plain:
                r = job.request
                rows = job.rows
                tokens[rows] = sample_next(torch.from_numpy(b.logits[rows]), r.temperature, r.top_k, r.top_p,
                                           generator=job.generator).numpy()
        token_text = self.vocab.token_text
        out: dict = {}  # loop -> [(job, item)]: one wake-up of each event loop a step, not one per request
        for job in self._jobs:
            deltas, finishes = [], []
            for k, row in enumerate(job.rows):
                if job.finish[k] is None:
                    token = int(tokens[row])
                    job.push(k, token_text(token, job.prev[k]), deltas, finishes)
                    job.prev[k] = token
            job.step += 1
            item = job.item(deltas, finishes)
            if item is not None:
                out.setdefault(job.loop, []).append((job.queue, item))
        for loop, items in out.items():
            try:
                loop.call_soon_threadsafe(_put_all, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass
        self._drop([j for j in self._jobs if j.done or j.cancelled])
        if b.n:
            b.step(self._tokens[:b.n])
        if self.on_step is not None:
            self.on_step(n, n)

    def _drop(self, jobs: list[Job]) -> None:
        """Remove the rows of ``jobs``, highest first: each `remove` moves the last row (its
        state; its logits, token and settings here) into the freed one."""
        if not jobs:
            return
        b = self.batch
        for row in sorted((r for job in jobs for r in job.rows), reverse=True):
            moved = b.remove(row)
            if moved is not None:
                b.logits_buffer[row] = b.logits_buffer[moved]
                for a in (self._tokens, self._plain, self._u, self._t):
                    a[row] = a[moved]
                job, k = self._owner[moved]
                job.rows[k] = row
                self._owner[row] = self._owner[moved]
            self._owner.pop()
        gone = set(map(id, jobs))
        self._jobs = [j for j in self._jobs if id(j) not in gone]


class SoloGenerator:
    """One request at a time per pool thread, through the calls the CLI makes:
    `CharLM.generate` (n = 1) and `CharLM.generate_many` (n > 1) for streaming runs that the
    batched step cannot take, `WordRun.generate` for n-gram word runs (choice k with seed
    ``seed + k``). A cancelled request stops at its next token."""

    def __init__(self, model, threads: int = 2):
        self.model = model
        self.on_step: Callable[[int, int], None] | None = None
        self.rows = 0
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="rnnkit-solo")

    async def start(self, job: Job) -> None:
        if job.request.max_tokens == 0:
            job.end_empty()
            return
        self._pool.submit(self._run, job)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job) -> None:
        try:
            self.rows += job.request.n
            if self.model.kind == "ngram-word":
                self._words(job)
            else:
                self._stream(job)
        except Exception as exc:  # noqa: BLE001 - reported to the request, never a hang
            job.emit([], [], f"generation failed: {type(exc).__name__}: {exc}")
        finally:
            self.rows -= job.request.n

    def _deliver(self, job: Job, k: int, piece: str) -> bool:
        deltas, finishes = [], []
        job.push(k, piece, deltas, finishes)
        job.emit(deltas, finishes)
        if self.on_step is not None:
            self.on_step(1, 1)
        return not job.cancelled and job.finish[k] is None

    def _stream(self, job: Job) -> None:
        r, lm = job.request, self.model.engine
        generator = _seeded(r.seed)
        if r.n == 1:
            tokens = [lm.model.generate(job.prime_ids, r.max_tokens, r.temperature, r.top_k, r.top_p, generator)]
        else:
            tokens = lm.model.generate_many(job.prime_ids, r.max_tokens, r.n, r.temperature, r.top_k, r.top_p,
                                            generator)
        for k, stream in enumerate(tokens):
            for token in stream:
                token = int(token)
                more = self._deliver(job, k, lm.vocab.token_text(token, job.prev[k]))
                job.prev[k] = token
                if not more:
                    break
            if job.cancelled:
                return

    def _words(self, job: Job) -> None:
        r, run = job.request, self.model.engine
        for k in range(r.n):
            gen = run.generate(r.prompt, words=r.max_tokens, temperature=r.temperature, top_k=r.top_k,
                               top_p=r.top_p, seed=r.seed + k)
            for j, word in enumerate(gen.words):
                if not self._deliver(job, k, word if j == 0 and not r.prompt.strip() else " " + word):
                    break
            if job.cancelled:
                return


def make_generator(model, max_streams: int):
    """The generator for a language-model `ServedModel` (None for seq2seq): a `BatchScheduler`
    where `CharLM.batch_stepper` can step the model with its C kernel, else a `SoloGenerator`."""
    if model.kind == "seq2seq":
        return None
    if model.kind != "ngram-word":
        batch = model.engine.model.batch_stepper(max_streams)
        if batch is not None:
            return BatchScheduler(model.engine, batch)
    return SoloGenerator(model)
