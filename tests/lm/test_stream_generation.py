"""Stateful generation: the prime is fed once, then one step per token from the carried state."""
import itertools

import pytest
import torch

from rnnkit.lm.charlm import CharLM, CharLMConfig
from rnnkit.lm.stream import StreamLM
from rnnkit.lm.streams import Vocab


def _model(cell="lstm", vocab=13, layers=2):
    torch.manual_seed(3)
    model = CharLM(CharLMConfig(vocab_size=vocab, cell=cell, layers=layers, hidden=24, embedding=8)).eval()
    with torch.no_grad():  # sharper distributions than the initial near-uniform ones
        model.head.weight.mul_(8)
    return model


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru", "minlstm"])
def test_stepping_the_carried_state_equals_refeeding_the_whole_text(cell):
    model = _model(cell)
    text = torch.randint(0, 13, (60,))
    logits, state = model.prime(text[:5])
    stepped = [logits]
    for t in text[5:-1]:
        logits, state = model.step(t.view(1), state)
        stepped.append(logits[0])
    with torch.no_grad():
        full, _ = model(text[:-1].view(1, -1))
    torch.testing.assert_close(torch.stack(stepped), full[0, 4:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_greedy_generation_equals_greedy_decoding_by_refeeding(cell):
    model = _model(cell)
    prime = [1, 2, 3]
    generated = list(model.generate(prime, 40, temperature=0))
    seq = list(prime)
    with torch.no_grad():
        for _ in range(40):
            logits, _ = model(torch.tensor(seq).view(1, -1))  # the whole text again, from scratch
            seq.append(int(logits[0, -1].argmax()))
    assert generated == seq[len(prime):]


def test_sampling_equals_sampling_from_refed_distributions():
    model = _model()
    prime = [4, 5]
    g = torch.Generator().manual_seed(11)
    generated = list(model.generate(prime, 30, temperature=0.9, generator=g))
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
