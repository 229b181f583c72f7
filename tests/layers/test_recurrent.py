"""Recurrent layers: shapes, Keras parameter counts, equality with torch.nn and with the
step loop, masking semantics, state passing, weight layout conversion."""
import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.layers import GRU, LSTM, Bidirectional, SimpleRNN

CELLS = [(LSTM, 4), (GRU, 3), (SimpleRNN, 1)]


def randomize(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.rand(p.shape, generator=g) - 0.5)
    return layer


@pytest.mark.parametrize("units,in_dim", [(56, 42), (12, 112), (3, 1)])
def test_param_counts_follow_keras_formulas(units, in_dim):
    x = np.zeros((2, 5, in_dim), "float32")
    lstm, gru, gru_old, rnn = LSTM(units), GRU(units), GRU(units, reset_after=False), SimpleRNN(units)
    for layer in (lstm, gru, gru_old, rnn):
        layer(x)
    assert lstm.count_params() == 4 * units * (in_dim + units + 1)
    assert gru.count_params() == 3 * units * (in_dim + units + 2)
    assert gru_old.count_params() == 3 * units * (in_dim + units + 1)
    assert rnn.count_params() == units * (in_dim + units + 1)
    assert Bidirectional(LSTM(units))(x).shape == (2, 2 * units)


@pytest.mark.parametrize("cls,gates", CELLS)
def test_keras_weight_shapes_and_round_trip(cls, gates):
    layer = randomize(cls(5))
    layer(np.zeros((1, 2, 3), "float32"))
    randomize(layer)
    ws = layer.get_weights()
    bias_shape = (2, gates * 5) if cls is GRU else (gates * 5,)
    assert [w.shape for w in ws] == [(3, gates * 5), (5, gates * 5), bias_shape]
    other = cls(5)
    other(np.zeros((1, 2, 3), "float32"))
    other.set_weights(ws)
    x = np.random.rand(2, 4, 3).astype("float32")
    torch.testing.assert_close(other(x), layer(x))


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_output_shapes(cls, return_sequences, return_state, go_backwards):
    layer = cls(6, return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards)
    out = layer(np.random.rand(3, 7, 4).astype("float32"))
    expected = (3, 7, 6) if return_sequences else (3, 6)
    if return_state:
        assert isinstance(out, list) and len(out) == 1 + layer.n_states
        assert out[0].shape == expected and all(s.shape == (3, 6) for s in out[1:])
        assert layer.output_shape == [(None, 7, 6) if return_sequences else (None, 6)] + [(None, 6)] * layer.n_states
    else:
        assert out.shape == expected
        assert layer.output_shape == ((None, 7, 6) if return_sequences else (None, 6))


def _torch_twin(layer):
    """The equivalent torch.nn module carrying the same weights (Keras layout converted)."""
    kernel, recurrent, bias = layer.get_weights()
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[layer.cell_type]
    twin = cls(kernel.shape[0], layer.units, batch_first=True)
    k, r = torch.tensor(kernel.T), torch.tensor(recurrent.T)
    with torch.no_grad():
        if layer.cell_type == "gru":  # Keras z, r, h -> PyTorch r, z, n
            swap = lambda w: torch.cat([w.chunk(3)[1], w.chunk(3)[0], w.chunk(3)[2]])  # noqa: E731
            twin.weight_ih_l0.copy_(swap(k))
            twin.weight_hh_l0.copy_(swap(r))
            twin.bias_ih_l0.copy_(swap(torch.tensor(bias[0])))
            twin.bias_hh_l0.copy_(swap(torch.tensor(bias[1])))
        else:
            twin.weight_ih_l0.copy_(k)
            twin.weight_hh_l0.copy_(r)
            twin.bias_ih_l0.copy_(torch.tensor(bias))
            twin.bias_hh_l0.zero_()
    return twin


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_forward_equals_plain_pytorch(cls):
    layer = cls(7, return_sequences=True)
    x = torch.randn(4, 9, 5)
    layer(x)
    randomize(layer)
    twin = _torch_twin(layer)
    expected, _ = twin(x)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_bidirectional_equals_plain_pytorch_bidirectional_lstm():
    layer = Bidirectional(LSTM(6, return_sequences=True))
    x = torch.randn(3, 8, 4)
    layer(x)
    randomize(layer)
    f, b = layer.forward_layer, layer.backward_layer
    twin = nn.LSTM(4, 6, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for suffix, sub in (("", f), ("_reverse", b)):
            getattr(twin, "weight_ih_l0" + suffix).copy_(sub.weight_ih)
            getattr(twin, "weight_hh_l0" + suffix).copy_(sub.weight_hh)
            getattr(twin, "bias_ih_l0" + suffix).copy_(sub.bias_ih)
            getattr(twin, "bias_hh_l0" + suffix).zero_()
    expected, _ = twin(x)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


MASK = torch.tensor(
    [
        [0, 0, 1, 1, 1, 1, 1],  # pre-padded
        [1, 1, 1, 1, 1, 0, 0],  # post-padded
        [1, 1, 0, 0, 1, 1, 1],  # hole
        [0, 0, 0, 0, 0, 0, 0],  # fully masked
    ],
    dtype=torch.bool,
)


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_masked_path_equals_step_loop(cls, go_backwards):
    layer = cls(5, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = torch.randn(4, 7, 3)
    layer(x)
    randomize(layer)
    h0 = [torch.randn(4, 5) for _ in range(layer.n_states)]
    fused = layer(x, mask=MASK, initial_state=h0)
    xs, ms = (x.flip(1), MASK.flip(1)) if go_backwards else (x, MASK)
    seq, states = layer._loop(xs, ms, h0, training=False)
    torch.testing.assert_close(fused[0], seq, rtol=1e-5, atol=1e-6)
    for a, b in zip(fused[1:], states):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_masked_steps_keep_state_and_repeat_output(cls):
    layer = cls(4, return_sequences=True, return_state=True)
    x = torch.randn(4, 7, 3)
    layer(x)
    randomize(layer)
    seq, *states = layer(x, mask=MASK)
    # pre-padded row: zeros before the first real step
    assert torch.all(seq[0, :2] == 0)
    # post-padded row: the last real output repeats, and the final state is the one at step 4
    torch.testing.assert_close(seq[1, 5], seq[1, 4])
    torch.testing.assert_close(seq[1, 6], seq[1, 4])
    torch.testing.assert_close(states[0][1], seq[1, 4])
    # the same row run unpadded gives the same numbers
    short = layer(x[1:2, :5])
    torch.testing.assert_close(short[0][0], seq[1, :5], rtol=1e-5, atol=1e-6)
    # fully masked row: initial (zero) state, zero outputs
    assert torch.all(seq[3] == 0) and torch.all(states[0][3] == 0)
    # masked inputs do not matter at all
    x2 = x.clone()
    x2[~MASK] = 1000.0
    torch.testing.assert_close(layer(x2, mask=MASK)[0], seq)


def test_mask_equals_dropping_padding_for_pre_padded_rows():
    layer = LSTM(4)
    x = torch.randn(1, 6, 3)
    layer(x)
    randomize(layer)
    padded = torch.cat([torch.zeros(1, 3, 3), x], dim=1)
    mask = torch.tensor([[False] * 3 + [True] * 6])
    torch.testing.assert_close(layer(padded, mask=mask), layer(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_running_in_two_halves_with_passed_state_equals_whole(cls):
    layer = cls(5, return_sequences=True, return_state=True)
    x = torch.randn(2, 10, 3)
    layer(x)
    randomize(layer)
    whole, *whole_states = layer(x)
    first, *states = layer(x[:, :4])
    second, *final = layer(x[:, 4:], initial_state=states)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-5, atol=1e-6)
    for a, b in zip(final, whole_states):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_fused_path_equals_separate_layers(merge_mode):
    layer = Bidirectional(GRU(4, return_sequences=True, return_state=True), merge_mode=merge_mode)
    x = torch.randn(4, 7, 3)
    layer(x)
    randomize(layer)
    fused = layer(x, mask=MASK)
    f, b = layer.forward_layer, layer.backward_layer
    f_seq, f_st = f.run(x, MASK, f.initial_states(x, None), False)
    b_seq, b_st = b.run(x, MASK, b.initial_states(x, None), False)
    b_seq = b_seq.flip(1)
    merged = {
        "concat": lambda: torch.cat([f_seq, b_seq], -1),
        "sum": lambda: f_seq + b_seq,
        "mul": lambda: f_seq * b_seq,
        "ave": lambda: (f_seq + b_seq) / 2,
        None: lambda: [f_seq, b_seq],
    }[merge_mode]()
    outs = fused[:2] if merge_mode is None else fused[:1]
    expected = merged if merge_mode is None else [merged]
    for a, e in zip(outs, expected):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)
    for a, e in zip(fused[len(outs):], f_st + b_st):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)


def test_nondefault_activation_uses_loop_and_matches_manual_step():
    layer = LSTM(3, activation="relu", recurrent_activation="hard_sigmoid")
    assert layer.fused_mode(False) is None
    x = torch.randn(2, 4, 2)
    layer(x)
    randomize(layer)
    k, r, b = (torch.tensor(w) for w in layer.get_weights())
    h = c = torch.zeros(2, 3)
    hs = lambda v: torch.clamp(v / 6 + 0.5, 0, 1)  # noqa: E731  (Keras 3 hard_sigmoid)
    for t in range(4):
        z = x[:, t] @ k + h @ r + b
        i, f, g, o = z.chunk(4, 1)
        c = hs(f) * c + hs(i) * torch.relu(g)
        h = hs(o) * torch.relu(c)
    torch.testing.assert_close(layer(x), h, rtol=1e-5, atol=1e-6)


def test_gru_reset_before_matches_manual_step():
    layer = GRU(3, reset_after=False)
    x = torch.randn(2, 4, 2)
    layer(x)
    randomize(layer)
    k, r, b = (torch.tensor(w) for w in layer.get_weights())
    kz, kr, kh = k.chunk(3, 1)
    rz, rr, rh = r.chunk(3, 1)
    bz, br, bh = b.chunk(3)
    h = torch.zeros(2, 3)
    for t in range(4):
        xt = x[:, t]
        z = torch.sigmoid(xt @ kz + bz + h @ rz)
        rg = torch.sigmoid(xt @ kr + br + h @ rr)
        hh = torch.tanh(xt @ kh + bh + (rg * h) @ rh)
        h = z * h + (1 - z) * hh
    torch.testing.assert_close(layer(x), h, rtol=1e-5, atol=1e-6)


def test_unit_forget_bias_and_initializers():
    layer = LSTM(4)
    layer(np.zeros((1, 2, 3), "float32"))
    kernel, recurrent, bias = layer.get_weights()
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    # orthogonal recurrent kernel: rows orthonormal
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(4), atol=1e-5)
    limit = np.sqrt(6 / (3 + 16))
    assert np.abs(kernel).max() <= limit


def test_dropout_only_in_training_and_recurrent_dropout_runs_loop():
    layer = LSTM(4, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    x = torch.randn(8, 5, 3)
    a, b = layer(x, training=False), layer(x, training=False)
    torch.testing.assert_close(a, b)
    assert layer.fused_mode(True) is None and layer.fused_mode(False) == "lstm"
    torch.manual_seed(1)
    c = layer(x, training=True)
    assert not torch.allclose(a, c)


def test_gradients_flow_through_fused_masked_path():
    layer = Bidirectional(LSTM(4))
    x = torch.randn(4, 7, 3, requires_grad=True)
    layer(x, mask=MASK).sum().backward()
    assert x.grad is not None
    # masked inputs get no gradient
    assert torch.all(x.grad[~MASK] == 0)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_bad_inputs_name_the_layer_and_shapes():
    layer = LSTM(4, name="enc")
    layer(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"'enc' \(LSTM\) expected input shape \(None, 5, 3\), got \(2, 5, 4\)"):
        layer(np.zeros((2, 5, 4), "float32"))
    with pytest.raises(ValueError, match="expects inputs of shape \\(batch, time, features\\)"):
        LSTM(3)(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="initial state"):
        layer(np.zeros((2, 5, 3), "float32"), initial_state=[np.zeros((2, 4), "float32")])
    with pytest.raises(ValueError, match="units must be a positive integer"):
        GRU(0)
    with pytest.raises(TypeError, match="unexpected argument"):
        LSTM(3, unitz=4)
    with pytest.raises(ValueError, match="has 3 weight arrays, got 2"):
        layer.set_weights(layer.get_weights()[:2])


@pytest.mark.parametrize("cell", ["SimpleRNN", "GRU", "LSTM", "MinGRU", "MinLSTM"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_an_empty_batch_gives_empty_outputs_and_gradients(cell, return_sequences):
    import rnnkit.layers as L

    layer = getattr(L, cell)(3, return_sequences=return_sequences)
    layer(torch.randn(2, 4, 5))
    x = torch.randn(0, 4, 5, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    assert out.shape == ((0, 4, 3) if return_sequences else (0, 3)) and x.grad.shape == (0, 4, 5)
    assert Bidirectional(getattr(L, cell)(3, return_sequences=True))(x).shape == (0, 4, 6)


def test_simple_rnn_refuses_recurrent_activation_as_keras_does():
    from rnnkit.layers import SimpleRNN

    with pytest.raises(TypeError, match="SimpleRNN.*recurrent_activation"):
        SimpleRNN(3, recurrent_activation="relu")
