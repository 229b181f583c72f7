"""Losses: the fused mean that `fit` takes equals the mean of the per-sample losses, and
bad labels are refused with what was expected."""
import numpy as np
import pytest
import torch

from rnnkit.training.losses import CategoricalCrossentropy, SparseCategoricalCrossentropy, get


@pytest.mark.parametrize("logits", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (3, 6, 4)])
def test_sparse_crossentropy_mean_is_mean_of_per_sample(logits, shape):
    g = torch.Generator().manual_seed(0)
    out = torch.randn(shape, generator=g)
    if not logits:
        out = out.softmax(-1)
    labels = torch.randint(0, shape[-1], shape[:-1], generator=g)
    loss = SparseCategoricalCrossentropy(from_logits=logits)
    per = loss.per_sample(labels, out, logits)
    assert per.shape == shape[:-1]
    torch.testing.assert_close(loss.mean(labels, out, logits), per.mean())
    # labels with a trailing axis of 1, as Keras accepts them
    torch.testing.assert_close(loss.mean(labels.unsqueeze(-1), out, logits), per.mean())
    # and against the textbook formula
    logp = out.log_softmax(-1) if logits else out.clamp(1e-7, 1 - 1e-7).log()
    expected = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean()
    torch.testing.assert_close(loss.mean(labels, out, logits), expected, rtol=1e-5, atol=1e-6)


def test_sparse_crossentropy_refuses_bad_labels():
    loss = SparseCategoricalCrossentropy(from_logits=True)
    out = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="label 3 is out of range for an output of 3 classes"):
        loss.mean(torch.tensor([0, 3]), out, True)
    with pytest.raises(ValueError, match="label -1 is out of range"):
        loss.mean(torch.tensor([-1, 0]), out, True)
    # torch's own default would silently skip -100; Keras has no such label
    for logits in (True, False):
        with pytest.raises(ValueError, match="label -100 is out of range"):
            SparseCategoricalCrossentropy(from_logits=logits).mean(torch.tensor([-100, 0]), out.softmax(-1), logits)
        with pytest.raises(ValueError, match="label -100 is out of range"):
            SparseCategoricalCrossentropy(from_logits=logits).per_sample(torch.tensor([-100, 0]), out, logits)
    with pytest.raises(ValueError, match=r"integer labels of shape \(2,\), got \(3,\)"):
        loss.mean(torch.tensor([0, 1, 2]), out, True)
    assert np.isnan(float(loss.mean(torch.zeros(0, dtype=torch.long), torch.zeros(0, 3), True)))


def test_regression_targets_are_aligned_as_keras_aligns_them():
    from rnnkit.training.losses import BinaryCrossentropy, MeanAbsoluteError, MeanSquaredError

    out = torch.tensor([[1.0, 3.0], [0.0, 2.0]])
    mse = MeanSquaredError()
    # (batch,) and (batch, 1) targets broadcast over the output's last axis
    expected = torch.tensor([(0 + 4) / 2, (1 + 1) / 2])
    torch.testing.assert_close(mse.per_sample(torch.tensor([1.0, 1.0]), out, False), expected)
    torch.testing.assert_close(mse.per_sample(torch.tensor([[1.0], [1.0]]), out, False), expected)
    torch.testing.assert_close(MeanAbsoluteError().per_sample(torch.tensor([[1.0], [1.0]]), out, False),
                               torch.tensor([1.0, 1.0]))
    # a trailing axis of 1 on the targets is dropped
    torch.testing.assert_close(mse.per_sample(out.unsqueeze(-1), out, False), torch.zeros(2))
    # the same numbers in another layout are refused, not reshaped
    for loss in (mse, BinaryCrossentropy()):
        with pytest.raises(ValueError, match=r"targets of shape \(2, 3\) do not fit the model's output of shape \(3, 2\)"):
            loss.per_sample(torch.zeros(2, 3), torch.full((3, 2), 0.5), False)


def test_keras_function_forms():
    import rnnkit.keras as keras

    y, p = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]])
    torch.testing.assert_close(keras.losses.mean_squared_error(y, p), torch.tensor([0.25]))
    torch.testing.assert_close(keras.losses.mae(y.numpy(), p.numpy()), torch.tensor([0.5]))
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    torch.testing.assert_close(keras.losses.sparse_categorical_crossentropy(torch.tensor([0]), logits, from_logits=True),
                               torch.nn.functional.cross_entropy(logits, torch.tensor([0]), reduction="none"))
    # compile takes the function as the class (so the logit form still applies)
    assert isinstance(get(keras.losses.categorical_crossentropy), CategoricalCrossentropy)
