"""rnnkit's CPU dropout (rnnkit/native/dropout.c): the rate, the scale, the same mask forward
and backward, seeded by torch's generator, independent of threads; F.dropout elsewhere."""
import pytest
import torch

from rnnkit.lm.charlm import CharLM, CharLMConfig
from rnnkit.layers import Dropout as KerasDropout
from rnnkit.layers._dropout import Dropout, _kernel, dropout

needs_kernel = pytest.mark.skipif(_kernel() is None, reason="C kernels unavailable here (rnnkit.native)")


@needs_kernel
@pytest.mark.parametrize("p", [0.1, 0.3, 0.9])
def test_keeps_one_minus_p_scaled_and_the_gradient_uses_the_same_mask(p):
    torch.manual_seed(0)
    x = torch.rand(1000, 1000) + 0.5  # no zeros of its own
    x.requires_grad_()
    y = dropout(x, p)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.002
    torch.testing.assert_close(y[kept], x.detach()[kept] / (1 - p))
    upstream = torch.randn(1000, 1000)
    y.backward(upstream)
    torch.testing.assert_close(x.grad, upstream * kept / (1 - p))
    # consecutive calls draw independent masks
    both = (kept & (dropout(x, p) != 0)).float().mean().item()
    assert abs(both - (1 - p) ** 2) < 0.002


@needs_kernel
def test_torch_seed_fixes_the_mask_and_threads_do_not_change_it():
    x = torch.randn(3, 50, 77)
    saved = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(5)
            outs.append(dropout(x, 0.4))
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], dropout(x, 0.4))  # the generator moved on


@needs_kernel
def test_dropped_nan_stays_nan_and_second_derivatives_are_refused():
    x = torch.full((10_000,), float("nan"))
    assert dropout(x, 0.5).isnan().all()
    w, v = torch.randn(100, requires_grad=True), torch.randn(100, requires_grad=True)
    (g,) = torch.autograd.grad(dropout(w, 0.5), w, grad_outputs=v, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()  # through the backward, to v


def test_identity_when_not_training_or_p_zero_and_f_dropout_elsewhere():
    x = torch.randn(4, 5)
    assert dropout(x, 0.5, training=False) is x and dropout(x, 0.0) is x
    d = Dropout(0.5).eval()
    assert d(x) is x
    y = dropout(x.double(), 0.5)  # float64: PyTorch's dropout
    assert y.dtype == torch.float64 and set(y[y != 0].div(x.double()[y != 0]).round(decimals=6).tolist()) <= {2.0}
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)


@needs_kernel
def test_the_keras_layer_and_the_char_model_use_it(monkeypatch):
    import rnnkit.layers._dropout as mod

    calls = []
    monkeypatch.setattr(mod._Dropout, "apply", lambda *a: calls.append(a) or a[0] * 2)
    KerasDropout(0.3)(torch.randn(2, 3), training=True)
    model = CharLM(CharLMConfig(vocab_size=7, hidden=8, embedding=4, dropout=0.2))
    model.train()(torch.zeros(2, 3, dtype=torch.long))
    assert len(calls) == 3  # the layer; the char model's embedding output and its layer's output


def test_torch_func_transforms_work_through_dropout_and_the_embedding_lookup():
    from rnnkit.layers._lookup import embedding_lookup

    x = torch.randn(6, 5)
    g = torch.func.grad(lambda t: dropout(t, 0.5).sum())(x)
    assert set(g.unique().tolist()) <= {0.0, 2.0}
    batched = torch.func.vmap(lambda t: dropout(t, 0.5), randomness="different")(x)
    assert batched.shape == x.shape
    w, ids = torch.randn(9, 4), torch.tensor([[1, 2, 1]])
    want = torch.autograd.grad(torch.nn.functional.embedding(ids, w.requires_grad_()).sum(), w)[0]
    torch.testing.assert_close(torch.func.grad(lambda w: embedding_lookup(ids, w).sum())(w.detach()), want)
    per_row = torch.func.vmap(lambda i: embedding_lookup(i, w))(torch.tensor([[1, 2], [3, 4]]))
    torch.testing.assert_close(per_row, w[torch.tensor([[1, 2], [3, 4]])])
