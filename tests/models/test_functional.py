"""Functional models (``keras.Model(inputs, outputs)``) against real Keras 3's numbers.

Fixtures: tests/fixtures/keras/functional/ (made by make_functional_fixtures.py): the same
architectures built in Keras, their ``get_weights()`` and outputs. rnnkit builds each one with
``import rnnkit.keras as keras``, takes Keras's weight list as is, and must predict the same.
"""
import json

import numpy as np
import pytest
import torch

import rnnkit.keras as keras
from rnnkit.keras import layers as L

from ..conftest import FIXTURES

HERE = FIXTURES / "keras" / "functional"
CASES = json.loads((HERE / "functional.json").read_text())["cases"]


def load(name):
    data = np.load(HERE / f"{name}.npz")
    pick = lambda p: [data[f"{p}{i}"] for i in range(sum(1 for k in data.files if k.startswith(p)))]  # noqa: E731
    return pick("x"), pick("w"), pick("y")


def call(model, x):
    """A direct inference call, its outputs as NumPy (list/dict structure kept)."""
    out = model(x)
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return [np.asarray(v) for v in out]
    return np.asarray(out)


def check_against_keras(name, model, feed=None):
    xs, ws, ys = load(name)
    case = CASES[name]
    assert [type(layer).__name__ for layer in model.layers] == case["layers"]
    assert [list(w.shape) for w in model.get_weights()] == case["weight_shapes"]
    assert model.count_params() == case["count_params"]
    model.set_weights(ws)
    out = call(model, feed if feed is not None else (xs if len(xs) > 1 else xs[0]))
    if isinstance(out, dict):
        out = [out[k] for k in sorted(out)]
    out = out if isinstance(out, list) else [out]
    assert len(out) == len(ys)
    for got, want in zip(out, ys):
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
    return model


# ------------------------------------------------------------------ seq2seq
def seq2seq_models():
    enc_in = keras.Input(shape=(None, 6))
    _, h, c = L.LSTM(8, return_state=True)(enc_in)
    dec_in = keras.Input(shape=(None, 7))
    dec_lstm = L.LSTM(8, return_sequences=True, return_state=True)
    dec_seq, _, _ = dec_lstm(dec_in, initial_state=[h, c])
    dec_dense = L.Dense(7, activation="softmax")
    train = keras.Model([enc_in, dec_in], dec_dense(dec_seq))
    encoder = keras.Model(enc_in, [h, c])
    h_in, c_in = keras.Input(shape=(8,)), keras.Input(shape=(8,))
    d_seq, d_h, d_c = dec_lstm(dec_in, initial_state=[h_in, c_in])
    decoder = keras.Model([dec_in, h_in, c_in], [dec_dense(d_seq), d_h, d_c])
    return train, encoder, decoder


def test_encoder_decoder_with_initial_state_matches_keras():
    train, _, _ = seq2seq_models()
    check_against_keras("seq2seq_train", train)


def test_inference_models_share_the_trained_layers():
    train, encoder, decoder = seq2seq_models()
    _, ws, _ = load("seq2seq_train")
    train.set_weights(ws)  # only the training model is given weights...
    xs, _, ys = load("seq2seq_encoder")
    for got, want in zip(call(encoder, xs[0]), ys):  # ...and the encoder built from its layers has them
        np.testing.assert_allclose(got, want, atol=2e-5)
    xs, _, ys = load("seq2seq_decoder")
    for got, want in zip(call(decoder, xs), ys):
        np.testing.assert_allclose(got, want, atol=2e-5)
    assert decoder.get_layer(index=3) is train.get_layer(index=3)  # the decoder LSTM, one object


def test_encoder_decoder_trains_and_the_inference_models_follow():
    train, encoder, _ = seq2seq_models()
    train.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x_enc, x_dec = rng.random((16, 5, 6)).astype("float32"), rng.random((16, 4, 7)).astype("float32")
    y = np.eye(7, dtype="float32")[rng.integers(0, 7, (16, 4))]
    before = call(encoder, x_enc)[0]
    history = train.fit([x_enc, x_dec], y, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(call(encoder, x_enc)[0], before)  # the encoder's LSTM was trained


# ------------------------------------------------------------ structure
def test_layers_inputs_outputs_and_get_layer():
    train, encoder, decoder = seq2seq_models()
    assert len(train.inputs) == 2 and len(train.outputs) == 1
    assert [type(layer).__name__ for layer in train.layers] == CASES["seq2seq_train"]["layers"]
    lstm = train.get_layer(index=2)
    assert train.get_layer(lstm.name) is lstm
    assert lstm.output[0].shape == (None, 8)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        train.get_layer("nope")
    dec_lstm = train.get_layer(index=3)
    with pytest.raises(AttributeError, match="called 2 times"):
        dec_lstm.output  # noqa: B018  (a shared layer has no single output)


def test_symbolic_tensors_know_their_shapes_and_refuse_values():
    x = keras.Input(shape=(None, 4), name="x")
    y = L.LSTM(3, return_sequences=True)(x)
    assert x.shape == (None, None, 4) and y.shape == (None, None, 3)
    with pytest.raises(TypeError, match="functional API"):
        np.asarray(y, dtype=np.float32)
    with pytest.raises(TypeError, match="functional API"):
        L.Dense(2)(np.array([y, y], dtype=object))


def test_disconnected_graph_duplicate_names_and_bad_inputs_are_one_line_errors():
    a, b = keras.Input(shape=(3,)), keras.Input(shape=(3,))
    out = L.Dense(2)(b)
    with pytest.raises(ValueError, match="graph disconnected"):
        keras.Model(a, out)
    x = keras.Input(shape=(3,))
    h = L.Dense(2, name="same")(x)
    with pytest.raises(ValueError, match="'same' is used 2 times"):
        keras.Model(x, L.Dense(2, name="same")(h))
    with pytest.raises(TypeError, match="must be symbolic"):
        keras.Model(x, np.zeros(3))
    model = keras.Model(x, h)
    with pytest.raises(ValueError, match=r"expects shape \(None, 3\), got \(None, 4\)"):
        model.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="takes 1 input"):
        model([np.zeros((2, 3)), np.zeros((2, 3))])


def test_layer_called_on_incompatible_shape_names_layer_and_shapes():
    dense = L.Dense(2, name="d")
    dense(keras.Input(shape=(3,)))
    with pytest.raises(ValueError, match=r"'d'.*\(None, 3\).*\(None, 5\)"):
        dense(keras.Input(shape=(5,)))


def test_masks_travel_along_the_graph():
    ids = keras.Input(shape=(5,), dtype="int32")
    seq = L.LSTM(3, return_sequences=True)(L.Embedding(10, 4, mask_zero=True)(ids))
    last = L.LSTM(2)(seq)
    model = keras.Model(ids, [seq, last])
    x = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    seq_out, last_out = model.predict(x)
    # masked steps repeat the last real output (Keras's rule), so the final LSTM sees 3 steps
    np.testing.assert_allclose(seq_out[0, 3], seq_out[0, 2], atol=1e-6)
    short = keras.Model(ids, last).predict(np.array([[1, 2, 3, 0, 0]]))
    trimmed = keras.Model(ids, last).predict(np.array([[1, 2, 3, 0, 0]]))
    np.testing.assert_allclose(short, trimmed)
    outs, masks = model.forward_with_mask(torch.as_tensor(x))
    assert masks[0].tolist() == (x != 0).tolist() and masks[1] is None


def test_operators_on_symbolic_tensors_record_layers():
    x = keras.Input(shape=(4,))
    y = 2 * L.Dense(3, use_bias=False, kernel_initializer="ones")(x) + 1
    z = (-y)[:, :2]
    model = keras.Model(x, z)
    out = model.predict(np.ones((2, 4), dtype="float32"))
    np.testing.assert_allclose(out, -np.full((2, 2), 9.0))


def test_shared_layer_loop_runs_each_call_without_rechecking():
    x = keras.Input(shape=(4,))
    dense = L.Dense(4, activation="tanh")
    h, outs = x, []
    for _ in range(10):
        h = dense(h)
        outs.append(h)
    model = keras.Model(x, outs)
    assert model.count_params() == 20 and len(dense._inbound_nodes) == 10
    data = np.random.default_rng(0).random((3, 4)).astype("float32")
    got = model.predict(data)
    ref = torch.as_tensor(data)
    for step in got:
        ref = torch.tanh(ref @ dense.kernel + dense.bias)
        np.testing.assert_allclose(step, ref.detach().numpy(), atol=1e-6)


# -------------------------------------------------------- summary/config
def test_summary_of_a_multi_input_model_has_connected_to():
    train, _, _ = seq2seq_models()
    text = train.summary_text()
    lines = text.splitlines()
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "Connected", "to"]
    assert len(lines[1]) == 98
    assert any("input_layer[0][0]" in line for line in lines)
    assert "Total params: 1,055" in text
    lstm_rows = [i for i, line in enumerate(lines) if "(LSTM)" in line]
    # the decoder LSTM reads its input and two initial states: three connections
    assert lines[lstm_rows[1] + 1].strip().endswith("[0][1]") and lines[lstm_rows[1] + 2].strip().endswith("[0][2]")


def test_sequential_like_functional_summary_has_three_columns():
    x = keras.Input(shape=(33,))
    model = keras.Model(x, L.Dense(8)(L.Dense(4)(x)), name="chain")
    lines = model.summary_text().splitlines()
    assert lines[0] == 'Model: "chain"' and len(lines[1]) == 65
    assert lines[4].startswith("input_layer (InputLayer)") and "[(None, 33)]" in lines[4]


def test_config_round_trip_rebuilds_the_same_graph():
    train, _, _ = seq2seq_models()
    _, ws, ys = load("seq2seq_train")
    train.set_weights(ws)
    clone = keras.Model.from_config(train.get_config())
    assert [type(l).__name__ for l in clone.layers] == [type(l).__name__ for l in train.layers]
    clone.set_weights(train.get_weights())
    xs, _, _ = load("seq2seq_train")
    np.testing.assert_allclose(call(clone, xs), ys[0], atol=2e-5)


def test_save_and_load_a_functional_model(tmp_path):
    train, _, _ = seq2seq_models()
    _, ws, ys = load("seq2seq_train")
    train.set_weights(ws)
    train.compile(optimizer="adam", loss="categorical_crossentropy")
    train.save(tmp_path / "m.rnnkit")
    loaded = keras.models.load_model(tmp_path / "m.rnnkit")
    xs, _, _ = load("seq2seq_train")
    np.testing.assert_allclose(call(loaded, xs), ys[0], atol=2e-5)
    loaded.save_weights(tmp_path / "w.safetensors")
    again, _, _ = seq2seq_models()  # same architecture, other automatic names
    again.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_allclose(call(again, xs), ys[0], atol=2e-5)


def test_to_json_and_model_from_json():
    train, _, _ = seq2seq_models()
    text = train.to_json()
    assert json.loads(text)["class_name"] == "Functional"
    clone = keras.models.model_from_json(text)
    assert clone.count_params() == train.count_params()


# ------------------------------------------------------------ subclassing
class TutorialModel(keras.Model):
    """The TensorFlow "text generation with an RNN" tutorial's model, as the tutorial writes it."""

    def __init__(self, vocab_size, embedding_dim, rnn_units):
        super().__init__()
        self.embedding = L.Embedding(vocab_size, embedding_dim)
        self.gru = L.GRU(rnn_units, return_sequences=True, return_state=True)
        self.dense = L.Dense(vocab_size)

    def call(self, inputs, states=None, return_state=False, training=False):
        x = self.embedding(inputs, training=training)
        if states is None:
            x, states = self.gru(x, training=training)
        else:
            x, states = self.gru(x, initial_state=states, training=training)
        x = self.dense(x, training=training)
        return (x, states) if return_state else x


def test_subclassed_model_threads_states_like_keras():
    data = np.load(HERE / "subclassed_tutorial.npz")
    case = CASES["subclassed_tutorial"]
    model = TutorialModel(11, 4, 6)
    with pytest.raises(ValueError, match="not been built"):
        model.count_params()
    logits, states = model(data["x0"], return_state=True)  # the first call builds it
    assert [type(layer).__name__ for layer in model.layers] == case["layers"]
    assert [list(w.shape) for w in model.get_weights()] == case["weight_shapes"]
    assert model.count_params() == case["count_params"]
    model.set_weights([data[f"w{i}"] for i in range(len(case["weight_shapes"]))])
    logits, states = model(data["x0"], return_state=True)
    np.testing.assert_allclose(np.asarray(logits), data["y0"], atol=2e-5)
    np.testing.assert_allclose(np.asarray(states), data["y1"], atol=2e-5)
    more = model(data["x0"][:, :2], states=states)  # another length, the carried state
    np.testing.assert_allclose(np.asarray(more), data["y2"], atol=2e-5)


def test_subclassed_model_summary_save_and_load_weights(tmp_path):
    model = TutorialModel(11, 4, 6)
    model.build((None, 5))
    text = model.summary_text()
    assert "Total params: 337" in text and "multiple" in text
    model.save_weights(tmp_path / "w.safetensors")
    other = TutorialModel(11, 4, 6)
    other.build((None, 5))
    other.load_weights(tmp_path / "w.safetensors")
    x = np.arange(10).reshape(2, 5) % 11
    np.testing.assert_allclose(np.asarray(other(x)), np.asarray(model(x)), atol=1e-6)
    with pytest.raises(NotImplementedError, match="subclassed model"):
        model.get_config()


def test_training_flag_reaches_layers_inside_a_subclassed_call():
    class Dropper(keras.Model):
        def __init__(self):
            super().__init__()
            self.drop = L.Dropout(0.5)

        def call(self, inputs, training=False):
            return self.drop(inputs)  # no training= passed on: Keras's call context supplies it

    model = Dropper()
    x = np.ones((4, 100), dtype="float32")
    assert np.allclose(np.asarray(model(x)), 1.0)
    dropped = np.asarray(model(x, training=True))
    assert (dropped == 0).any() and np.allclose(dropped[dropped != 0], 2.0)


def test_layer_build_called_directly_marks_it_built_and_keeps_set_weights():
    layer = L.Dense(2)
    layer.build((None, 3))
    assert layer.built
    layer.set_weights([np.ones((3, 2)), np.full(2, 0.5)])
    out = np.asarray(layer(np.ones((1, 3), dtype="float32")))
    np.testing.assert_allclose(out, [[3.5, 3.5]])


def test_add_weight_orders_trainable_first_and_regularizes():
    class Scale(L.Layer):
        def build(self, input_shape):
            self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", regularizer="l2", name="w")

        def call(self, inputs):
            return inputs * self.w + self.count

    layer = Scale()
    layer(np.ones((1, 3), dtype="float32"))
    shapes = [w.shape for w in layer.get_weights()]
    assert shapes == [(3,), ()]  # Keras lists the trainable weights first
    assert [p.requires_grad for p in layer.parameters()] == [False, True]
    layer.trainable = False
    layer.trainable = True
    assert not layer.count.requires_grad  # a non-trainable weight is never unfrozen
    np.testing.assert_allclose(float(layer.regularization_loss().detach()), 0.01 * 3)
    with pytest.raises(ValueError, match="keyword"):
        layer.add_weight("oops", (2,))
    with pytest.raises(ValueError, match="constraint"):
        layer.add_weight(shape=(2,), constraint="non_neg")


def test_user_layer_without_compute_output_shape_gets_shapes_from_a_run():
    class Pairs(L.Layer):
        def call(self, inputs):
            return inputs.reshape(inputs.shape[0], -1, 2)

    x = keras.Input(shape=(None, 4))
    y = Pairs()(x)
    assert y.shape == (None, None, 2)


# ---------------------------------------------- attention, dict I/O, nesting
def ng_model(Tx, Ty, n_a, n_s, human, machine):
    """Ng's date-translation model (Sequence Models, week 3) as the course writes it."""
    repeator = L.RepeatVector(Tx)
    concatenator = L.Concatenate(axis=-1)
    densor1 = L.Dense(10, activation="tanh")
    densor2 = L.Dense(1, activation="relu")
    activator = L.Activation(lambda x: keras.activations.softmax(x, axis=1))
    dotor = L.Dot(axes=1)
    post_lstm = L.LSTM(n_s, return_state=True)
    output_layer = L.Dense(machine, activation="softmax")
    X = keras.Input(shape=(Tx, human))
    s0 = keras.Input(shape=(n_s,))
    c0 = keras.Input(shape=(n_s,))
    s, c = s0, c0
    a = L.Bidirectional(L.LSTM(n_a, return_sequences=True))(X)
    outputs = []
    for _ in range(Ty):
        concat = concatenator([a, repeator(s)])
        alphas = activator(densor2(densor1(concat)))
        context = dotor([alphas, a])
        _, s, c = post_lstm(context, initial_state=[s, c])
        outputs.append(output_layer(s))
    return keras.Model(inputs=[X, s0, c0], outputs=outputs)


def test_ng_attention_model_matches_keras_and_has_the_courses_52960_parameters():
    check_against_keras("ng_attention", ng_model(7, 4, 5, 6, 9, 5))
    full = ng_model(30, 10, 32, 64, 37, 11)
    assert full.count_params() == CASES["ng_full_size"]["count_params"] == 52960
    assert [type(layer).__name__ for layer in full.layers] == CASES["ng_full_size"]["layers"]
    assert "Total params: 52,960" in full.summary_text()


def test_ng_attention_model_trains_with_one_loss_per_output():
    model = ng_model(7, 4, 5, 6, 9, 5)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy", metrics=[["accuracy"]] * 4)
    rng = np.random.default_rng(0)
    x = np.eye(9, dtype="float32")[rng.integers(0, 9, (64, 7))]
    y = [np.eye(5, dtype="float32")[(x[:, t].argmax(-1)) % 5] for t in range(4)]  # copy the first 4 symbols
    zeros = np.zeros((64, 6), dtype="float32")
    history = model.fit([x, zeros, zeros], y, epochs=30, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.85 * history.history["loss"][0]


def multi_io_model():
    title = keras.Input(shape=(6,), dtype="int32", name="title")
    body = keras.Input(shape=(6,), dtype="int32", name="body")
    emb = L.Embedding(20, 4, mask_zero=True, name="shared_embedding")
    t = L.LSTM(5, name="title_lstm")(emb(title))
    b = L.GRU(5, name="body_gru")(emb(body))
    merged = L.Concatenate(name="merge")([t, b])
    priority = L.Dense(1, activation="sigmoid", name="priority")(merged)
    dept = L.Dense(3, activation="softmax", name="department")(merged)
    return keras.Model({"title": title, "body": body}, {"priority": priority, "department": dept}, name="tickets")


def test_named_dict_inputs_and_outputs_with_masks_match_keras():
    model = multi_io_model()
    xs, _, _ = load("multi_io")
    check_against_keras("multi_io", model, feed={"title": xs[0], "body": xs[1]})
    assert model.output_names == CASES["multi_io"]["output_names"]  # dict outputs in key order, as Keras
    out = model.predict({"title": xs[0], "body": xs[1]})
    assert sorted(out) == ["department", "priority"]
    with pytest.raises(ValueError, match="'title'"):
        model.predict({"body": xs[1]})


def test_dict_model_fits_with_a_loss_per_named_output_and_loss_weights():
    model = multi_io_model()
    model.compile(optimizer="adam", loss={"priority": "binary_crossentropy", "department": "sparse_categorical_crossentropy"},
                  loss_weights={"priority": 1.0, "department": 0.5})
    rng = np.random.default_rng(1)
    x = {"title": rng.integers(0, 20, (32, 6)), "body": rng.integers(0, 20, (32, 6))}
    y = {"priority": rng.integers(0, 2, (32, 1)).astype("float32"), "department": rng.integers(0, 3, (32,))}
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert {"loss", "priority_loss", "department_loss"} <= set(history.history)


def test_nested_functional_and_sequential_models_as_layers_match_keras():
    inner_in = keras.Input(shape=(5, 3))
    inner = keras.Model(inner_in, L.Dense(4, activation="tanh")(L.SimpleRNN(6, return_sequences=True)(inner_in)),
                        name="inner")
    head = keras.Sequential([L.Dense(2)], name="head")
    outer_in = keras.Input(shape=(5, 3))
    z = inner(outer_in)
    z2 = inner(L.Dense(3, name="pre")(outer_in))
    check_against_keras("nested", keras.Model(outer_in, head(L.Add()([z, z2])), name="outer"))


class Scaled(L.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="w")
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal", name="b")

    def call(self, inputs):
        return keras.ops.tanh(keras.ops.matmul(inputs, self.w) + self.b) * keras.ops.sigmoid(self.count + 1.0)


class MinimalRNNCell(L.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="orthogonal",
                                                name="recurrent_kernel")

    def call(self, inputs, states):
        prev = states[0]
        output = keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(prev, self.recurrent_kernel)
        return output, [output]


def test_custom_layer_with_add_weight_and_ops_after_a_custom_cell_matches_keras():
    x_in = keras.Input(shape=(5, 3))
    seq = L.RNN(MinimalRNNCell(4), return_sequences=True)(x_in)
    check_against_keras("custom_layer_and_cell", keras.Model(x_in, Scaled(2)(seq)))


def test_the_models_training_flag_overrides_a_training_written_into_a_graph_call():
    # Keras 3's functional models pass their own training flag to every layer that takes one
    # (models/functional.py operation_fn), over a `training=` recorded in the call.
    x_in = keras.Input((200,))
    out = keras.layers.Dropout(0.5)(x_in, training=False)
    model = keras.Model(x_in, out)
    x = np.ones((4, 200), dtype="float32")
    assert (np.asarray(model(x)) == 1).all()  # no flag given: the recorded training=False holds
    trained = np.asarray(model(x, training=True).detach())
    assert (trained == 0).any() and (trained == 2).any()
