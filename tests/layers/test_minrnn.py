"""MinGRU / MinLSTM: the log-space scan, parallel == sequential (outputs and gradients,
with masks, go_backwards and initial states, up to 4,096 steps), the paper's equations,
Keras-style use in Sequential / Bidirectional, weights, config and save/load."""
import copy
import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import Bidirectional, Dense, Embedding, MinGRU, MinLSTM
from rnnkit.layers import _minrnn_scan, minrnn  # the kernels live in _minrnn_scan
from rnnkit.layers.minrnn import fused_scan, log_space_scan

CELLS = [MinGRU, MinLSTM]
TOL = dict(rtol=1e-5, atol=1e-5)


def reference_recurrence(log_a, log_b, h0):
    """h_t = a_t h_{t-1} + b_t, one step at a time in float64."""
    a, b, h = log_a.double().exp(), log_b.double().exp(), h0.double()
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def run_all(layer, x, mask=None, initial_state=None, scans=("log", "loop", "cell")):
    """Outputs, final state and gradients (input, weights, initial state) of each scan path."""
    results = {}
    weights = torch.linspace(-1, 1, layer.units, dtype=x.dtype)
    for scan in scans:
        layer.scan = scan
        layer.zero_grad()
        xx = x.clone().requires_grad_()
        h0 = None if initial_state is None else initial_state.clone().requires_grad_()
        seq, final = layer(xx, mask=mask, initial_state=h0)
        ((seq * weights).sum() + (final * weights).sum()).backward()
        grads = [xx.grad] + [p.grad.clone() for p in layer.parameters()] + ([h0.grad] if h0 is not None else [])
        results[scan] = [seq.detach(), final.detach()] + grads
    return results


def assert_paths_exact(layer, x, mask=None, initial_state=None, scans=("log", "loop", "cell"), exact_scan="cell"):
    """Every fp32 path equals the float64 computation within 1e-5, outputs and gradients.

    Each fp32 path rounds (gradients summed over thousands of steps carry up to ~7e-6
    relative error), so all are held to the exact values rather than to each other."""
    got = run_all(layer, x, mask, initial_state, scans)
    exact = run_all(copy.deepcopy(layer).double(), x.double(), mask,
                    None if initial_state is None else initial_state.double(), (exact_scan,))[exact_scan]
    names = ["outputs", "final state", "grad inputs", *[f"grad {n}" for n, _ in layer.named_parameters()], "grad h0"]
    for scan, values in got.items():
        for name, value, want in zip(names, values, exact):
            torch.testing.assert_close(value.double(), want, **TOL, msg=lambda m: f"scan={scan}, {name}: {m}")
        torch.testing.assert_close(values[0], got[scans[0]][0], **TOL)  # outputs also agree pairwise


def test_log_space_scan_equals_the_recurrence_for_4096_steps_and_any_sign_h0():
    g = torch.Generator().manual_seed(1)
    log_a = -torch.nn.functional.softplus(2 * torch.randn(3, 4096, 5, generator=g))
    log_b = torch.randn(3, 4096, 5, generator=g) - 1
    h0 = torch.tensor([[-3.0, 0.0, 2.0, 1e-3, -1e-3]]).expand(3, 5)
    got = log_space_scan(log_a, log_b, h0)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), reference_recurrence(log_a, log_b, h0), **TOL)
    # without h0 the scan starts from zeros
    torch.testing.assert_close(log_space_scan(log_a[:, :50], log_b[:, :50]).double(),
                               reference_recurrence(log_a[:, :50], log_b[:, :50], torch.zeros(3, 5)), **TOL)


@pytest.fixture(params=["native", "numpy"])
def kernel(request, monkeypatch):
    """The fused path with its C kernels (rnnkit/native/minrnn_scan.c), then with the torch/numpy loops."""
    if request.param == "numpy":
        monkeypatch.setattr(_minrnn_scan, "_native", lambda: None)
    else:
        skip_without_c_kernels()
    return request.param


def skip_without_c_kernels():
    if minrnn._native() is None:
        pytest.skip(f"C kernels unavailable: {rnnkit.native.unavailable('minrnn_scan')}")


def blocks_of(steps, monkeypatch, batch_units):
    """Make the fused scan walk time in blocks of ``steps`` steps (the C path: blocks of whole sequences)."""
    monkeypatch.setattr(_minrnn_scan, "_BLOCK_ELEMENTS", steps * batch_units)


@pytest.mark.parametrize("blocks", [2, 3])  # MinGRU, MinLSTM
@pytest.mark.parametrize("masked", [False, True])
def test_fused_scan_backward_passes_gradcheck(blocks, masked, monkeypatch):
    blocks_of(3, monkeypatch, 2 * 3)  # several blocks: gradients must carry across block edges
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 8, 4, generator=g, dtype=torch.float64, requires_grad=True)
    weight = (2 * torch.randn(blocks * 3, 4, generator=g, dtype=torch.float64)).requires_grad_()
    bias = torch.randn(blocks * 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    keep = (torch.rand(2, 8, 1, generator=g) > 0.3).double() if masked else None
    # all outputs with gradients, then only the last state (the layer's path without return_sequences)
    assert torch.autograd.gradcheck(lambda *a: fused_scan(*a, keep=keep), (x, weight, bias, h0))
    assert torch.autograd.gradcheck(lambda *a: fused_scan(*a, keep=keep, sequence=False)[1], (x, weight, bias, h0))
    assert torch.autograd.gradcheck(lambda x, w, h: fused_scan(x, w, None, h, keep=keep)[0], (x, weight, h0))


@pytest.mark.parametrize("cls", CELLS)
def test_parallel_equals_sequential_for_4096_steps_with_gradients(cls, monkeypatch, kernel):
    blocks_of(100, monkeypatch, 2 * 8)  # 41 blocks
    layer = cls(8, return_sequences=True, return_state=True)
    x = torch.randn(2, 4096, 4)
    h0 = torch.randn(2, 8)
    assert_paths_exact(layer, x, initial_state=h0, scans=("log", "loop"), exact_scan="loop")


@pytest.mark.parametrize("cls", CELLS)
def test_last_state_only_path_equals_float64_for_2000_steps(cls, monkeypatch, kernel):
    # Without return_sequences the scan hands back only the last state; its backward decays
    # that state's gradient alone. Same function, gradients included.
    blocks_of(64, monkeypatch, 3 * 5)
    layer = cls(5, return_state=True)
    x = torch.randn(3, 2000, 4)
    assert_paths_exact(layer, x, scans=("loop",), exact_scan="loop")
    layer.scan = "loop"
    seq = cls(5, return_sequences=True, scan="loop")
    seq(x), seq.set_weights(layer.get_weights())
    torch.testing.assert_close(layer(x)[0], seq(x)[:, -1])


def test_candidate_derivative_is_exact_at_and_next_to_zero(kernel):
    # g'(k) = 1 for k > 0 however small, sigmoid'(k) = 0.25 at k = 0 and just below.
    layer = MinGRU(1, return_sequences=True, scan="loop")
    layer.build_for((1, 4, 1))
    layer.set_weights([np.array([[0.5, 1.0]], "float32"), np.zeros(2, "float32")])  # k = x
    grads = {}
    for scan in ("loop", "cell"):
        layer.scan = scan
        x = torch.tensor([[[1e-30], [0.0], [-1e-30], [2.0]]], requires_grad=True)
        layer(x).sum().backward()
        grads[scan] = x.grad
    torch.testing.assert_close(grads["loop"], grads["cell"], rtol=1e-6, atol=0)


def test_minlstm_stays_finite_when_both_gates_underflow(kernel):
    # f, i = sigmoid(-110), sigmoid(-105) underflow float32; z = i / (f + i) is still sigmoid(5).
    layer = MinLSTM(1, return_sequences=True)
    layer.build_for((1, 3, 1))
    layer.set_weights([np.zeros((1, 3), "float32"), np.array([-110.0, -105.0, 0.3], "float32")])
    x = torch.ones(1, 3, 1, requires_grad=True)
    exact = copy.deepcopy(layer).double()
    exact.scan = "cell"
    for scan in ("loop", "cell"):
        layer.scan = scan
        layer.zero_grad(), exact.zero_grad()
        out, want = layer(x), exact(x.double())
        torch.testing.assert_close(out.double(), want, **TOL)
        out.sum().backward(), want.sum().backward()
        for p, q in zip(layer.parameters(), exact.parameters()):
            torch.testing.assert_close(p.grad.double(), q.grad, **TOL)
    z, h = 1 / (1 + math.exp(-5)), []  # h_t = (1 - z) h_{t-1} + z g(0.3), g(0.3) = 0.8
    for _ in range(3):
        h.append((1 - z) * (h[-1] if h else 0.0) + z * 0.8)
    torch.testing.assert_close(out[0, :, 0], torch.tensor(h), **TOL)


@pytest.mark.parametrize("f, i", [(-100.0, -200.0), (-200.0, -100.0), (-90.0, -100.0), (-79.0, -100.0),
                                  (100.0, -100.0), (-100.0, 100.0), (30.0, 25.0), (0.0, 0.0)])
def test_minlstm_gate_holds_for_any_gate_logits(f, i, kernel):
    # z = i / (f + i): with both sigmoids far below float32's range (or one far below the other)
    # the state must still decay by exactly (1 - z) per step, its gradient too.
    # 200 steps: with z ~ 1e-5, fp32's rounding of 1 - z alone compounds past 1e-5 by 2,000 (either path)
    x = torch.ones(1, 200, 1)
    weight = torch.tensor([[f], [i], [0.0]])
    got, want = [], []
    for dtype, out in ((torch.float32, got), (torch.float64, want)):
        h0 = torch.full((1, 1), 5.0, dtype=dtype, requires_grad=True)
        h, last = fused_scan(x.to(dtype), weight.to(dtype), None, h0)  # float64: the torch path
        last.sum().backward()
        out += [h.detach(), last.detach(), h0.grad]
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, **TOL)


@pytest.mark.parametrize("blocks", [2, 3])
@pytest.mark.parametrize("gate", [0, -1])  # the update gate's logit, the candidate's
def test_nan_logits_give_nan_outputs(blocks, gate, kernel):
    weight = torch.zeros(blocks, 1)
    weight[gate] = float("nan")
    h, last = fused_scan(torch.ones(1, 3, 1), weight, None, torch.zeros(1, 1))
    assert h.isnan().all() and last.isnan().all()


def test_second_derivatives_are_refused_not_zero(kernel):
    layer = MinGRU(4)
    x = torch.randn(2, 6, 3)
    layer(x)
    grads = torch.autograd.grad(layer(x).square().sum(), list(layer.parameters()), create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        sum(g.sum() for g in grads).backward()


def test_forward_without_sequences_leaves_run_returning_every_step():
    # forward's last-state-only mode must not leak into direct run() calls (Bidirectional, generation).
    layer = MinGRU(3)
    x = torch.randn(2, 6, 4)
    layer(x)
    with pytest.raises(ValueError):
        layer(x, initial_state=torch.zeros(2, 5))
    seq, _ = layer.run(x, None, layer.initial_states(x, None), True)
    assert seq.shape == (2, 6, 3)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("cls", CELLS)
def test_all_paths_agree_with_masks_go_backwards_and_initial_state(cls, go_backwards, kernel):
    layer = cls(6, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = 2 * torch.randn(4, 300, 5)
    mask = torch.rand(4, 300) > 0.3
    mask[1, :120] = False  # pre-padding
    mask[2, 250:] = False  # post-padding
    mask[3] = False  # nothing to read: the state stays the initial one
    h0 = torch.randn(4, 6)
    assert_paths_exact(layer, x, mask=mask, initial_state=h0)
    _, final = layer(x, mask=mask, initial_state=h0)
    torch.testing.assert_close(final[3], h0[3])


@pytest.mark.parametrize("blocks", [2, 3])  # MinGRU, MinLSTM
@pytest.mark.parametrize("with_bias", [True, False])
def test_c_kernels_equal_float64_across_blocks_threads_and_partial_vectors(blocks, with_bias, monkeypatch):
    skip_without_c_kernels()
    # 19 units: two vectors of 8 and a partial one of 3; blocks of 2 sequences, the last one short
    monkeypatch.setattr(_minrnn_scan, "_BLOCK_ELEMENTS", 2 * 150 * blocks * 19)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 150, 7, generator=g)
    weight = 0.4 * torch.randn(blocks * 19, 7, generator=g)  # logits of std ~1 (larger ones: see below)
    bias = torch.randn(blocks * 19, generator=g) if with_bias else None
    h0 = torch.randn(5, 19, generator=g)
    keep = (torch.rand(5, 150, 1, generator=g) > 0.2).float()
    wh, wl = torch.randn(5, 150, 19, generator=g), torch.randn(5, 19, generator=g)

    def run(*args, sequence=True):
        args = [a.clone().requires_grad_() if a is not None else None for a in args]
        h, last = fused_scan(*args, keep=keep.to(args[0].dtype), sequence=sequence)
        loss = (last * wl.to(last.dtype)).sum() + ((h * wh.to(h.dtype)).sum() if sequence else 0)
        loss.backward()
        return [h.detach(), last.detach()] + [a.grad for a in args if a is not None]

    for sequence in (True, False):
        for threads in (1, 2):
            saved = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                got = run(x, weight, bias, h0, sequence=sequence)
            finally:
                torch.set_num_threads(saved)
            want = run(*[None if a is None else a.double() for a in (x, weight, bias, h0)], sequence=sequence)
            for a, b in zip(got, want):
                torch.testing.assert_close(a.double(), b, **TOL)
    # Weight gradients sum 750 steps' products: with logits of std ~3 they reach ~60, and fp32
    # summation then strays ~3e-5 from float64 on either path (C or numpy), which is rounding, not the kernel.


def test_c_kernels_are_used_for_float32_on_the_cpu(monkeypatch):
    skip_without_c_kernels()
    calls = []
    monkeypatch.setattr(minrnn._NativeScan, "apply", lambda *a: calls.append(a) or minrnn._FusedScan.apply(*a))
    MinGRU(3)(torch.randn(2, 5, 4))
    assert len(calls) == 1
    layer = MinGRU(3)
    layer.build_for((2, 5, 4))
    layer.double()(torch.randn(2, 5, 4).double())  # float64: the torch/numpy path
    assert len(calls) == 1


@pytest.mark.parametrize("cls", CELLS)
def test_masked_steps_keep_the_state_and_leading_masked_steps_output_zeros(cls):
    layer = cls(4, return_sequences=True, return_state=True)
    x = torch.randn(1, 9, 3)
    mask = torch.tensor([[False, False, True, True, False, True, False, False, True]])
    seq, final = layer(x, mask=mask)
    kept, _ = layer(x[:, mask[0]])  # the same sequence without its masked steps
    torch.testing.assert_close(seq[0, mask[0]], kept[0])
    torch.testing.assert_close(seq[0, :2], torch.zeros(2, 4))  # before any real step, as Keras
    torch.testing.assert_close(seq[0, 4], seq[0, 3])  # a masked step repeats the carried state
    torch.testing.assert_close(final[0], kept[0, -1])


@pytest.mark.parametrize("cls", CELLS)
def test_go_backwards_reads_the_reversed_sequence(cls):
    fwd = cls(5, return_sequences=True)
    bwd = cls(5, return_sequences=True, go_backwards=True)
    x = torch.randn(2, 11, 3)
    fwd(x), bwd(x)
    bwd.set_weights(fwd.get_weights())
    torch.testing.assert_close(bwd(x), fwd(x.flip(1)))


@pytest.mark.parametrize("cls", CELLS)
def test_one_step_at_a_time_from_carried_state_equals_the_whole_sequence(cls):
    layer = cls(6, return_sequences=True)
    x = torch.randn(3, 40, 4)
    whole = layer(x)
    layer.return_state = True
    state, outs = torch.zeros(3, 6), []
    for t in range(40):  # generation: one token, then the state goes back in
        out, state = layer(x[:, t : t + 1], initial_state=state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), whole, **TOL)


def test_cells_follow_the_papers_equations():
    x = torch.randn(2, 5, 3)
    gru, lstm = MinGRU(4, return_sequences=True), MinLSTM(4, return_sequences=True)
    seq_g, seq_l = gru(x), lstm(x)
    g = lambda v: torch.where(v >= 0, v + 0.5, torch.sigmoid(v))  # noqa: E731
    W, b = gru.get_weights()
    pz, ph = (x @ torch.from_numpy(W) + torch.from_numpy(b)).chunk(2, -1)
    W, b = lstm.get_weights()
    pf, pi, pl = (x @ torch.from_numpy(W) + torch.from_numpy(b)).chunk(3, -1)
    h_g = h_l = torch.zeros(2, 4)
    for t in range(5):
        z = torch.sigmoid(pz[:, t])
        h_g = (1 - z) * h_g + z * g(ph[:, t])
        f, i = torch.sigmoid(pf[:, t]), torch.sigmoid(pi[:, t])
        h_l = f / (f + i) * h_l + i / (f + i) * g(pl[:, t])
        torch.testing.assert_close(seq_g[:, t], h_g, **TOL)
        torch.testing.assert_close(seq_l[:, t], h_l, **TOL)


@pytest.mark.parametrize("cls,blocks", [(MinGRU, 2), (MinLSTM, 3)])
def test_parameters_weights_and_config_round_trip(cls, blocks):
    layer = cls(7, return_sequences=True, go_backwards=True, scan="loop", name="mine")
    layer(np.zeros((1, 2, 5), "float32"))
    assert layer.count_params() == blocks * 7 * (5 + 1)
    assert [w.shape for w in layer.get_weights()] == [(5, blocks * 7), (blocks * 7,)]
    cfg = layer.get_config()
    assert cfg["scan"] == "loop" and cfg["go_backwards"] and "recurrent_initializer" not in cfg
    clone = cls.from_config(cfg)
    clone(np.zeros((1, 2, 5), "float32"))
    clone.set_weights([w + 0.5 for w in layer.get_weights()])
    np.testing.assert_allclose(clone.get_weights()[0], layer.get_weights()[0] + 0.5)
    assert rnnkit.layers.get_class(cls.__name__) is cls
    no_bias = cls(3, use_bias=False)
    no_bias(np.zeros((1, 2, 5), "float32"))
    assert no_bias.count_params() == blocks * 3 * 5


def test_bidirectional_equals_the_two_directions_run_separately():
    x = torch.randn(3, 12, 4)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[0, :5] = False
    bi = Bidirectional(MinGRU(5, return_sequences=True))
    out = bi(x, mask=mask)
    fwd = MinGRU(5, return_sequences=True, zero_output_for_mask=True)
    bwd = MinGRU(5, return_sequences=True, go_backwards=True, zero_output_for_mask=True)
    fwd(x), bwd(x)
    weights = bi.get_weights()
    fwd.set_weights(weights[:2])
    bwd.set_weights(weights[2:])
    torch.testing.assert_close(out, torch.cat([fwd(x, mask=mask), bwd(x, mask=mask).flip(1)], -1))
    assert bi.count_params() == 2 * 2 * 5 * (4 + 1)


def test_sequential_model_trains_saves_and_loads(tmp_path):
    # class = first token mod 4: the state must carry it across 20 steps of noise
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(512, 20))
    x[:64, :3] = 0  # some pre-padded rows (mask_zero)
    y = x[np.arange(512), (x == 0).sum(1)] % 4
    model = rnnkit.Sequential([
        Embedding(30, 16, mask_zero=True, input_shape=(20,)),
        Bidirectional(MinLSTM(16, return_sequences=True)),
        MinGRU(16, go_backwards=True),
        Dense(4, activation="softmax"),
    ])
    model.compile(optimizer=rnnkit.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.5 * math.log(4)
    assert history.history["accuracy"][-1] > 0.8
    path = tmp_path / "min.safetensors"
    model.save(path)
    loaded = rnnkit.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == ["Embedding", "Bidirectional", "MinGRU", "Dense"]
    np.testing.assert_allclose(loaded.predict(x[:32]), model.predict(x[:32]), rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="scan must be one of auto, log, loop, cell"):
        MinGRU(4, scan="fast")
    with pytest.raises(TypeError, match="recurrent_dropout"):
        MinLSTM(4, recurrent_dropout=0.1)
    layer = MinGRU(4)
    with pytest.raises(ValueError, match=r"initial state must have shape \(2, 4\)"):
        layer(np.zeros((2, 3, 5), "float32"), initial_state=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, time, features\)"):
        MinGRU(4)(np.zeros((2, 5), "float32"))


def test_auto_scan_picks_the_loop_on_cpu_and_log_on_cuda():
    layer = MinGRU(3)
    assert layer.resolved_scan(torch.device("cpu")) == "loop"
    assert layer.resolved_scan(torch.device("cuda")) == "log"
    assert MinGRU(3, scan="cell").resolved_scan(torch.device("cuda")) == "cell"


def test_stateful_is_refused_with_its_own_reason():
    from rnnkit.layers import MinGRU

    with pytest.raises(TypeError, match=r"MinGRU\(\) does not take stateful=.*initial_state"):
        MinGRU(4, stateful=True)
