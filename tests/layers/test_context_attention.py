import numpy as np
import pytest
import torch

from rnnkit.layers import ContextAttention, Dense, RepeatVector, deserialize_layer, serialize_layer

B, TV, TQ, DK = 3, 7, 4, 6


def _inputs(query_dim=DK, key_dim=DK, tq=None):
    g = torch.Generator().manual_seed(1)
    q = torch.randn((B, tq, query_dim) if tq else (B, query_dim), generator=g)
    v = torch.randn(B, TV, key_dim, generator=g)
    return q, v


def _mask():
    m = torch.ones(B, TV, dtype=torch.bool)
    m[0, 4:] = False  # right padding
    m[1, :2] = False  # left padding
    m[1, 5] = False  # a hole
    return m


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
@pytest.mark.parametrize("tq", [None, TQ])
def test_shapes_and_weights_sum_to_one(score, tq):
    q, v = _inputs(tq=tq)
    layer = ContextAttention(score)
    context, w = layer([q, v], return_attention_scores=True)
    lead = (B, tq) if tq else (B,)
    assert tuple(context.shape) == lead + (DK,)
    assert tuple(w.shape) == lead + (TV,)
    assert torch.allclose(w.sum(-1), torch.ones(lead), atol=1e-6)
    declared = layer.compute_output_shape([(None,) + tuple(q.shape[1:]), (None, TV, DK)])
    assert declared == (None,) + tuple(context.shape[1:])


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
@pytest.mark.parametrize("tq", [None, TQ])
def test_masked_steps_get_zero_weight_and_the_rest_sum_to_one(score, tq):
    q, v = _inputs(tq=tq)
    m = _mask()
    context, w = ContextAttention(score)([q, v], mask=m, return_attention_scores=True)
    mm = m if tq is None else m[:, None, :].expand(-1, tq, -1)
    assert torch.all(w[~mm] == 0)
    assert torch.all(w[mm] > 0)
    assert torch.allclose(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-6)
    # The output is the weighted mean of the unmasked values only.
    expected = (w.unsqueeze(-1) * (v.unsqueeze(1) if tq else v)).sum(-2)
    assert torch.allclose(context, expected, atol=1e-6)


def test_masked_values_change_nothing_and_get_no_gradient():
    q, v = _inputs()
    m = _mask()
    layer = ContextAttention("additive")
    v = v.clone().requires_grad_(True)
    out = layer([q, v], mask=m)
    out.sum().backward()
    assert torch.all(v.grad[~m] == 0)
    v2 = v.detach().clone()
    v2[~m] = 1e3
    assert torch.allclose(layer([q, v2], mask=m), out.detach(), atol=1e-5)


def test_fully_masked_row_gives_zeros_not_nan():
    q, v = _inputs()
    m = torch.ones(B, TV, dtype=torch.bool)
    m[2] = False
    v = v.clone().requires_grad_(True)
    context, w = ContextAttention("dot")([q, v], mask=m, return_attention_scores=True)
    assert torch.all(w[2] == 0) and torch.all(context[2] == 0)
    context.sum().backward()
    assert torch.isfinite(v.grad).all()


def test_keras_style_mask_list_and_query_mask():
    q, v = _inputs(tq=TQ)
    qm = torch.tensor([[True, True, False, False]] * B)
    layer = ContextAttention("general")
    out = layer([q, v], mask=[qm, _mask()])
    ref = layer([q, v], mask=_mask())
    assert torch.all(out[:, 2:] == 0)
    assert torch.allclose(out[:, :2], ref[:, :2])


def test_separate_keys():
    q, v = _inputs()
    k = torch.randn(B, TV, 5)
    layer = ContextAttention("additive")
    context, w = layer([q, v, k], return_attention_scores=True)
    assert tuple(context.shape) == (B, DK) and layer.kernel.shape == (5 + DK, 10)


def test_additive_is_the_course_scorer():
    """Dense(10, tanh) on Concatenate([a, RepeatVector(Tx)(s)]) -> Dense(1, relu) -> softmax over time -> Dot."""
    s, a = _inputs(query_dim=8, key_dim=DK)
    layer = ContextAttention("additive", units=10, energy_activation="relu")
    context, w = layer([s, a], return_attention_scores=True)
    assert layer.count_params() == (DK + 8) * 10 + 10 + 10 + 1
    d1, d2 = Dense(10, activation="tanh"), Dense(1, activation="relu")
    concat = torch.cat([a, RepeatVector(TV)(s)], dim=-1)
    d1.build_for(tuple(concat.shape))
    d2.build_for((None, TV, 10))
    d1.set_weights([layer.kernel.detach().numpy(), layer.bias.detach().numpy()])
    d2.set_weights([layer.energy_kernel.detach().numpy(), layer.energy_bias.detach().numpy()])
    alphas = torch.softmax(d2(d1(concat)), dim=1)  # (batch, Tx, 1)
    assert torch.allclose(w, alphas.squeeze(-1), atol=1e-6)
    assert torch.allclose(context, (alphas * a).sum(1), atol=1e-6)


def test_luong_scores():
    q, v = _inputs(tq=TQ)
    w_dot = ContextAttention("dot")([q, v], return_attention_scores=True)[1]
    assert torch.allclose(w_dot, torch.softmax(q @ v.transpose(1, 2), -1), atol=1e-6)
    general = ContextAttention("general")
    w_gen = general([q, v], return_attention_scores=True)[1]
    assert torch.allclose(w_gen, torch.softmax(q @ general.kernel @ v.transpose(1, 2), -1), atol=1e-5)


def test_config_round_trip_and_registry():
    layer = ContextAttention("additive", units=12, energy_activation="relu")
    clone = deserialize_layer(serialize_layer(layer))
    assert type(clone) is ContextAttention and clone.get_config()["units"] == 12
    assert clone.get_config() == {**layer.get_config(), "name": clone.name}


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="score must be one of"):
        ContextAttention("cosine")
    with pytest.raises(ValueError, match="same width"):
        ContextAttention("dot")([np.zeros((2, 4), "float32"), np.zeros((2, 5, 6), "float32")])
    with pytest.raises(ValueError, match=r"\[query, value\]"):
        ContextAttention()(np.zeros((2, 5, 6), "float32"))
