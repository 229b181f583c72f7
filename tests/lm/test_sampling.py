"""Decoding utilities over next-token logits: filters, sampling statistics, greedy, beam search."""
import itertools
import math

import pytest
import torch

from rnnkit.lm.sampling import (
    beam_search, check_sampling_args, filter_logits, sample_next, sample_tokens, select_rows,
)

PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
LOGITS = PROBS.log()


def kept(logits):
    return torch.isfinite(logits[0]).nonzero().flatten().tolist()


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5]])
    assert kept(filter_logits(logits, top_k=2)) == [1, 3]
    assert kept(filter_logits(logits, top_k=10)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("top_p, expected", [(0.4, [0]), (0.75, [0, 1]), (0.85, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_the_smallest_nucleus_reaching_p(top_p, expected):
    assert kept(filter_logits(LOGITS, top_p=top_p)) == expected


def test_top_p_works_on_unsorted_rows_and_keeps_values():
    logits = torch.tensor([[0.0, 5.0, 1.0], [2.0, 0.0, 9.0]])
    out = filter_logits(logits, top_p=0.5)
    assert torch.isfinite(out).tolist() == [[False, True, False], [False, False, True]]
    assert out[0, 1] == 5.0 and out[1, 2] == 9.0


def test_banned_tokens_and_temperature():
    out = filter_logits(LOGITS, temperature=2.0, banned=[0])
    assert out[0, 0] == -math.inf
    assert torch.allclose(out[0, 1:], LOGITS[0, 1:] / 2)


def test_temperature_zero_is_argmax_and_ignores_the_generator():
    logits = torch.tensor([[0.0, 1.0, 3.0], [4.0, 0.0, 1.0]])
    assert sample_next(logits, temperature=0).tolist() == [2, 0]
    assert sample_next(logits, temperature=0, banned=[2]).tolist() == [1, 0]


def test_same_seed_same_draws_and_banned_never_drawn():
    logits = torch.zeros(1, 50)

    def draws(seed):
        g = torch.Generator().manual_seed(seed)
        return [int(sample_next(logits, banned=[0, 7], generator=g)) for _ in range(200)]

    a = draws(5)
    assert a == draws(5) and a != draws(6)
    assert 0 not in a and 7 not in a


def test_draws_follow_the_tempered_softmax():
    g = torch.Generator().manual_seed(0)
    n = 20000
    for temperature in (1.0, 0.5, 2.0):
        draws = sample_next(LOGITS.expand(n, -1), temperature=temperature, generator=g)
        freq = torch.bincount(draws, minlength=4).float() / n
        expected = (LOGITS[0] / temperature).softmax(-1)
        # 4 standard errors of a binomial proportion
        assert torch.all((freq - expected).abs() < 4 * (expected * (1 - expected) / n).sqrt() + 1e-3), temperature
    top2 = sample_next(LOGITS.expand(n, -1), top_k=2, generator=g)
    assert set(top2.tolist()) == {0, 1}
    assert abs(float((top2 == 0).float().mean()) - 0.5 / 0.8) < 0.02


# A toy Markov model: the state is the last token; logits depend only on it.
TRANSITIONS = torch.tensor([
    [0.0, 0.6, 0.4, 0.0],    # from 0 (start): 1 is likelier than 2 ...
    [0.0, 0.25, 0.25, 0.5],  # ... but 1 is followed by a spread of tokens
    [0.0, 0.0, 0.0, 1.0],    # while 2 is always followed by 3
    [0.0, 0.1, 0.1, 0.8],
]).clamp(min=1e-9).log()


def logits_fn(last):
    return TRANSITIONS[last[:, 0]]


def advance(last, tokens):
    return tokens[:, None]


def sequence_log_prob(seq):
    prev, total = 0, 0.0
    for t in seq:
        total += float(TRANSITIONS[prev].log_softmax(-1)[t])
        prev = t
    return total


def test_beam_search_beats_greedy_and_matches_exhaustive_search():
    start = torch.zeros(1, 1, dtype=torch.long)
    greedy, greedy_lp = beam_search(logits_fn, advance, start, steps=3, beam_width=1, banned=[0])
    assert greedy[0] == 1
    best, best_lp = beam_search(logits_fn, advance, start, steps=3, beam_width=16, banned=[0])
    exhaustive = max(itertools.product([1, 2, 3], repeat=3), key=sequence_log_prob)
    assert best == list(exhaustive) == [2, 3, 3]
    assert best_lp == pytest.approx(sequence_log_prob(best), abs=1e-5)
    assert greedy_lp == pytest.approx(sequence_log_prob(greedy), abs=1e-5) and greedy_lp < best_lp
    assert beam_search(logits_fn, advance, start, steps=3, beam_width=2, banned=[0])[0] == [2, 3, 3]


def test_greedy_sampling_equals_beam_width_one():
    start = torch.zeros(1, 1, dtype=torch.long)
    tokens = sample_tokens(logits_fn, advance, start, steps=4, temperature=0, banned=[0])
    assert tokens.tolist()[0] == beam_search(logits_fn, advance, start, steps=4, beam_width=1, banned=[0])[0]
    assert sample_tokens(logits_fn, advance, start, steps=0).shape == (1, 0)


def test_beam_search_with_every_token_banned_is_a_clear_error():
    with pytest.raises(ValueError, match="every token is banned"):
        beam_search(logits_fn, advance, torch.zeros(1, 1, dtype=torch.long), 2, 3, banned=[0, 1, 2, 3])


def test_select_rows_on_nested_states():
    state = (torch.arange(3), [torch.arange(6).reshape(3, 2)], {"h": torch.arange(3) * 10})
    out = select_rows(state, torch.tensor([2, 2, 0]))
    assert out[0].tolist() == [2, 2, 0] and out[1][0].tolist() == [[4, 5], [4, 5], [0, 1]]
    assert out[2]["h"].tolist() == [20, 20, 0]


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -1}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"top_k": 0}, "top_k"), ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"),
    ({"beam_width": 0}, "beam_width"), ({"beam_width": 3, "top_k": 5}, "beam search"),
])
def test_bad_sampling_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        check_sampling_args(**kwargs)
    assert "\n" not in str(err.value)
