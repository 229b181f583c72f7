"""Batched generation across requests: a request's text does not depend on what else is in the
batch, when it joined, or its rows; and it is the CLI's text for the same seed."""
import asyncio

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.serve.scheduler import BatchScheduler, Completion, Job, SoloGenerator


def completion(**kw) -> Completion:
    base = dict(prompt="ROMEO:", max_tokens=50, temperature=1.0, top_k=None, top_p=None, seed=0, n=1, stop=(),
                stream=True)  # streamed: tokens come step by step (a request that does not stream gets them at the end)
    return Completion(**{**base, **kw})


def new_job(lm, request: Completion) -> Job:
    ids, _ = lm.encode_prime(request.prompt)
    return Job(request, asyncio.get_running_loop(), ids, ids[-1] if request.prompt else None)


async def texts_of(job: Job, first_event: asyncio.Event | None = None) -> list[str]:
    texts, ended = [""] * job.request.n, 0
    while ended < job.request.n:
        deltas, finishes, error = await job.queue.get()
        assert error is None, error
        if first_event is not None:
            first_event.set()
        for k, t in deltas:
            texts[k] += t
        ended += len(finishes)
    return texts


def alone(lm, r: Completion) -> list[str]:
    """The texts the library's one-request calls give (those behind rnnkit lm generate)."""
    if r.n == 1:
        return [lm.sample(r.prompt, r.max_tokens, temperature=r.temperature, top_k=r.top_k, top_p=r.top_p, seed=r.seed)]
    ids, _ = lm.encode_prime(r.prompt)
    samples = lm.model.generate_many(ids, r.max_tokens, r.n, r.temperature, r.top_k, r.top_p,
                                     torch.Generator().manual_seed(r.seed))
    return [lm.vocab.decode(s, ids[-1]) for s in samples]


REQUESTS = [
    completion(max_tokens=1500, seed=1),                           # long: the others join while it runs
    completion(max_tokens=40, seed=2, n=3, temperature=0.7),       # plain, three choices
    completion(max_tokens=60, seed=3, top_k=4),                    # top-k through sample_next
    completion(max_tokens=30, seed=4, n=2, top_p=0.8, temperature=1.3),
    completion(max_tokens=25, seed=5, temperature=0.0),            # greedy
    completion(max_tokens=45, seed=1, prompt="the king"),          # same seed, other prime
]


def test_batched_requests_joining_at_different_steps_equal_one_at_a_time(models):
    model = models["char"]
    lm, scheduler = model.engine, model.generator
    assert isinstance(scheduler, BatchScheduler) and scheduler.batch.kernel == "native"

    async def run():
        jobs, tasks, joined_at = [], [], []
        for r in REQUESTS:  # each joins once the one before has sent its first tokens
            started = asyncio.Event()
            job = new_job(lm, r)
            await scheduler.start(job)
            joined_at.append(jobs[0].step if jobs else 0)
            jobs.append(job)
            tasks.append(asyncio.create_task(texts_of(job, started)))
            await started.wait()
        assert not jobs[0].done
        return await asyncio.gather(*tasks), joined_at

    got, joined_at = asyncio.run(run())
    assert 0 < joined_at[1] < joined_at[2] < joined_at[3] < joined_at[4] < joined_at[5] < 1500
    for r, texts in zip(REQUESTS, got):
        assert texts == alone(lm, r), r
    assert scheduler.rows == 0


def test_a_choice_k_is_sample_k_of_the_cli(models, runs, capsys):
    lm = models["char"].engine

    async def run(r):
        job = new_job(lm, r)
        await models["char"].generator.start(job)
        return await texts_of(job)

    one = asyncio.run(run(completion(max_tokens=80, seed=9, temperature=0.9)))
    assert main(["lm", "generate", str(runs / "char"), "--prime", "ROMEO:", "--length", "80", "--seed", "9",
                 "--temperature", "0.9"]) == 0
    assert capsys.readouterr().out == "ROMEO:" + one[0] + "\n"
    three = asyncio.run(run(completion(max_tokens=30, seed=9, n=3, top_k=5)))
    assert main(["lm", "generate", str(runs / "char"), "--prime", "ROMEO:", "--length", "30", "--seed", "9",
                 "--top-k", "5", "--num-samples", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed == "".join(f"--- sample {k} of 3 ---\nROMEO:{t}\n" for k, t in enumerate(three, 1))


@pytest.mark.parametrize("name", ["gru", "word"])
def test_one_at_a_time_runs_give_the_cli_text(models, runs, name, capsys):
    model = models[name]
    assert isinstance(model.generator, SoloGenerator)

    async def run(r):
        job = new_job(model.engine, r) if name != "word" else Job(r, asyncio.get_running_loop())
        await model.generator.start(job)
        return await texts_of(job)

    prime = "ROMEO:" if name == "gru" else "the king"
    (text,) = asyncio.run(run(completion(prompt=prime, max_tokens=20, seed=6, top_p=0.9)))
    length = ["--length", "20"] if name == "gru" else ["--words", "20"]
    assert main(["generate", str(runs / name), "--prime", prime, *length, "--seed", "6", "--top-p", "0.9"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == prime + text


def test_a_request_that_does_not_stream_gets_its_text_once(models):
    lm = models["char"].engine

    async def run():
        job = new_job(lm, completion(max_tokens=40, n=2, seed=8, stream=False))
        await models["char"].generator.start(job)
        items = [await job.queue.get()]
        await asyncio.sleep(0.05)
        return items + [job.queue.get_nowait() for _ in range(job.queue.qsize())]

    (item,) = asyncio.run(run())
    deltas, finishes, error = item
    assert error is None and sorted(finishes) == [(0, "length"), (1, "length")]
    assert [t for _, t in sorted(deltas)] == alone(lm, completion(max_tokens=40, n=2, seed=8))
