"""The hand-written CPU GRU (rnnkit/layers/_gru_cpu.py): gradcheck, equality with torch.gru
(outputs and every gradient) with and without masks, both directions, initial states,
time chunking, and the dispatch in _fused that chooses it."""
import pytest
import torch

from rnnkit.layers import GRU, Bidirectional, Embedding, _gru_cpu
from rnnkit.layers._fused import fused_run


def make_weights(dirs, n_in, units, biases=True, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(3 * units, n_in), (3 * units, units)] + ([(3 * units,), (3 * units,)] if biases else [])
    return [(torch.rand(s, generator=g, dtype=dtype) - 0.5).requires_grad_() for _ in range(dirs) for s in shapes]


def masked_reference(x, mask, h0, weights, biases, bidirectional):
    """torch.gru run row by row on just the unmasked steps, spread back over time with
    Keras's rule (a masked step repeats the last output, the next one for the backward
    half; zeros before any real step); an all-masked row keeps h0."""
    dirs, _, units = h0.shape
    outs, finals = [], []
    for b in range(x.shape[0]):
        real = x[b][mask[b]]
        if len(real) == 0:
            outs.append(x.new_zeros(x.shape[1], dirs * units))
            finals.append(h0[:, b])
            continue
        o, h = torch.gru(real[None], h0[:, b : b + 1].contiguous(), weights, biases, 1, 0.0, True, bidirectional, True)
        seen = mask[b].long().cumsum(0)
        parts = [o[0, (seen - 1).clamp(min=0), :units] * (seen > 0).unsqueeze(-1)]
        if bidirectional:
            before = seen - mask[b].long()
            parts.append(o[0, before.clamp(max=len(real) - 1), units:] * (before < len(real)).unsqueeze(-1))
        outs.append(torch.cat(parts, -1))
        finals.append(h[:, 0])
    return torch.stack(outs), torch.stack(finals, 1)


def loss_of(out, h_n):
    # Uneven weights so every output position and the final state get a distinct gradient.
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    return (out.tanh() * w).sum() + (h_n**2).sum()


def grads(out, h_n, inputs):
    return torch.autograd.grad(loss_of(out, h_n), inputs)


def example_mask(batch, time):
    mask = torch.rand(batch, time) > 0.35
    mask[0] = False  # nothing real
    mask[1] = True  # nothing masked
    mask[2, :3] = False  # pre-padding
    mask[2, 3:] = True
    mask[3, -2:] = False  # post-padding
    return mask


def assert_all_close(got, want, atol=1e-5):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=atol, rtol=1e-5)


def test_gradcheck_float64_masked_bidirectional_with_initial_state():
    x = torch.randn(4, 5, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    weights = make_weights(2, 2, 3, dtype=torch.float64)
    mask = example_mask(4, 5)

    def f(x, h0, *weights):
        return _gru_cpu.gru_train(x, mask, h0, list(weights), True, True)

    assert torch.autograd.gradcheck(f, (x, h0, *weights))
    assert torch.autograd.gradcheck(lambda x, h0, *w: _gru_cpu.gru_train(x, None, h0, list(w), True, False),
                                    (x, h0[:1].detach().requires_grad_(), *make_weights(1, 2, 3, dtype=torch.float64)))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("biases", [True, False])
@pytest.mark.parametrize("zero_state", [True, False])
def test_equals_torch_gru_outputs_and_all_gradients(bidirectional, biases, zero_state):
    dirs = 2 if bidirectional else 1
    x = torch.randn(5, 7, 4, requires_grad=True)
    h0 = (torch.zeros(dirs, 5, 6) if zero_state else torch.randn(dirs, 5, 6)).requires_grad_()
    weights = make_weights(dirs, 4, 6, biases)
    inputs = [x, h0, *weights]
    out, h_n = _gru_cpu.gru_train(x, None, h0, weights, biases, bidirectional)
    ref_out, ref_h = torch.gru(x, h0, weights, biases, 1, 0.0, True, bidirectional, True)
    assert out.shape == (5, 7, dirs * 6) and h_n.shape == (dirs, 5, 6)
    assert_all_close([out, h_n], [ref_out, ref_h])
    assert_all_close(grads(out, h_n, inputs), grads(ref_out, ref_h, inputs))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_masks_equal_torch_gru_on_the_real_steps(bidirectional):
    dirs = 2 if bidirectional else 1
    x = torch.randn(6, 8, 3, requires_grad=True)
    h0 = torch.randn(dirs, 6, 5, requires_grad=True)
    weights = make_weights(dirs, 3, 5)
    mask = example_mask(6, 8)
    inputs = [x, h0, *weights]
    out, h_n = _gru_cpu.gru_train(x, mask, h0, weights, True, bidirectional)
    ref_out, ref_h = masked_reference(x, mask, h0, weights, True, bidirectional)
    assert_all_close([out, h_n], [ref_out, ref_h])
    got = grads(out, h_n, inputs)
    assert_all_close(got, grads(ref_out, ref_h, inputs))
    assert torch.all(got[0][~mask] == 0)  # masked inputs get exactly no gradient


def test_time_chunks_give_the_same_result(monkeypatch):
    x = torch.randn(4, 9, 3, requires_grad=True)
    h0 = torch.randn(2, 4, 5, requires_grad=True)
    weights = make_weights(2, 3, 5)
    mask = example_mask(4, 9)
    inputs = [x, h0, *weights]
    whole = _gru_cpu.gru_train(x, mask, h0, weights, True, True)
    per_step = 2 * 4 * 4 * 5  # directions * batch * 4 * units
    monkeypatch.setattr(_gru_cpu, "CHUNK_ELEMENTS", 2 * per_step)  # two steps per chunk, the last one shorter
    assert _gru_cpu._chunks(9, per_step) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)]
    chunked = _gru_cpu.gru_train(x, mask, h0, weights, True, True)
    assert_all_close(chunked, whole, atol=1e-6)
    assert_all_close(grads(*chunked, inputs), grads(*whole, inputs), atol=1e-6)


def test_fused_run_dispatch():
    x = torch.randn(2, 4, 3, requires_grad=True)
    hx = (torch.zeros(2, 2, 5),)
    weights = make_weights(2, 3, 5)
    out, _ = fused_run("gru", x, None, hx, weights, True, True)
    assert type(out.grad_fn).__name__ == "_GRUBackward"
    with torch.no_grad():  # inference keeps the native op
        ref, _ = fused_run("gru", x, None, hx, weights, True, True)
    torch.testing.assert_close(out.detach(), ref)
    assert not _gru_cpu.eligible(x.detach(), hx, [w.detach() for w in weights])  # nothing to differentiate
    assert not _gru_cpu.eligible(x.to("meta"), hx, weights)  # other devices (CUDA) keep torch.gru
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _gru_cpu.eligible(x, hx, weights)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_layers_train_the_same_with_and_without_it(monkeypatch, go_backwards):
    """End to end through Embedding(mask_zero) -> Bidirectional(GRU) -> GRU: every weight
    gradient equals the one the native torch.gru path gives."""
    ids = torch.randint(1, 20, (4, 6))
    ids[0, :2] = 0
    ids[1, 4:] = 0
    ids[2] = 0
    emb = Embedding(20, 3, mask_zero=True)
    bi = Bidirectional(GRU(4, return_sequences=True))
    top = GRU(5, go_backwards=go_backwards)

    def run():
        x = emb(ids)
        mask = emb.compute_mask(ids, None)
        return top(bi(x, mask=mask, training=True), mask=mask, training=True)

    run()  # build
    params = [p for layer in (emb, bi, top) for p in layer.parameters()]
    out = run()
    got = torch.autograd.grad(loss_of(out, out), params)
    monkeypatch.setattr(_gru_cpu, "enabled", False)
    ref = run()
    assert type(ref.grad_fn).__name__ != "_GRUBackward"
    assert_all_close([out], [ref])
    assert_all_close(got, torch.autograd.grad(loss_of(ref, ref), params))
