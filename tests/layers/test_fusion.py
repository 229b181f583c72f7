"""Embedding -> MinGRU/MinLSTM read the projected embedding table (rnnkit/layers/_fusion.py).

The fused call must compute what the two layers compute one after the other, and
must step aside wherever it would change what a user sees."""
import pytest
import torch

import rnnkit
import rnnkit.models.functional
import rnnkit.models.sequential
from rnnkit import layers as L
from rnnkit.layers import minrnn
from rnnkit.lm.charlm import CharLM, CharLMConfig
from rnnkit.models import Sequential

from .test_minrnn import skip_without_c_kernels


@pytest.fixture(autouse=True)
def c_kernels():
    skip_without_c_kernels()


@pytest.fixture
def table_reads(monkeypatch):
    """How many scans read an embedding table (the fused path) and how many ran on vectors."""
    seen = {"table": 0, "vectors": 0}
    apply = minrnn._NativeScan.apply

    def spy(*args):
        seen["table" if len(args) == 7 and args[6] is not None else "vectors"] += 1
        return apply(*args)

    monkeypatch.setattr(minrnn._NativeScan, "apply", spy)
    return seen


def unfused(monkeypatch):
    monkeypatch.setattr(rnnkit.models.sequential, "embedded_call", lambda *args: None)


def run(model, ids):
    model.zero_grad()
    out = model(ids)
    (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


def ids_with_padding(seed=0, batch=5, time=23, vocab=40):
    ids = torch.randint(1, vocab, (batch, time), generator=torch.Generator().manual_seed(seed))
    ids[0, :6] = 0  # leading padding
    ids[1, -4:] = 0  # trailing padding
    ids[2, 10:12] = 0
    return ids


@pytest.mark.parametrize("cell", [L.MinGRU, L.MinLSTM])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_zero", [False, True])
def test_fused_equals_layer_by_layer(monkeypatch, table_reads, cell, return_sequences, go_backwards, mask_zero):
    torch.manual_seed(1)
    model = Sequential([L.Embedding(40, 12, mask_zero=mask_zero, input_shape=(23,)),
                        cell(17, return_sequences=return_sequences, go_backwards=go_backwards),
                        L.Dense(3)])
    ids = ids_with_padding()
    out, grads = run(model, ids)
    assert table_reads == {"table": 1, "vectors": 0}
    unfused(monkeypatch)
    ref_out, ref_grads = run(model, ids)
    assert table_reads == {"table": 1, "vectors": 1}
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("merge_mode", ["concat", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_fused_bidirectional(monkeypatch, table_reads, merge_mode, return_sequences):
    torch.manual_seed(2)
    model = Sequential([L.Embedding(40, 12, mask_zero=True, input_shape=(23,)),
                        L.Bidirectional(L.MinGRU(9, return_sequences=return_sequences), merge_mode=merge_mode),
                        L.Dense(3)])
    ids = ids_with_padding(seed=3)
    out, grads = run(model, ids)
    assert table_reads == {"table": 2, "vectors": 0}
    unfused(monkeypatch)
    ref_out, ref_grads = run(model, ids)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def assert_fit_matches_unfused(make_model, unfuse, epochs=3):
    """A few optimizer steps of ``make_model()`` land on the same weights fused and after ``unfuse()``."""
    ids, labels = ids_with_padding(seed=4, batch=16), torch.randint(0, 3, (16,))

    def trained():
        model = make_model()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = model.fit(ids, labels, epochs=epochs, batch_size=8, verbose=0)
        return history.history["loss"], [p.detach().clone() for p in model.parameters()]

    losses, weights = trained()
    unfuse()
    ref_losses, ref_weights = trained()
    assert losses == pytest.approx(ref_losses, rel=1e-5)
    for got, want in zip(weights, ref_weights):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_training_through_fit_matches_unfused(monkeypatch):
    def make():
        torch.manual_seed(5)
        return Sequential([L.Embedding(40, 8, input_shape=(23,)), L.MinLSTM(10), L.Dense(3, activation="softmax")])

    assert_fit_matches_unfused(make, lambda: unfused(monkeypatch))


def _model(**kwargs):
    torch.manual_seed(6)
    return Sequential([L.Embedding(40, 8, input_shape=(23,)), L.MinGRU(10, **kwargs), L.Dense(3)])


def test_hooks_still_fire(table_reads):
    model = _model()
    seen = []
    model.layers[0].register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    model(ids_with_padding())
    assert seen == [(5, 23, 8)]
    assert table_reads == {"table": 0, "vectors": 1}


def test_input_dropout_while_training_is_not_fused(table_reads):
    model = _model(dropout=0.3)
    model.train()
    model(ids_with_padding(), training=True)
    assert table_reads == {"table": 0, "vectors": 1}
    model(ids_with_padding(), training=False)  # no dropout at inference: fused
    assert table_reads == {"table": 1, "vectors": 1}


@pytest.mark.parametrize("scan", ["log", "cell"])
def test_other_scans_are_not_fused(table_reads, scan):
    _model(scan=scan)(ids_with_padding())
    assert table_reads == {"table": 0, "vectors": 0}


def test_float64_and_empty_batch_are_not_fused(table_reads):
    model = _model().double()
    model(ids_with_padding())
    model = _model()
    assert model(torch.zeros(0, 23, dtype=torch.long)).shape == (0, 3)
    assert table_reads["table"] == 0


@pytest.mark.parametrize("bad", [40, -1])
def test_out_of_range_ids_give_the_embedding_error(bad):
    ids = ids_with_padding()
    ids[3, 7] = bad
    with pytest.raises(ValueError, match=rf"layer 'embedding\w*' \(Embedding\): token id {bad} is out of range; "
                                         r"expected ids in \[0, 39\]"):
        _model()(ids)


def test_fractional_ids_are_refused():
    with pytest.raises(ValueError, match="expects integer token ids"):
        _model()(ids_with_padding().float() + 0.5)
    # whole-valued floats are ids, as in Keras
    assert _model()(ids_with_padding().float()).shape == (5, 3)


def test_return_state_in_sequential_still_refused():
    with pytest.raises(ValueError, match="exactly one output"):
        Sequential([L.Embedding(40, 8, input_shape=(23,)), L.MinGRU(10, return_state=True), L.Dense(3)])(
            ids_with_padding())


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_char_lm_first_layer_reads_the_table(monkeypatch, table_reads, cell):
    torch.manual_seed(7)
    model = CharLM(CharLMConfig(vocab_size=30, cell=cell, layers=2, hidden=16, embedding=8))
    ids = torch.randint(0, 30, (3, 11))
    state = [[torch.randn(3, 16)] for _ in range(2)]

    def step():
        model.zero_grad()
        logits, final = model(ids, state)
        (logits.square().mean() + sum(s.sum() for layer in final for s in layer)).backward()
        return logits.detach(), [f.detach() for layer in final for f in layer], [p.grad.clone() for p in model.parameters()]

    got = step()
    assert table_reads == {"table": 1, "vectors": 1}
    monkeypatch.setattr(type(model.rnns[0]), "reads_table", lambda *args: False)
    want = step()
    assert table_reads == {"table": 1, "vectors": 3}
    for a, b in zip(got, want):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_char_lm_with_dropout_embeds_while_training(table_reads):
    model = CharLM(CharLMConfig(vocab_size=30, cell="mingru", layers=1, hidden=16, embedding=8, dropout=0.2))
    ids = torch.randint(0, 30, (3, 11))
    model.train()
    model(ids)
    assert table_reads == {"table": 0, "vectors": 1}
    model.eval()
    model(ids)
    assert table_reads == {"table": 1, "vectors": 1}


def test_autocast_runs_layer_by_layer(table_reads):
    model = _model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids_with_padding())
    assert out.dtype == torch.bfloat16 and table_reads["table"] == 0


def test_backward_hooks_still_fire(table_reads):
    model = _model()
    seen = []
    model.layers[1].register_full_backward_hook(lambda module, grad_in, grad_out: seen.append("backward"))
    model(ids_with_padding()).sum().backward()
    assert seen == ["backward"] and table_reads == {"table": 0, "vectors": 1}


def test_subclasses_and_patched_calls_are_run_as_written(table_reads):
    class Scaled(L.Embedding):
        def forward(self, inputs, mask=None, training=None):
            return 3.0 * super().forward(inputs, mask, training)

    torch.manual_seed(8)
    scaled = Sequential([Scaled(40, 8, input_shape=(23,)), L.MinGRU(10), L.Dense(3)])
    ids = ids_with_padding()
    want = scaled.layers[2](scaled.layers[1](3.0 * scaled.layers[0].embeddings[ids]))
    torch.testing.assert_close(scaled(ids), want)
    model = _model()
    model.layers[0].forward = lambda inputs, mask=None, training=None: torch.zeros(*inputs.shape, 8)
    torch.testing.assert_close(model(ids), model.layers[2](model.layers[1](torch.zeros(5, 23, 8))))
    assert table_reads["table"] == 0


def test_a_table_larger_than_the_call_is_not_projected(table_reads):
    torch.manual_seed(9)
    model = Sequential([L.Embedding(500, 8, input_shape=(23,)), L.MinGRU(10), L.Dense(3)])
    model(torch.randint(0, 500, (2, 23)))  # 46 ids: projecting 500 rows would cost ten times more
    assert table_reads == {"table": 0, "vectors": 1}
    model(torch.randint(0, 500, (25, 23)))
    assert table_reads == {"table": 1, "vectors": 1}


def test_table_changed_in_place_before_backward(monkeypatch):
    """The weights' gradient uses the table as it was in the forward, as the layer-by-layer path does."""
    def grads():
        model = _model()
        ids = ids_with_padding()
        out = model(ids)
        with torch.no_grad():
            model.layers[0].embeddings[0].zero_()
        out.sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    got = grads()
    unfused(monkeypatch)
    for a, b in zip(got, grads()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_ids_of_other_integer_types_fail_as_before(monkeypatch):
    ids = ids_with_padding().to(torch.uint8)
    with pytest.raises(Exception) as fused_error:
        _model()(ids)
    unfused(monkeypatch)
    with pytest.raises(Exception) as plain_error:
        _model()(ids)
    assert str(fused_error.value) == str(plain_error.value)
    assert _model()(ids_with_padding().int()).shape == (5, 3)


# ------------------------------------------------------------------ functional models
def functional_unfused(monkeypatch):
    monkeypatch.setattr(rnnkit.models.functional, "embedded_call", lambda *args: None)


def _functional(cell=L.MinGRU, mask_zero=True, bidirectional=False, **kwargs):
    torch.manual_seed(10)
    ids = rnnkit.layers.Input((23,), dtype="int64")
    rnn = cell(11, **kwargs)
    x = L.Embedding(40, 8, mask_zero=mask_zero)(ids)
    x = (L.Bidirectional(rnn) if bidirectional else rnn)(x)
    return rnnkit.models.Model(ids, L.Dense(3)(x))


@pytest.mark.parametrize("case", [dict(cell=L.MinGRU), dict(cell=L.MinLSTM, return_sequences=True, go_backwards=True),
                                  dict(cell=L.MinGRU, bidirectional=True, mask_zero=False)])
def test_functional_fused_equals_layer_by_layer(monkeypatch, table_reads, case):
    model = _functional(**case)
    ids = ids_with_padding()
    out, grads = run(model, ids)
    scans = 2 if case.get("bidirectional") else 1
    assert table_reads == {"table": scans, "vectors": 0}
    functional_unfused(monkeypatch)
    ref_out, ref_grads = run(model, ids)
    assert table_reads == {"table": scans, "vectors": scans}
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_functional_fit_matches_unfused(monkeypatch):
    assert_fit_matches_unfused(lambda: _functional(cell=L.MinLSTM), lambda: functional_unfused(monkeypatch), epochs=2)


def test_functional_embedding_read_twice_is_not_fused(table_reads):
    torch.manual_seed(12)
    ids = rnnkit.layers.Input((23,), dtype="int64")
    x = L.Embedding(40, 8)(ids)
    model = rnnkit.models.Model(ids, L.Concatenate()([L.MinGRU(5)(x), L.GlobalAveragePooling1D()(x)]))
    assert model(ids_with_padding()).shape == (5, 13)
    assert table_reads == {"table": 0, "vectors": 1}


def test_functional_hooks_still_fire(table_reads):
    model = _functional()
    seen = []
    model.get_layer(index=1).register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    model(ids_with_padding())
    assert seen == [(5, 23, 8)] and table_reads == {"table": 0, "vectors": 1}


# ------------------------------------------------------------------ re-entrancy
def test_char_lm_fuses_only_through_the_guards(table_reads):
    model = CharLM(CharLMConfig(vocab_size=30, cell="mingru", layers=1, hidden=16, embedding=8))
    seen = []
    model.embed.register_forward_hook(lambda *args: seen.append("hook"))
    model(torch.randint(0, 30, (3, 11)))  # a hook on the embedding: the table is not read behind its back
    assert table_reads == {"table": 0, "vectors": 1}


def test_a_call_inside_a_call_and_calls_from_two_threads_are_independent(monkeypatch):
    """No flag on the layer lives through a call: a call made while another runs (from inside its
    scan here, or from another thread) gets its own results, and so does the outer call."""
    import threading

    from rnnkit.layers import minrnn as minrnn_module

    torch.manual_seed(13)
    layer = L.MinGRU(6, zero_output_for_mask=True)
    x = torch.randn(4, 9, 5)
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[0] = False  # a row with no step: its output is zeros, whatever the initial state
    mask[1, 5:] = False
    h0 = torch.randn(4, 6)
    want_last = layer(x).detach()
    want_masked = layer(x, mask=mask, initial_state=[h0]).detach()
    scan, inner = minrnn_module.fused_scan, {}

    def scan_with_a_call_inside(*args, **kwargs):
        if "started" not in inner:  # once: the inner call's own scan goes straight through
            inner["started"] = True
            inner["out"] = layer(x, mask=mask, initial_state=[h0]).detach()
        return scan(*args, **kwargs)

    monkeypatch.setattr(minrnn_module, "fused_scan", scan_with_a_call_inside)
    torch.testing.assert_close(layer(x).detach(), want_last)
    torch.testing.assert_close(inner["out"], want_masked)
    monkeypatch.setattr(minrnn_module, "fused_scan", scan)

    results, errors = {}, []

    def many(key, **kwargs):
        try:
            results[key] = [layer(x, **kwargs).detach() for _ in range(20)]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=many, args=("last",)),
               threading.Thread(target=many, args=("masked",), kwargs=dict(mask=mask, initial_state=[h0]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results["last"]:
        torch.testing.assert_close(got, want_last)
    for got in results["masked"]:
        torch.testing.assert_close(got, want_masked)
