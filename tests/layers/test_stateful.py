"""Stateful recurrent layers (stateful=True) against real Keras 3: states carried from call
to call and through predict/train_on_batch, reset, an explicit initial_state on a stateful
call, and the errors (tests/fixtures/keras/cells/make_cells_fixtures.py)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.layers import GRU, LSTM, RNN, Bidirectional, Dense, Input, LSTMCell, SimpleRNN, reset_states
from rnnkit.layers.base import shape_probe
from rnnkit.models import Sequential

from .test_cells import TwoStateCell, assert_same

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "keras" / "cells"
CASES = json.loads((HERE / "cells.json").read_text())["cases"]
ARRAYS = np.load(HERE / "cells.npz")

LAYERS = {
    "lstm": lambda: LSTM(4, stateful=True, return_sequences=True, return_state=True),
    "gru": lambda: GRU(4, stateful=True, return_state=True),
    "simple_rnn": lambda: SimpleRNN(4, stateful=True, return_sequences=True),
    "rnn_lstm_cell": lambda: RNN(LSTMCell(4), stateful=True, return_state=True),
    "rnn_two_state": lambda: RNN(TwoStateCell(3), stateful=True, return_state=True),
    "bidirectional_lstm": lambda: Bidirectional(LSTM(4, stateful=True, return_sequences=True), merge_mode="concat"),
    "bidirectional_gru_sum": lambda: Bidirectional(GRU(3, stateful=True), merge_mode="sum"),
}


def arr(case, name):
    return torch.tensor(ARRAYS[f"{case}/{name}"])


def load(case, structure):
    if isinstance(structure, list):
        return [load(case, s) for s in structure]
    return arr(case, structure)


def built(name, case):
    """The layer first in a model on ``Input(batch_shape=(2, 5, 3))``, with the fixture's weights."""
    layer = LAYERS[name]()
    model = Sequential([Input(batch_shape=(2, 5, 3)), layer])
    layer.set_weights([ARRAYS[f"{case}/w{k}"] for k in range(CASES[case]["n_weights"])])
    return model, layer


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_states_carry_across_calls_and_reset_as_keras(name):
    case = f"stateful_{name}"
    c = CASES[case]
    model, layer = built(name, case)
    xs = [arr(case, f"x{k}") for k in range(4)]
    mask = arr(case, "mask")
    results = iter(c["results"])
    for k in range(3):
        assert_same(layer(xs[k], mask=mask if k == 2 else None), load(case, next(results)))
    layer.reset_state()
    assert_same(layer(xs[3]), load(case, next(results)))
    if c["with_initial_state"]:  # Keras: the given states replace the carried ones, then carry on
        init = [arr(case, "init0"), arr(case, "init1")]
        assert_same(layer(xs[0], initial_state=init), load(case, next(results)))
        assert_same(layer(xs[1]), load(case, next(results)))
    layer.reset_states()  # Keras 2's name
    expected = load(case, next(results))
    if not isinstance(expected, list):  # predict over 3 batches of 2 carries the state between batches
        np.testing.assert_allclose(model.predict(arr(case, "big").numpy(), batch_size=2), expected.numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_states_are_not_updated_while_probing():
    layer = LSTM(3, stateful=True, batch_input_shape=(2, 4, 5))
    x = torch.rand(2, 4, 5)
    first = layer(x)
    carried = [s.clone() for s in layer.states]
    with shape_probe():
        layer(torch.rand(7, 4, 5))  # a stand-in batch of any size, and no state change
    assert all(torch.equal(a, b) for a, b in zip(carried, layer.states))
    layer.reset_state()
    torch.testing.assert_close(layer(x), first)


def test_train_on_batch_carries_detached_states_as_keras():
    case = "stateful_train"
    model = Sequential([Input(batch_shape=(2, 5, 3)), LSTM(4, stateful=True), Dense(1)])
    model.set_weights([ARRAYS[f"{case}/w{k}"] for k in range(CASES[case]["n_weights"])])
    model.compile(optimizer=__import__("rnnkit.keras", fromlist=["optimizers"]).optimizers.SGD(0.1), loss="mse")
    losses = [float(model.train_on_batch(ARRAYS[f"{case}/x{k}"], ARRAYS[f"{case}/y{k}"])) for k in range(3)]
    np.testing.assert_allclose(losses, CASES[case]["losses"], rtol=1e-5, atol=1e-6)
    assert not model.layers[0].states[0].requires_grad
    np.testing.assert_allclose(model.predict(ARRAYS[f"{case}/x0"], batch_size=2), ARRAYS[f"{case}/pred"],
                               rtol=1e-5, atol=1e-5)
    for reset in (reset_states, Sequential.reset_states):  # the helper, and the method it backs
        reset(model)
        np.testing.assert_allclose(model.predict(ARRAYS[f"{case}/x0"], batch_size=2), ARRAYS[f"{case}/pred_reset"],
                                   rtol=1e-5, atol=1e-5)


def test_direct_call_fixes_the_batch_from_the_first_array():
    layer = GRU(3, stateful=True)
    a = layer(np.ones((2, 4, 5), "float32"))
    b = layer(np.ones((2, 4, 5), "float32"))
    assert not torch.allclose(a, b)  # the second call started from the first call's state
    layer.reset_state()
    torch.testing.assert_close(layer(np.ones((2, 4, 5), "float32")), a)


def test_stateful_errors():
    with pytest.raises(ValueError, match=r"stateful=True needs a fixed batch size: give Input\(batch_shape="):
        Sequential([Input(shape=(5, 3)), LSTM(4, stateful=True)])
    with pytest.raises(ValueError, match="stateful=True needs a fixed batch size"):
        Sequential([Input(shape=(5, 3)), Bidirectional(GRU(4, stateful=True))])
    layer = LSTM(4, stateful=True, name="carrier")
    Sequential([Input(batch_shape=(2, 5, 3)), layer])
    with pytest.raises(ValueError, match=r"'carrier'.*batch size 2, got a batch of 3"):
        layer(np.zeros((3, 5, 3), "float32"))
    bi = Bidirectional(LSTM(4, stateful=True))
    bi(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="batch size 2, got a batch of 1"):
        bi(np.zeros((1, 5, 3), "float32"))


def test_stateful_config_round_trips_and_states_are_not_saved():
    model = Sequential([Input(batch_shape=(2, 5, 3)), LSTM(4, stateful=True, name="s")])
    assert model.layers[0].get_config()["stateful"] is True
    x = np.random.rand(2, 5, 3).astype("float32")
    first = model.predict(x)
    again = Sequential.from_config(model.get_config())
    again.set_weights(model.get_weights())
    model.predict(x)  # moves model's state on; the copy starts from zeros
    np.testing.assert_allclose(again.predict(x), first, rtol=1e-6, atol=1e-6)


def test_saved_keras_model_with_stateful_cells_loads_with_keras_numbers():
    import rnnkit

    model = rnnkit.load_model(HERE / CASES["saved"]["file"])
    rnn = model.layers[0]
    assert type(rnn).__name__ == "RNN" and rnn.stateful and [type(c).__name__ for c in rnn.cell.cells] == [
        "LSTMCell", "SimpleRNNCell"]
    # Two batches of 2 from zero states (Keras saves no states): the second starts where the first ended.
    np.testing.assert_allclose(model.predict(ARRAYS["saved/x"], batch_size=2), ARRAYS["saved/pred"],
                               rtol=1e-5, atol=1e-5)


def test_fit_without_shuffle_carries_states_from_batch_to_batch_as_keras():
    from rnnkit.keras import optimizers

    case = "stateful_fit"
    model = Sequential([Input(batch_shape=(2, 4, 3)), GRU(3, stateful=True), Dense(1)])
    model.set_weights([ARRAYS[f"{case}/w{k}"] for k in range(CASES[case]["n_weights"])])
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    history = model.fit(ARRAYS[f"{case}/x"], ARRAYS[f"{case}/y"], batch_size=2, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], CASES[case]["losses"], rtol=1e-5, atol=1e-6)
    for got, k in zip(model.get_weights(), range(CASES[case]["n_weights"])):
        np.testing.assert_allclose(got, ARRAYS[f"{case}/trained{k}"], rtol=1e-5, atol=1e-6)


def test_bidirectional_reset_and_initial_state_rules_follow_keras():
    with pytest.raises(AttributeError, match="needs a stateful layer"):
        Bidirectional(LSTM(3)).reset_state()
    with pytest.raises(ValueError, match="agree on return_sequences, return_state and stateful"):
        Bidirectional(LSTM(3, stateful=True), backward_layer=LSTM(3, go_backwards=True))
    bi = Bidirectional(LSTM(3, stateful=True))
    assert bi.states is None
    bi(np.ones((2, 4, 5), "float32"))
    assert len(bi.states) == 4 and all(s.shape == (2, 3) for s in bi.states)
    bi.reset_states()
    assert bi.states is None
    assert [tuple(s.shape) for s in LSTM(3).get_initial_state(4)] == [(4, 3), (4, 3)]
    assert [tuple(s.shape) for s in RNN(TwoStateCell(2)).get_initial_state(4)] == [(4, 2), (4, 2)]
