"""Core layers: Dense, Embedding, Dropout, Activation, Flatten, RepeatVector, TimeDistributed."""
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import regularizers
from rnnkit.layers import LSTM, Activation, Dense, Dropout, Embedding, Flatten, Input, RepeatVector, TimeDistributed


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
