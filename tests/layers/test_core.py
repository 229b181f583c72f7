"""Core layers: Dense, Embedding, Dropout, Activation, Flatten, RepeatVector, TimeDistributed
(the Keras 3 argument cases come from ``tests/fixtures/keras/layers_args``)."""
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import regularizers
from rnnkit.layers import LSTM, Activation, Dense, Dropout, Embedding, Flatten, Input, RepeatVector, TimeDistributed

from ._keras_cases import ARRAYS, assert_matches, cases, run


def test_dense_on_vectors_and_sequences():
    d = Dense(4, activation="relu")
    x = np.random.rand(3, 5).astype("float32")
    y = d(x)
    kernel, bias = d.get_weights()
    assert kernel.shape == (5, 4) and bias.shape == (4,)
    np.testing.assert_allclose(y.detach().numpy(), np.maximum(x @ kernel + bias, 0), rtol=1e-6)
    seq = Dense(2)
    out = seq(np.random.rand(3, 7, 5).astype("float32"))
    assert out.shape == (3, 7, 2) and seq.output_shape == (None, 7, 2)
    assert seq.count_params() == 5 * 2 + 2


def test_dense_without_bias_and_regularizer_penalty():
    d = Dense(3, use_bias=False, kernel_regularizer=regularizers.l2(0.01))
    d(np.zeros((1, 4), "float32"))
    assert d.count_params() == 12 and len(d.get_weights()) == 1
    (kernel,) = d.get_weights()
    assert float(d.regularization_loss().detach()) == pytest.approx(0.01 * float((kernel**2).sum()), rel=1e-5)


def test_embedding_lookup_mask_and_range_errors():
    e = Embedding(10, 4, mask_zero=True, input_length=5)
    assert e.output_shape == (None, 5, 4)
    ids = np.array([[0, 0, 3, 9, 1]])
    out = e(ids)
    (table,) = e.get_weights()
    np.testing.assert_array_equal(out.detach().numpy()[0], table[ids[0]])
    np.testing.assert_array_equal(e.compute_mask(ids, None).numpy(), ids != 0)
    assert np.abs(table).max() <= 0.05  # Keras's uniform(-0.05, 0.05) initializer
    with pytest.raises(ValueError, match=r"token id 10 is out of range; expected ids in \[0, 9\]"):
        e(np.array([[1, 10]]))
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        e(np.array([[-1, 2]]))
    # float ids that are whole numbers are fine, as in Keras
    np.testing.assert_array_equal(e(np.array([[1.0, 2.0]])).detach().numpy(), table[[1, 2]][None])


def test_dropout_scales_in_training_only():
    d = Dropout(0.5)
    x = torch.ones(1000, 10)
    torch.testing.assert_close(d(x, training=False), x)
    y = d(x, training=True)
    kept = y != 0
    assert 0.4 < kept.float().mean() < 0.6
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0))
    shared = Dropout(0.5, noise_shape=(None, 1, 4))(torch.ones(8, 6, 4), training=True)
    assert torch.all(shared == shared[:, :1, :])  # one draw per feature, broadcast over time
    with pytest.raises(ValueError, match="rate must be in"):
        Dropout(1.5)


def test_activation_flatten_repeat_vector():
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(Activation("softmax")(x).sum(-1), torch.ones(2, 3))
    f = Flatten()
    assert f(x).shape == (2, 12) and f.output_shape == (None, 12)
    r = RepeatVector(5)
    assert r(torch.randn(2, 4)).shape == (2, 5, 4) and r.output_shape == (None, 5, 4)
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        Activation("nope")


def test_time_distributed_applies_the_same_dense_per_step():
    td = TimeDistributed(Dense(3))
    x = torch.randn(2, 5, 4)
    y = td(x)
    assert y.shape == (2, 5, 3) and td.output_shape == (None, 5, 3)
    kernel, bias = td.get_weights()
    np.testing.assert_allclose(y.detach().numpy(), x.numpy() @ kernel + bias, rtol=1e-5, atol=1e-6)
    assert td.count_params() == 15


def test_input_and_layer_naming():
    assert Input((33,)).shape == (None, 33)
    a, b, c = Dense(1), Dense(1), Dense(1, name="out")
    assert (a.name, b.name, c.name) == ("dense", "dense_1", "out")


def test_unbuilt_layer_errors():
    with pytest.raises(ValueError, match="not built yet"):
        Dense(3).count_params()
    with pytest.raises(ValueError, match="Dense: units must be a positive integer"):
        Dense(0)


def test_direct_calls_run_in_inference_mode_as_in_keras():
    x = np.ones((4, 6), "float32")
    drop = Dropout(0.5)
    np.testing.assert_array_equal(drop(x).numpy(), x)  # outside fit nothing is dropped
    assert (drop(x, training=True).numpy() == 0).any()
    model = rnnkit.Sequential([Dense(8, input_shape=(6,)), Dropout(0.9), Dense(2)])
    torch.testing.assert_close(model(x), model(x))
    lstm = LSTM(3, dropout=0.9)
    seq = np.random.default_rng(0).random((2, 5, 4)).astype("float32")
    torch.testing.assert_close(lstm(seq), lstm(seq))
    model.compile("adam", "mse")
    model.fit(x, np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    assert not model.training and not model.layers[1].training  # back to inference after fit


def test_unnamed_activations_run_but_cannot_be_saved(tmp_path):
    import torch.nn.functional as F

    dense = Dense(3, activation=lambda x: x * 2)  # as Keras: fine to use, fails only when saved
    x = np.ones((1, 2), "float32")
    assert dense(x).shape == (1, 3)
    with pytest.raises(ValueError, match="has no Keras name, so the layer cannot be saved"):
        dense.get_config()
    # torch's leaky_relu (slope 0.01) is not Keras's (0.2): it must not be saved under that name
    leaky = Dense(3, activation=F.leaky_relu)
    with pytest.raises(ValueError, match="has no Keras name"):
        leaky.get_config()
    assert Dense(3, activation=F.relu).get_config()["activation"] == "relu"


def test_an_unbuilt_layer_says_why_it_has_no_shapes():
    from rnnkit.layers import LSTM

    layer = LSTM(4)
    for what in ("input", "output"):
        with pytest.raises(AttributeError, match=f"layer 'lstm.*' has no defined {what} shape yet: it has not been "
                                                 f"built"):
            getattr(layer, f"{what}_shape")
    assert not hasattr(layer, "output_shape")
    with pytest.raises(AttributeError, match="'LSTM' object has no attribute 'missing'"):
        layer.missing


def test_cpu_embedding_lookup_has_f_embeddings_values_and_gradients():
    from rnnkit.layers._lookup import embedding_lookup

    g = torch.Generator().manual_seed(3)
    weight = torch.randn(50, 7, generator=g, dtype=torch.float64, requires_grad=True)
    for ids in (torch.randint(0, 50, (4, 30), generator=g), torch.randint(0, 5, (3, 2, 9), generator=g).int(),
                torch.tensor([[1, 1, 1, 1]])):  # repeated ids sum into one row
        upstream = torch.randn(*ids.shape, 7, generator=g, dtype=torch.float64)
        got = embedding_lookup(ids, weight)
        (grad,) = torch.autograd.grad((got * upstream).sum(), weight)
        want = torch.nn.functional.embedding(ids, weight)
        (want_grad,) = torch.autograd.grad((want * upstream).sum(), weight)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(grad, want_grad)
    assert torch.autograd.gradcheck(lambda w: embedding_lookup(torch.tensor([[3, 0, 3]]), w), (weight,))
    # second derivatives, as through F.embedding
    ids = torch.tensor([[3, 0, 3]])
    got = torch.autograd.grad(torch.autograd.grad(embedding_lookup(ids, weight).pow(3).sum(), weight,
                                                  create_graph=True)[0].sum(), weight)[0]
    want = torch.autograd.grad(torch.autograd.grad(torch.nn.functional.embedding(ids, weight).pow(3).sum(), weight,
                                                   create_graph=True)[0].sum(), weight)[0]
    torch.testing.assert_close(got, want)
    frozen = weight.detach()
    assert not embedding_lookup(ids, frozen).requires_grad


# ----------------------------------------------------- Keras 3 arguments (tests/fixtures/keras/layers_args)
@pytest.mark.parametrize("case", cases("Flatten"), ids=lambda c: c["case"])
def test_flatten_data_format_matches_keras(case):
    layer = assert_matches(case)
    assert layer.get_config()["data_format"] == case["config"]["data_format"]


@pytest.mark.parametrize("case", cases("Dense_reassigned"), ids=lambda c: c["case"])
def test_dense_activation_assigned_after_construction_runs_and_saves_as_in_keras(case):
    dense = Dense(**case["config"])
    dense.activation = case["reassigned"]  # a name, or None: linear (Keras: no activation)
    y, want, _ = run(case, layer=dense)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    # Keras's get_config fails after `activation = None`; rnnkit saves it as what it computes
    assert dense.get_config()["activation"] == (case["config_activation"] or "linear")
    again = Dense.from_config(dense.get_config())
    again(ARRAYS[case["x"]])
    again.set_weights(dense.get_weights())
    np.testing.assert_allclose(again(ARRAYS[case["x"]]).detach().numpy(), want, rtol=1e-5, atol=1e-5)


def test_a_reassigned_final_activation_changes_the_models_logit_shortcut():
    model = rnnkit.Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    assert model.final_activation == "softmax"
    model.layers[0].activation = None
    assert model.final_activation == "linear"
    act = Activation("relu")
    act.activation = "tanh"
    torch.testing.assert_close(act(torch.tensor([-1.0])), torch.tanh(torch.tensor([-1.0])))


@pytest.mark.parametrize("case", cases("Dense_activity") + cases("Conv1D_activity"), ids=lambda c: c["case"])
def test_activity_regularizer_penalty_matches_keras(case):
    layer = getattr(rnnkit.layers, case["class"])(**case["config"], activity_regularizer=regularizers.L1L2(
        **case["activity_regularizer"]))
    y, want, _ = run(case, layer=layer)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    assert layer.regularization_loss().item() == pytest.approx(case["penalty"], rel=1e-5)
    cfg = layer.get_config()
    assert cfg["activity_regularizer"]["config"] == {"l1": 0.0, "l2": 0.0, **case["activity_regularizer"]}
    assert type(layer).from_config(cfg).activity_regularizer is not None


def test_activity_penalty_reaches_the_loss_also_through_the_logit_shortcut():
    x = np.random.default_rng(1).random((5, 4)).astype("float32")
    model = rnnkit.Sequential([Dense(3, activation="softmax", activity_regularizer="l2", input_shape=(4,))])
    out = model(x)
    want = 0.01 * float((out.detach() ** 2).sum()) / 5
    assert model.regularization_loss().item() == pytest.approx(want, rel=1e-5)
    model.layers[0]._activity_penalty = None
    model.forward(torch.as_tensor(x), return_logits=True)  # what fit runs for a softmax + cross-entropy
    assert model.regularization_loss().item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("make,message", [
    (lambda: Dense(2.5), "Dense: units must be a positive integer, got 2.5"),
    (lambda: Dense(True), "Dense: units must be a positive integer, got True"),
    (lambda: Dense(-1), "units must be a positive integer, got -1"),
    (lambda: Dense("3"), "units must be a positive integer, got '3'"),
    (lambda: Dense(3, use_bias="no"), "Dense: use_bias must be True or False"),
    (lambda: Dense(3, lora_rank=4), "Dense: lora_rank= is not supported"),
    (lambda: Dense(3, quantization_config={}), "Dense: quantization_config= is not supported"),
    (lambda: Embedding(2.5, 3), "Embedding: input_dim must be a positive integer, got 2.5"),
    (lambda: Embedding(5, 0), "Embedding: output_dim must be a positive integer, got 0"),
    (lambda: Embedding(5, 3, input_length=0), "Embedding: input_length must be a positive integer"),
    (lambda: Embedding(5, 3, lora_rank=2), "Embedding: lora_rank= is not supported"),
    (lambda: Embedding(5, 3, weights=np.zeros((5, 2))), r"weights must be one array of shape \(5, 3\), got shape \(5, 2\)"),
    (lambda: Dropout(1.0), r"Dropout: rate must be in \[0, 1\), got 1.0"),
    (lambda: Dropout(-0.1), "rate must be in"),
    (lambda: Dropout(True), "rate must be in"),
    (lambda: Dropout("0.5"), "rate must be in"),
    (lambda: Dropout(0.5, seed=1.5), "Dropout: seed must be an integer or None, got 1.5"),
    (lambda: Dropout(0.5, noise_shape=(None, 0)), "Dropout: noise_shape must be a positive integer, got 0"),
    (lambda: RepeatVector(0), "RepeatVector: n must be a positive integer, got 0"),
    (lambda: RepeatVector(2.5), "RepeatVector: n must be a positive integer, got 2.5"),
    (lambda: Flatten("bad"), "Flatten: data_format must be one of"),
    (lambda: Input((3,), sparse=True), "Input: sparse= is not supported"),
    (lambda: Input((3,), ragged=True), "Input: ragged= is not supported"),
    (lambda: Input((3,), optional=True), "Input: optional= is not supported"),
    (lambda: Input(33), r"Input: shape must be a tuple of positive integers or None, got 33 \(write \(33,\)\)"),
    (lambda: Input((2.5,)), "Input: shape must be a positive integer, got 2.5"),
    (lambda: Input((3,), dtype="float16"), "Input: dtype must be one of float32, int32, int64"),
    (lambda: Input((3,), batch_shape=(None, 3)), "give shape= or batch_shape=, not both"),
])
def test_bad_core_arguments_are_refused_with_their_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_keras_argument_spellings_that_are_implemented():
    assert Dense(np.int64(3)).units == 3  # Keras refuses NumPy integers; their meaning is plain
    assert Input((3,), dtype=None).dtype == "float32"  # Keras's default dtype is None
    assert Input(batch_shape=(4, 3)).shape == (4, 3)
    table = np.arange(12, dtype="float32").reshape(4, 3)
    for weights in (table, [table]):
        emb = Embedding(4, 3, weights=weights)
        np.testing.assert_array_equal(emb(np.array([[3, 0]])).detach().numpy()[0], table[[3, 0]])
        np.testing.assert_array_equal(emb.get_weights()[0], table)
    assert not Embedding(4, 3, weights=table, trainable=False)(np.array([[1]])).requires_grad


def test_dropout_seed_repeats_its_masks_and_training_goes_by_position_as_in_keras():
    x = torch.ones(4, 50)
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    torch.manual_seed(0)
    first = a(x, True)  # Keras's Dropout.call(inputs, training): the second argument is training
    torch.manual_seed(1)
    torch.testing.assert_close(first, b(x, training=True))  # the seed, not the global RNG, fixes them
    assert (first == 0).any() and not torch.equal(first, a(x, True))  # a sequence of masks, not one
    shared = Dropout(0.5, noise_shape=(None, 1), seed=3)(torch.ones(6, 5), training=True)
    assert torch.all(shared == shared[:, :1])
    with pytest.raises(ValueError, match=r"noise_shape \(None, 1\) has 2 axes, the input \(2, 3, 4\) has 3"):
        Dropout(0.5, noise_shape=(None, 1))(torch.ones(2, 3, 4), training=True)


def test_time_distributed_hands_each_steps_mask_to_the_wrapped_layer():
    from rnnkit.layers import GlobalAveragePooling1D

    x = torch.randn(2, 3, 4, 5)
    mask = torch.rand(2, 3, 4) > 0.3
    mask[..., 0] = True
    td = TimeDistributed(GlobalAveragePooling1D())
    want = torch.stack([GlobalAveragePooling1D()(x[:, t], mask=mask[:, t]) for t in range(3)], 1)
    torch.testing.assert_close(td(x, mask=mask), want)
    with pytest.raises(ValueError, match=r"the mask's shape \(2, 4\) does not start with the input's"):
        td(x, mask=torch.ones(2, 4, dtype=torch.bool))


def test_a_list_given_to_a_one_input_layer_is_refused_by_name():
    from rnnkit.layers import Conv1D, GlobalMaxPooling1D

    for layer in (Dense(2), Conv1D(2, 1), GlobalMaxPooling1D(), Flatten()):
        with pytest.raises(ValueError, match=r"takes one input tensor, got a list of 2 inputs with shapes "
                                             r"\[\(None,\), \(None,\)\] \(a nested Python list"):
            layer([[1.0, 2.0], [3.0]])
