"""Stateful generation: the prime is fed once, then one step per token from the carried state.

Two engines step the state: the plain torch step (`CharLM.step`, any cell) and the fast numpy
one (`rnnkit.lm.fastgen.FastLSTM`, LSTMs on the CPU, the default there). Both are float32 and
agree to rounding: logits within 1e-5 of the logits' scale (measured: ~5e-7)."""
import itertools

import numpy as np
import pytest
import torch

from rnnkit.lm import fastgen
from rnnkit.lm.charlm import CharLM, CharLMConfig
from rnnkit.lm.stream import StreamLM
from rnnkit.lm.streams import Vocab


def _model(cell="lstm", vocab=13, layers=2, **config):
    torch.manual_seed(3)
    config = {"hidden": 24, "embedding": 8, **config}
    model = CharLM(CharLMConfig(vocab_size=vocab, cell=cell, layers=layers, **config)).eval()
    with torch.no_grad():  # sharper distributions than the initial near-uniform ones
        model.head.weight.mul_(8)
    return model


@pytest.mark.parametrize("cell, config", [*((c, {}) for c in ["lstm", "gru", "rnn", "mingru", "minlstm"]),
                                          ("mingru", {"residual": True, "layers": 3}),
                                          ("minlstm", {"residual": True, "feed_forward": 2}),
                                          ("lstm", {"residual": True, "embedding": 24})])
def test_stepping_the_carried_state_equals_refeeding_the_whole_text(cell, config):
    model = _model(cell, **config)
    if config.get("residual"):  # LayerNorms away from their identity start
        with torch.no_grad():
            for p in [*model.norms.parameters(), *model.final_norm.parameters(),
                      *(model.feed_forwards.parameters() if model.config.feed_forward else [])]:
                p.add_(torch.randn_like(p) * 0.3)
    text = torch.randint(0, 13, (60,))
    logits, state = model.prime(text[:5])
    stepped = [logits]
    for t in text[5:-1]:
        logits, state = model.step(t.view(1), state)
        stepped.append(logits[0])
    with torch.no_grad():
        full, _ = model(text[:-1].view(1, -1))
    torch.testing.assert_close(torch.stack(stepped), full[0, 4:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("config", [{"cell": "lstm"}, {"cell": "mingru", "residual": True, "layers": 3, "feed_forward": 2}])
def test_generation_never_drops_out(config):
    """A model left in training mode steps as in eval mode: same seed, same text."""
    model = _model(dropout=0.5, **config).train()
    token, state = torch.tensor([3]), model.initial_state(1)
    first, _ = model.step(token, state)
    again, _ = model.step(token, state)
    torch.testing.assert_close(first, again)
    model.eval()
    torch.testing.assert_close(model.step(token, state)[0], first)


@pytest.mark.parametrize("cell, engine", [("lstm", "fast"), ("lstm", "torch"), ("gru", "auto")])
def test_greedy_generation_equals_greedy_decoding_by_refeeding(cell, engine):
    model = _model(cell)
    prime = [1, 2, 3]
    generated = list(model.generate(prime, 40, temperature=0, engine=engine))
    seq = list(prime)
    with torch.no_grad():
        for _ in range(40):
            logits, _ = model(torch.tensor(seq).view(1, -1))  # the whole text again, from scratch
            seq.append(int(logits[0, -1].argmax()))
    assert generated == seq[len(prime):]


@pytest.mark.parametrize("engine", ["fast", "torch"])
def test_sampling_equals_sampling_from_refed_distributions(engine):
    model = _model()
    prime = [4, 5]
    g = torch.Generator().manual_seed(11)
    generated = list(model.generate(prime, 30, temperature=0.9, generator=g, engine=engine))
    # The same inverse-CDF draws from the distributions of full re-feeding give the same tokens.
    u = torch.rand(30, 1, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    seq = list(prime)
    with torch.no_grad():
        for i in range(30):
            logits, _ = model(torch.tensor(seq).view(1, -1))
            cdf = torch.softmax(logits[0, -1].double() / 0.9, 0).cumsum(0)
            seq.append(min(int(torch.searchsorted(cdf, u[i])), 12))
    assert generated == seq[len(prime):]


@pytest.mark.parametrize("options", [{}, {"top_k": 3}, {"top_p": 0.8}])
def test_same_seed_same_text_other_seed_other_text(options):
    model = _model()
    run = lambda seed: list(model.generate([1], 50, 1.0, generator=torch.Generator().manual_seed(seed), **options))
    assert run(5) == run(5)
    assert run(5) != run(6)
    if "top_k" in options:  # never outside the 3 most likely tokens
        seq = [1] + run(5)
        with torch.no_grad():
            logits, _ = model(torch.tensor(seq[:-1]).view(1, -1))
        top3 = logits[0].topk(3).indices
        assert all(tok in top3[i] for i, tok in enumerate(seq[1:]))


def test_beam_search_finds_the_most_likely_continuation():
    model = _model(vocab=4, layers=1)
    prime = [0, 1]

    def logprob(cont):
        seq = torch.tensor(prime + list(cont))
        with torch.no_grad():
            logits, _ = model(seq[:-1].view(1, -1))
        lp = torch.log_softmax(logits[0, len(prime) - 1:], -1)
        return float(lp.gather(1, seq[len(prime):, None]).sum())

    best = max(itertools.product(range(4), repeat=3), key=logprob)
    tokens, score = model.beam_search(prime, 3, beam_width=16)  # wide enough to be exhaustive
    assert tokens == list(best) and score == pytest.approx(logprob(best), abs=1e-4)
    greedy = list(model.generate(prime, 3, temperature=0))
    assert model.beam_search(prime, 3, beam_width=1)[0] == greedy


def test_stream_lm_text_unknown_prime_characters_and_empty_prime(tmp_path):
    vocab = Vocab.build("abc de\n", "char")
    lm = StreamLM(_model(vocab=len(vocab)), vocab, {"progress": {"step": 0}}, tmp_path)
    ids, notes = lm.encode_prime("Àb€")
    assert vocab.decode(ids) == "ab" and notes == ["'À' -> 'a'", "'€' skipped"]  # accent and case dropped
    text = lm.sample("Àb€", 25, temperature=0.7, seed=3)
    assert len(text) == 25 and set(text) <= set(vocab.tokens)
    assert text == lm.sample("ab", 25, temperature=0.7, seed=3)  # the unknown characters were mapped/skipped
    assert lm.encode_prime("€€") == ([vocab.index["\n"]], ["'€' skipped", "'€' skipped",
                                                          "nothing of the prime is in the vocabulary; starting from a newline"])
    assert len(lm.sample("", 10, seed=1)) == 10
    completion, logp = lm.complete("ab", 5, beam_width=3)
    assert len(completion) == 5 and logp < 0


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("precision, tol", [("fp16", 3e-3), ("int8", 0.1)])
def test_packed_steps_follow_the_float32_steps(cell, precision, tol):
    model = _model(cell)
    step = model.stepper(precision)
    tokens = torch.randint(0, 13, (40,))
    exact, packed = model.initial_state(1), model.initial_state(1)
    for t in tokens:
        want, exact = model.step(t.view(1), exact)
        got, packed = step(t.view(1), packed)
        assert (got - want).abs().max() <= tol * want.abs().max()  # relative to the logits' scale
    run = lambda: list(model.generate([1], 30, 0.9, generator=torch.Generator().manual_seed(2), precision=precision))
    assert run() == run()
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, int8"):
        model.stepper("fp8")


from rnnkit import native

needs_native = pytest.mark.skipif(native.unavailable() is not None,
                                  reason=f"the C generation step is not available here: {native.unavailable()}")
KERNELS = ["numpy", pytest.param("native", marks=needs_native)]


def _fast_vs_plain(model, precision, tokens, kernel="auto"):
    """Largest |fast - plain fp32| logit difference over ``tokens`` after a prime, relative to the
    logits' scale, and the two final states."""
    fast = model.fast_stepper(precision, "fast", kernel=kernel)
    assert kernel == "auto" or fast.kernel == kernel
    logits, state = model.prime([1, 2, 3])
    fast.load_state(state)
    worst = 0.0
    for t in tokens:
        want, state = model.step(t.view(1), state)
        got = torch.from_numpy(fast.step(int(t)))
        worst = max(worst, float((got - want[0]).abs().max() / want.abs().max()))
    return worst, fast.state(), state


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_fast_step_follows_the_plain_step(layers, kernel):
    model = _model(layers=layers)
    worst, fast_state, plain_state = _fast_vs_plain(model, "fp32", torch.randint(0, 13, (80,)), kernel)
    assert worst < 1e-5
    for got, want in zip(fast_state, plain_state):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("precision, tol", [("fp16", 3e-3), ("int8", 0.1)])
def test_fast_packed_steps_follow_the_float32_steps(precision, tol):
    worst, _, _ = _fast_vs_plain(_model(), precision, torch.randint(0, 13, (40,)))
    assert worst <= tol


@pytest.mark.parametrize("options", [{"temperature": 0.8}, {"temperature": 0}, {"temperature": 1.0, "top_k": 4},
                                     {"temperature": 1.2, "top_p": 0.9}])
def test_fast_and_plain_engines_generate_the_same_text(options):
    model = _model(vocab=13, layers=2)
    run = lambda engine: list(model.generate([3, 1, 4], 60, generator=torch.Generator().manual_seed(7),
                                             engine=engine, **options))
    assert run("fast") == run("torch") == run("auto")


def test_engine_choice_and_fallback():
    gru = _model("gru")
    assert gru.fast_stepper() is None  # auto: other cells keep the plain step
    with pytest.raises(ValueError, match="fast generation step is for LSTM cells, not gru"):
        list(gru.generate([1], 5, engine="fast"))
    with pytest.raises(ValueError, match="engine must be one of auto, fast, torch"):
        list(_model().generate([1], 5, engine="numpy"))
    assert isinstance(_model().fast_stepper(), fastgen.FastLSTM)
    residual = _model(residual=True)
    assert residual.fast_stepper() is None
    with pytest.raises(ValueError, match="fast generation step is for plain LSTM stacks, not residual ones"):
        list(residual.generate([1], 5, engine="fast"))
    with pytest.raises(ValueError, match="precision 'int8' supports plain stacks, not residual ones"):
        residual.stepper("int8")


@pytest.mark.parametrize("bound", [0.0, 1000.0])  # 1000: exp(z - bound / T) underflows, the fallback shift is used
def test_fast_sampling_inverts_the_softmax_cdf(bound):
    class Constant:  # a "model" whose next-token logits never change
        logits = np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32))
        logit_bound = bound

        def step(self, token):
            return self.logits
    u = np.array([0.0, 0.05, 0.1001, 0.29, 0.31, 0.59, 0.61, 0.999])
    assert list(fastgen.sample_stream(Constant(), Constant.logits, u, 1.0)) == [0, 0, 1, 1, 2, 2, 3, 3]
    # temperature 0.5 squares the probabilities: 1, 4, 9, 16 over 30
    u = np.array([0.03, 0.04, 0.16, 0.17, 0.46, 0.47])
    assert list(fastgen.sample_stream(Constant(), Constant.logits, u, 0.5)) == [0, 1, 1, 2, 2, 3]


def test_fast_logit_bound_holds():
    model = _model()
    fast = model.fast_stepper()
    fast.load_state(model.prime([1, 2])[1])
    assert max(float(fast.step(int(t)).max()) for t in torch.randint(0, 13, (50,))) <= fast.logit_bound


@pytest.mark.parametrize("engine", ["fast", "torch"])
def test_many_samples_in_one_batch(engine):
    model = _model()
    g = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    samples = model.generate_many([2, 7], 40, 4, 0.9, generator=g(), engine=engine)
    assert len(samples) == 4 and all(len(s) == 40 for s in samples) and len(set(map(tuple, samples))) == 4
    assert samples[0] == list(model.generate([2, 7], 40, 0.9, generator=g(), engine=engine))  # row 0 of the draws
    assert samples == model.generate_many([2, 7], 40, 4, 0.9, generator=g(), engine=engine)
    # every sample is a stream of its own: the draws of its row of uniforms from its own text, re-fed alone
    u = torch.rand(4, 40, generator=g(), dtype=torch.float64)
    for k in (1, 3):
        seq = torch.tensor([2, 7] + samples[k])
        with torch.no_grad():
            logits, _ = model(seq[:-1].view(1, -1))
        cdf = torch.softmax(logits[0, 1:].double() / 0.9, -1).cumsum(-1)
        assert torch.searchsorted(cdf, u[k, :, None]).clamp(max=12).view(-1).tolist() == samples[k]
    greedy = model.generate_many([2, 7], 15, 3, 0, engine=engine)
    assert greedy == [list(model.generate([2, 7], 15, 0, engine=engine))] * 3
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        model.generate_many([1], 5, 0)


@needs_native
@pytest.mark.parametrize("hidden", [16, 24, 40])  # whole blocks of 8 units and 16 columns, and remainders
def test_native_step_and_sampling_follow_the_numpy_step(hidden):
    torch.manual_seed(5)
    model = CharLM(CharLMConfig(vocab_size=11, layers=2, hidden=hidden, embedding=8)).eval()
    with torch.no_grad():
        model.head.weight.mul_(8)
    logits, state = model.prime([1, 2, 3])
    logits = logits.reshape(-1).numpy()
    for temperature in (0.8, 1e-4):  # 1e-4: every exp(z - bound / T) underflows, the fallback shift is used
        texts, states = [], []
        for kernel in ("numpy", "native"):
            fast = model.fast_stepper(kernel=kernel)
            fast.load_state(state)
            u = np.random.default_rng(1).random(300)
            texts.append(list(fastgen.sample_stream(fast, logits, u, temperature)))
            states.append(fast.state())
        assert texts[0] == texts[1]
        assert len(set(texts[0])) > 1
        for a, b in zip(*states):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@needs_native
def test_native_step_gives_the_same_numbers_on_any_number_of_threads():
    """Each unit's sums run on one thread in a fixed order: the thread count changes nothing."""
    model = _model(layers=3)
    runs = []
    for threads in (1, 2, 3):
        fast = fastgen.FastLSTM(model, kernel="native", threads=threads)
        runs.append(np.stack([fast.step(t).copy() for t in (1, 5, 9, 2, 2, 7)]))
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


@needs_native
def test_two_native_streams_in_flight_at_once():
    model = _model()
    a, b = (model.generate([1, 2], 80, 0.9, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    mixed = [(x, y) for x, y in zip(a, b)]  # interleaved: each generator's C step in turn
    alone = lambda s: list(model.generate([1, 2], 80, 0.9, generator=torch.Generator().manual_seed(s)))  # noqa: E731
    assert [x for x, _ in mixed] == alone(1) and [y for _, y in mixed] == alone(2)


@needs_native
def test_native_step_keeps_nan_as_the_numpy_step_does():
    model = _model()
    with torch.no_grad():
        model.rnns[1].weight_hh[0, 0] = float("nan")
    for kernel in ("numpy", "native"):
        fast = model.fast_stepper(kernel=kernel)
        fast.step(1)
        assert np.isnan(fast.step(2)).all(), kernel


@needs_native
@pytest.mark.parametrize("threads", [0, -1, 10**10, 2.0])
def test_native_threads_are_checked(threads):
    with pytest.raises(ValueError, match="threads must be an integer from 1 to 256"):
        fastgen.FastLSTM(_model(), kernel="native", threads=threads)


def test_kernel_choice():
    model = _model()
    assert model.fast_stepper(kernel="numpy").kernel == "numpy"
    assert model.fast_stepper(batch=3).kernel == "numpy"  # the C step runs one stream
    assert model.fast_stepper(precision="int8").kernel == "numpy"
    assert model.fast_stepper().kernel == ("numpy" if native.unavailable() else "native")
    with pytest.raises(ValueError, match="native generation step is unavailable: the native step runs a single"):
        model.fast_stepper(batch=2, kernel="native")
    with pytest.raises(ValueError, match="kernel must be one of auto, native, numpy, got 'c'"):
        model.fast_stepper(kernel="c")


@pytest.mark.parametrize("batch", [3, 6])  # up to 4 rows: one matrix-vector product each; above: one product
def test_fast_batch_step_follows_the_plain_step(batch):
    model = _model()
    fast = model.fast_stepper(batch=batch)
    tokens = torch.randint(0, 13, (30, batch))
    state = model.initial_state(batch)
    fast.load_state(state)
    for t in tokens:
        want, state = model.step(t, state)
        got = torch.from_numpy(fast.step(t.numpy()))
        assert float((got - want).abs().max() / want.abs().max()) < 1e-5
    for got, want in zip(fast.state(), state):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 3-step character run on a made-up text (no corpora needed)."""
    from rnnkit.cli.main import main

    root = tmp_path_factory.mktemp("generate")
    corpus = root / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 100)
    run = root / "run"
    assert main(["lm", "train", "--corpus", str(corpus), "--out", str(run), "--steps", "3", "--hidden", "16",
                 "--embedding", "8", "--batch-size", "4", "--seq-len", "16", "--eval-every", "3",
                 "--progress", "none"]) == 0
    return run


def test_cli_num_samples_prints_each_sample(tiny_run, capsys):
    from rnnkit.cli.main import main

    capsys.readouterr()
    args = ["lm", "generate", str(tiny_run), "--prime", "the ", "--length", "30", "--temperature", "0.9", "--seed", "2"]
    assert main(args + ["--num-samples", "3"]) == 0
    captured = capsys.readouterr()
    blocks = captured.out.split("--- sample ")[1:]
    assert [b.split("\n", 1)[0] for b in blocks] == ["1 of 3 ---", "2 of 3 ---", "3 of 3 ---"]
    texts = [b.split("\n", 1)[1].rstrip("\n") for b in blocks]
    assert all(t.startswith("the ") and len(t) == 4 + 30 for t in texts)
    assert "3 x 30 tokens at" in captured.err
    assert main(args) == 0
    assert capsys.readouterr().out.rstrip("\n") == texts[0]  # the first sample is the single stream's text
    assert main(args + ["--num-samples", "2", "--beam-width", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnnkit: error: --num-samples draws independent samples; it cannot be combined with --beam-width"]
