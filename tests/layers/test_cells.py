"""Cells (SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells, user-written cells) and the
RNN(cell) wrapper against real Keras 3 (tests/fixtures/keras/cells/make_cells_fixtures.py),
and RNN(built-in cell) on the same fused op as the layer."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.layers import (
    GRU, LSTM, RNN, Bidirectional, GRUCell, Layer, LSTMCell, SimpleRNN, SimpleRNNCell, StackedRNNCells,
    deserialize_layer, recurrent, serialize_layer,
)

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "keras" / "cells"
META = json.loads((HERE / "cells.json").read_text())
ARRAYS = np.load(HERE / "cells.npz")
CASES = META["cases"]
STATE_TYPES = {}  # case -> types of the states MinimalRNNCell.call got (Keras: a tuple under RNN)
CURRENT = [None]


class MinimalRNNCell(Layer):
    """The fixture script's MinimalRNNCell in torch: ``h = x K + h_prev R``."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = nn.Parameter(torch.zeros(input_shape[-1], self.units))
        self.recurrent_kernel = nn.Parameter(torch.zeros(self.units, self.units))

    def call(self, inputs, states):
        STATE_TYPES.setdefault(CURRENT[0], set()).add(type(states).__name__)
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]


class TwoStateCell(Layer):
    """The fixture script's TwoStateCell: states ``[u, 2]``, output ``u + 1``, ``training`` doubles it."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, 2]
        self.output_size = units + 1

    def build(self, input_shape):
        self.kernel = nn.Parameter(torch.zeros(input_shape[-1], self.units))
        self.mix = nn.Parameter(torch.zeros(2, self.units))

    def call(self, inputs, states, training=False):
        h, s = states
        h = torch.tanh(inputs @ self.kernel + 0.5 * h + s @ self.mix)
        s = 0.9 * s + h.mean(-1, keepdim=True)
        out = torch.cat([h, s[:, :1]], -1)
        if training:
            out = out * 2.0
        return out, [h, s]


def cell_of(spec):
    if spec["cell"] == "stacked":
        return StackedRNNCells([cell_of(s) for s in spec["cells"]])
    cls = {"SimpleRNNCell": SimpleRNNCell, "LSTMCell": LSTMCell, "GRUCell": GRUCell,
           "MinimalRNNCell": MinimalRNNCell, "TwoStateCell": TwoStateCell}[spec["cell"]]
    return cls(spec["units"], **spec.get("kwargs", {}))


def arr(case, name):
    return torch.tensor(ARRAYS[f"{case}/{name}"])


def weights(case):
    return [ARRAYS[f"{case}/w{k}"] for k in range(CASES[case]["n_weights"])]


def load(case, structure):
    """The fixture's nested output structure (names, as the JSON holds them) as tensors."""
    if isinstance(structure, list):
        return [load(case, s) for s in structure]
    return arr(case, structure)


def assert_same(got, expected):
    if isinstance(expected, list):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_same(g, e)
    else:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def as_lists(shape):
    return [as_lists(s) for s in shape] if isinstance(shape, (list, tuple)) else shape


STEP = sorted(k for k, v in CASES.items() if v["kind"] == "step")
RNNS = sorted(k for k, v in CASES.items() if v["kind"] == "rnn")


@pytest.mark.parametrize("case", STEP)
def test_cell_one_step_equals_keras(case):
    c = CASES[case]
    cell = cell_of(c)
    x = arr(case, "x")
    states = [arr(case, f"state{j}") for j in range(c["n_states"])]
    cell(x, states)  # builds
    assert [list(w.shape) for w in cell.get_weights()] == c["weight_shapes"]
    cell.set_weights(weights(case))
    out, new = cell(x, states)
    assert_same(out, load(case, c["out"]))
    assert_same(new, load(case, c["new"]))
    assert isinstance(new, list)
    if c["n_states"] == 1:  # a lone state tensor in, a lone tensor out (Keras's rule)
        out2, new2 = cell(x, states[0])
        assert isinstance(new2, torch.Tensor)
        torch.testing.assert_close(new2, new[0])


@pytest.mark.parametrize("case", RNNS)
def test_rnn_over_cell_equals_keras(case):
    c = CASES[case]
    call = c["call"]
    rnn = RNN(cell_of(c["spec"]), **c["layer"])
    x = arr(case, "x")
    rnn(x)  # builds
    assert [list(w.shape) for w in rnn.get_weights()] == c["weight_shapes"]
    rnn.set_weights(weights(case))
    kwargs = {"training": call["training"]}
    if call["mask"]:
        kwargs["mask"] = torch.tensor(np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 0]], bool))
    if c["initial_state"] is not None:
        kwargs["initial_state"] = load(case, c["initial_state"])
    CURRENT[0] = case
    out = rnn(x, **kwargs)
    assert_same(out, load(case, c["out"]))
    assert as_lists(rnn.compute_output_shape((None, 6, 5))) == c["output_shape"]


def test_user_cells_get_the_states_as_keras_hands_them():
    """Keras hands a cell a tuple under RNN, a list inside StackedRNNCells; so does rnnkit."""
    for case in RNNS:
        test_rnn_over_cell_equals_keras(case)
    got = {k: sorted(v) for k, v in STATE_TYPES.items() if k in META["custom_cell_state_types"]}
    assert got == META["custom_cell_state_types"] and got


@pytest.mark.parametrize("layer_cls,cell_cls,mode", [(LSTM, LSTMCell, "lstm"), (GRU, GRUCell, "gru"),
                                                     (SimpleRNN, SimpleRNNCell, "rnn_tanh")])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_rnn_of_builtin_cell_runs_the_layers_fused_op(monkeypatch, layer_cls, cell_cls, mode, go_backwards):
    calls = []
    real = recurrent.fused_run
    monkeypatch.setattr(recurrent, "fused_run", lambda m, *a: calls.append(m) or real(m, *a))
    x = np.random.rand(3, 6, 5).astype("float32")
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    layer = layer_cls(4, return_sequences=True, return_state=True, go_backwards=go_backwards)
    rnn = RNN(cell_cls(4), return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer(x), rnn(x)
    rnn.set_weights(layer.get_weights())
    assert rnn.fused_mode(False) == layer.fused_mode(False) == mode
    calls.clear()
    got, expected = rnn(x, mask=mask), layer(x, mask=mask)
    assert calls == [mode, mode]
    assert_same(list(got), list(expected))
    # Keras's weight order for both: [kernel, recurrent_kernel, bias].
    assert [w.shape for w in rnn.get_weights()] == [w.shape for w in layer.get_weights()]
    assert len(list(rnn.parameters())) == len(list(layer.parameters()))


def test_non_default_activation_cell_runs_the_step_loop_with_the_layers_numbers():
    x = np.random.rand(2, 5, 3).astype("float32")
    layer, rnn = LSTM(4, activation="relu"), RNN(LSTMCell(4, activation="relu"))
    layer(x), rnn(x)
    rnn.set_weights(layer.get_weights())
    assert rnn.fused_mode(False) is None
    torch.testing.assert_close(rnn(x), layer(x))


def test_bidirectional_over_rnn_of_cell_equals_bidirectional_layer():
    x = np.random.rand(2, 5, 3).astype("float32")
    a = Bidirectional(RNN(GRUCell(4), return_sequences=True))
    b = Bidirectional(GRU(4, return_sequences=True))
    a(x), b(x)
    a.set_weights(b.get_weights())
    torch.testing.assert_close(a(x), b(x))


def test_config_round_trip_keeps_cells_and_numbers():
    x = np.random.rand(2, 5, 3).astype("float32")
    rnn = RNN([LSTMCell(4, unit_forget_bias=False), GRUCell(3, reset_after=False)], return_sequences=True,
              go_backwards=True)
    y = rnn(x)
    cfg = rnn.get_config()
    assert cfg["cell"]["class_name"] == "StackedRNNCells"
    assert [c["class_name"] for c in cfg["cell"]["config"]["cells"]] == ["LSTMCell", "GRUCell"]
    assert {"return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask"} <= set(cfg)
    again = deserialize_layer(json.loads(json.dumps(serialize_layer(rnn))))
    again(x)
    again.set_weights(rnn.get_weights())
    torch.testing.assert_close(again(x), y)
    assert again.cell.cells[1].reset_after is False and again.cell.cells[0].unit_forget_bias is False


def test_cell_weights_train_through_rnn():
    rnn = RNN(StackedRNNCells([LSTMCell(4), MinimalRNNCell(2)]))
    x = torch.rand(2, 5, 3)
    rnn(x).sum().backward()
    assert len(list(rnn.parameters())) == 5
    assert all(p.grad is not None for p in rnn.parameters())


class NoState(Layer):
    def call(self, inputs, states):
        return inputs, states


class WrongStates(MinimalRNNCell):
    def call(self, inputs, states):
        return inputs @ self.kernel, [inputs @ self.kernel, inputs @ self.kernel]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="state_size"):
        RNN(NoState())
    with pytest.raises(ValueError, match="call"):
        RNN(object())
    with pytest.raises(ValueError, match="non-empty"):
        StackedRNNCells([])
    with pytest.raises(ValueError, match="returned 2 state tensor"):
        RNN(WrongStates(3))(np.zeros((2, 4, 3), "float32"))
    rnn = RNN(LSTMCell(3))
    with pytest.raises(ValueError, match="initial state must have shape"):
        rnn(np.zeros((2, 4, 3), "float32"), initial_state=[np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32")])
    with pytest.raises(ValueError, match="takes 2 state tensor"):
        LSTMCell(3)(np.zeros((2, 5), "float32"), [np.zeros((2, 3), "float32")])
    with pytest.raises(ValueError, match="one step's inputs"):
        GRUCell(3)(np.zeros((2, 4, 5), "float32"), [np.zeros((2, 3), "float32")])
    with pytest.raises(TypeError, match="seed"):
        LSTMCell(3, seed=1)
    with pytest.raises(TypeError, match="recurrent_activation"):
        SimpleRNNCell(3, recurrent_activation="sigmoid")
