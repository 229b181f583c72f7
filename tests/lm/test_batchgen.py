"""The batched generation step (rnnkit.lm.batchgen): the plain step's numbers, each stream's
bits independent of its batch, joining and leaving, plain sampling."""
import numpy as np
import pytest
import torch

from rnnkit.lm import fastgen
from rnnkit.lm.batchgen import BatchLSTM, native_problem
from rnnkit.lm.charlm import CharLM, CharLMConfig

KERNELS = ["numpy", pytest.param("native", marks=pytest.mark.skipif(
    native_problem(2) is not None, reason=f"the C batched step is not available here: {native_problem(2)}"))]


def _model(layers=2, hidden=20, vocab=13):
    torch.manual_seed(3)
    return CharLM(CharLMConfig(vocab_size=vocab, layers=layers, hidden=hidden, embedding=8)).eval()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("layers, hidden", [(1, 16), (2, 20), (3, 40)])  # whole and partial panels of 24 rows
def test_batched_step_follows_the_plain_step(kernel, layers, hidden):
    model = _model(layers, hidden)
    batch = BatchLSTM(model, 6, kernel=kernel)
    states = []
    for prime in ([1, 2], [3], [4, 5, 6], [7], [8, 9], [10]):
        states.append(model.prime(prime)[1])
        batch.add(states[-1])
    for tokens in torch.randint(0, 13, (25, 6)):
        got = batch.step(tokens.numpy()).copy()
        for r in range(6):
            want, states[r] = model.step(tokens[r].view(1), states[r])
            np.testing.assert_allclose(got[r], want[0].numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS[1:])
def test_a_stream_gets_the_same_bits_alone_and_in_any_batch(kernel):
    """Its row, the batch size and the thread count change nothing in a stream's logits."""
    model = _model(2, 40)
    state = model.prime([1, 2, 3])[1]
    tokens = torch.randint(0, 13, (30,)).numpy()

    def run(size, row, threads):
        batch = BatchLSTM(model, size, threads=threads, kernel=kernel)
        for r in range(size):
            batch.add(state if r == row else model.prime([r % 13])[1])
        out = []
        for t in tokens:
            feed = np.arange(size) % 13
            feed[row] = t
            out.append(batch.step(feed)[row].copy())
        return np.stack(out)

    alone = run(1, 0, 1)
    for size, row, threads in ((5, 3, 2), (9, 8, 1), (64, 17, 2)):
        assert np.array_equal(run(size, row, threads), alone), (size, row, threads)


@pytest.mark.parametrize("kernel", KERNELS)
def test_streams_join_and_leave(kernel):
    model = _model()
    batch = BatchLSTM(model, 3, kernel=kernel)
    rows = [batch.add(model.prime([p])[1]) for p in (1, 2, 3)]
    assert rows == [0, 1, 2] and batch.n == 3
    with pytest.raises(RuntimeError, match="the batch is full"):
        batch.add(model.prime([1])[1])
    keep = batch.state(2)
    assert batch.remove(0) == 2  # the last stream moves into the freed row
    assert batch.n == 2
    for a, b in zip(batch.state(0), keep):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert batch.remove(1) is None and batch.n == 1
    with pytest.raises(IndexError, match="row 1 is not an active stream"):
        batch.remove(1)
    with pytest.raises(ValueError, match="1 active streams, got 2 tokens"):
        batch.step(np.array([1, 2]))
    with pytest.raises(IndexError, match="outside the vocabulary"):
        batch.step(np.array([13]))


@pytest.mark.parametrize("kernel", KERNELS)
def test_plain_sampling_is_the_single_stream_draw(kernel):
    model = _model()
    logits, state = model.prime([2, 7])
    batch = BatchLSTM(model, 4, kernel=kernel)
    for _ in range(4):
        batch.add(state)
    u = np.random.default_rng(0).random(4)
    temperature = np.array([0.5, 1.0, 1.5, 1e-4])  # 1e-4: every exp underflows, the fallback shift is used
    batch.logits[:] = logits.numpy()
    out = np.full(4, -1, np.int32)
    batch.sample_plain(np.array([True, True, False, True]), u, temperature, out)
    assert out[2] == -1  # not a plain row: left alone
    single = model.fast_stepper(kernel="numpy")
    for r in (0, 1, 3):
        want = next(fastgen.sample_stream(single, logits.numpy(), u[r:r + 1], float(temperature[r])))
        assert out[r] == want


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="capacity must be a positive integer"):
        BatchLSTM(_model(), 0)
    with pytest.raises(ValueError, match="threads must be an integer from 1 to 256"):
        BatchLSTM(_model(), 2, threads=0)
    gru = CharLM(CharLMConfig(vocab_size=5, cell="gru", hidden=8, embedding=4))
    with pytest.raises(ValueError, match="for LSTM cells, not gru"):
        BatchLSTM(gru, 2)
    assert gru.batch_stepper(2) is None
