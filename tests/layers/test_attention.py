"""Keras's attention layers against real Keras 3 (tests/fixtures/keras/attention/)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.layers import (AdditiveAttention, Attention, ContextAttention, Embedding, MultiHeadAttention,
                           deserialize_layer, get_class, serialize_layer)
from rnnkit.layers.base import shape_probe

FIXTURES = Path(__file__).parents[1] / "fixtures" / "keras" / "attention"
CASES = json.loads((FIXTURES / "attention.json").read_text())["cases"]
ARRAYS = np.load(FIXTURES / "attention.npz")
CLASSES = {"Attention": Attention, "AdditiveAttention": AdditiveAttention, "MultiHeadAttention": MultiHeadAttention}
# Keras config keys whose values rnnkit writes differently (dtype policies, initializer objects).
_NOT_COMPARED = {"name", "dtype", "kernel_initializer", "bias_initializer"}


def _case(name):
    case = CASES[name]
    get = lambda prefix: [ARRAYS[k] for k in sorted((k for k in ARRAYS.files if k.startswith(f"{name}/{prefix}/")),
                                                    key=lambda k: int(k.rsplit("/", 1)[1]))]
    masks = {k.rsplit("/", 1)[1]: ARRAYS[k] for k in ARRAYS.files if k.startswith(f"{name}/mask/")}
    kwargs = dict(case["kwargs"])
    for k in ARRAYS.files:
        if k.startswith(f"{name}/kw/"):
            kwargs[k.rsplit("/", 1)[1]] = ARRAYS[k]
    return case, get("in"), get("w"), masks, kwargs


def _layer(case):
    config = {k: v for k, v in case["config"].items() if k not in _NOT_COMPARED}
    return CLASSES[case["class"]].from_config(config)


def _run(name):
    case, inputs, weights, masks, kwargs = _case(name)
    layer = _layer(case)
    if case["class"] == "MultiHeadAttention":
        for k, m in masks.items():
            if k not in case["implicit"]:
                kwargs[f"{k}_mask"] = m
        if case["implicit"]:  # the masks the tensors carry, as a model passes them
            names = ["query", "value", "key"][: len(inputs)]
            kwargs["mask"] = [masks.get(n) if n in case["implicit"] else None for n in names]
        layer.build_for([(None,) + x.shape[1:] for x in inputs])
        layer.set_weights(weights)
        out = layer(*inputs, **kwargs)
    else:
        mask = [masks.get("query"), masks.get("value")] if masks else None
        layer.build_for([(None,) + x.shape[1:] for x in inputs])
        layer.set_weights(weights)
        out = layer(inputs, mask=mask, **kwargs)
    return case, layer, inputs, out


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_keras(name):
    case, layer, inputs, out = _run(name)
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == (2 if case["kwargs"].get("return_attention_scores") else 1)
    np.testing.assert_allclose(outs[0].detach().numpy(), ARRAYS[f"{name}/out"], atol=2e-5, rtol=1e-5)
    if len(outs) == 2:
        np.testing.assert_allclose(outs[1].detach().numpy(), ARRAYS[f"{name}/scores"], atol=2e-6)
    shapes = [(None,) + x.shape[1:] for x in inputs]
    assert layer.compute_output_shape(shapes) == tuple(case["output_shape"])
    assert [list(w.shape) for w in layer.get_weights()] == case["weight_shapes"]
    keras_cfg = {k: v for k, v in case["config"].items() if k not in _NOT_COMPARED}
    ours = layer.get_config()
    assert {k: ours[k] for k in keras_cfg} == keras_cfg


def test_keras_quirks_are_kept():
    """A fully masked row: Attention averages every value (Keras's -1e9 bias); MultiHeadAttention
    zeroes it when it returns scores, averages when it does not (Keras's fused path)."""
    _, _, inputs, (out, scores) = _run("dot_empty_row")
    np.testing.assert_allclose(scores[1].numpy(), 1 / scores.shape[-1], atol=1e-6)
    _, _, _, plain = _run("mha_implicit_self_scores0")
    _, _, _, (with_scores, weights) = _run("mha_implicit_self_scores1")
    masked_query = ~ARRAYS["mha_implicit_self_scores0/mask/query"]
    assert torch.all(weights.permute(0, 2, 1, 3)[torch.from_numpy(masked_query)] == 0)
    assert not torch.allclose(plain[torch.from_numpy(masked_query)], with_scores[torch.from_numpy(masked_query)])


def test_mha_key_defaults_to_value_and_mask_list_matches_keywords():
    case, inputs, weights, masks, _ = _case("mha_value_key_masks")
    layer = _layer(case)
    layer.build_for([(None,) + x.shape[1:] for x in inputs])
    layer.set_weights(weights)
    q, v, k = inputs
    by_keyword = layer(q, v, k, value_mask=masks["value"], key_mask=masks["key"])
    by_list = layer([q, v, k], mask=[None, masks["value"], masks["key"]])
    torch.testing.assert_close(by_keyword, by_list)
    np.testing.assert_allclose(by_keyword.detach().numpy(), ARRAYS["mha_value_key_masks/out"], atol=2e-5)
    torch.testing.assert_close(layer(q, v, v), layer(q, v))
    # An explicit value_mask wins over the one the value carries, as in Keras.
    torch.testing.assert_close(layer(q, v, k, mask=[None, np.ones((2, 5), bool), masks["key"]],
                                     value_mask=masks["value"]), by_keyword)


def test_mha_output_mask_is_the_query_mask_and_embedding_masks_flow():
    emb = Embedding(20, 6, mask_zero=True)
    ids = np.array([[3, 5, 0], [1, 0, 0]])
    x = emb(ids)
    mask = emb.compute_mask(ids, None)
    mha = MultiHeadAttention(2, 3)
    out = mha(x, x, mask=[mask, mask])
    assert torch.equal(mha.compute_mask([x, x], [mask, mask]), mask)
    # A masked key step changes nothing for the other queries.
    x2 = x.clone()
    x2[0, 2] = 100.0
    torch.testing.assert_close(mha(x2, x2, mask=[mask, mask])[0, :2], out[0, :2])


@pytest.mark.parametrize("cls", [Attention, AdditiveAttention])
def test_dropout_on_weights_in_training_only_and_seeded(cls):
    q, v = torch.randn(2, 3, 4), torch.randn(2, 6, 4)
    layer = cls(dropout=0.5, seed=7)
    inference, w0 = layer([q, v], return_attention_scores=True)
    torch.testing.assert_close(layer([q, v]), inference)
    out, w = layer([q, v], training=True, return_attention_scores=True)
    kept = w != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(w[kept], 2 * w0[kept])  # Keras returns the dropped, rescaled weights
    torch.testing.assert_close(out, w @ v)
    # The same seed gives the same masks in a fresh layer; another seed, others.
    again = cls(dropout=0.5, seed=7)
    again.build_for([(None, 3, 4), (None, 6, 4)])
    again.set_weights(layer.get_weights())
    torch.testing.assert_close(again([q, v], training=True, return_attention_scores=True)[1], w)
    other = cls(dropout=0.5, seed=8)
    other.build_for([(None, 3, 4), (None, 6, 4)])
    other.set_weights(layer.get_weights())
    assert not torch.equal(other([q, v], training=True, return_attention_scores=True)[1], w)


def test_mha_dropout_returns_scores_before_dropout():
    q = torch.randn(2, 3, 6)
    mha = MultiHeadAttention(2, 3, dropout=0.5, seed=1)
    out0, s0 = mha(q, q, return_attention_scores=True)
    out, s = mha(q, q, return_attention_scores=True, training=True)
    torch.testing.assert_close(s, s0)
    assert not torch.allclose(out, out0)
    with shape_probe():  # a probe draws no mask
        gen_state = mha._generators[q.device].get_state()
        mha(q, q, training=True)
        assert torch.equal(mha._generators[q.device].get_state(), gen_state)


def test_mha_initializers_use_keras_fans():
    torch.manual_seed(0)
    mha = MultiHeadAttention(4, 8, kernel_initializer="glorot_uniform")
    mha.build_for([(None, 5, 16), (None, 5, 16)])
    limit_q = np.sqrt(6 / (16 + 4 * 8))  # fan_in = 16 (input axis), fan_out = 4 * 8
    limit_out = np.sqrt(6 / (4 * 8 + 16))
    assert 0.9 * limit_q < mha.query_kernel.abs().max() <= limit_q
    assert 0.9 * limit_out < mha.attention_output_kernel.abs().max() <= limit_out
    assert torch.all(mha.query_bias == 0)


def test_mha_regularizers_cover_every_projection():
    mha = MultiHeadAttention(2, 3, kernel_regularizer="l2", bias_regularizer="l1", use_gate=True)
    mha.build_for([(None, 4, 5), (None, 4, 5)])
    with torch.no_grad():
        for p in mha.parameters():
            p.fill_(1.0)
    kernels = sum(getattr(mha, f"{p}_kernel").numel() for p in ("query", "key", "gate", "value", "attention_output"))
    biases = sum(getattr(mha, f"{p}_bias").numel() for p in ("query", "key", "gate", "value", "attention_output"))
    assert mha.regularization_loss().item() == pytest.approx(0.01 * kernels + 0.01 * biases)


def test_symbolic_probe_gets_tuples_for_scores():
    q, v = torch.randn(3, 4, 5), torch.randn(3, 2, 5)
    with shape_probe():
        out = Attention()([q, v], return_attention_scores=True)
        mha_out = MultiHeadAttention(2, 3)(q, v, return_attention_scores=True)
    assert isinstance(out, tuple) and tuple(out[1].shape) == (3, 4, 2)
    assert isinstance(mha_out, tuple) and tuple(mha_out[1].shape) == (3, 2, 4, 2)
    assert MultiHeadAttention(2, 3).compute_output_shape((None, 4, 5), (None, 2, 7)) == (None, 4, 5)


def test_config_round_trip():
    for layer in (Attention(use_scale=True, score_mode="concat", dropout=0.1, seed=3),
                  AdditiveAttention(use_scale=False), MultiHeadAttention(2, 3, value_dim=4, output_shape=(2, 2),
                                                                          attention_axes=(1,), use_gate=True,
                                                                          sliding_window=3, kernel_regularizer="l2")):
        clone = deserialize_layer(serialize_layer(layer))
        assert type(clone) is type(layer)
        assert clone.get_config() == {**layer.get_config(), "name": clone.name}


def test_old_rnnkit_attention_config_loads_as_context_attention():
    """rnnkit's own attention was saved as class "Attention" before it became ContextAttention
    (tests/fixtures/native/make_attention_v1.py made this file at 458a02f)."""
    old = json.loads((Path(__file__).parents[1] / "fixtures" / "native" / "attention_v1.json").read_text())
    assert old["spec"]["class_name"] == "Attention"
    layer = deserialize_layer(old["spec"])
    assert type(layer) is ContextAttention and layer.name == "attention"
    layer.build_for([tuple(s) for s in old["input_shape"]])
    layer.set_weights([np.asarray(w) for w in old["weights"]])
    context, scores = layer([np.asarray(old["query"], "float32"), np.asarray(old["value"], "float32")],
                            mask=np.asarray(old["mask"]), return_attention_scores=True)
    np.testing.assert_allclose(context.detach().numpy(), old["context"], atol=1e-6)
    np.testing.assert_allclose(scores.detach().numpy(), old["scores"], atol=1e-6)
    assert get_class("Attention") is Attention and get_class("ContextAttention") is ContextAttention


def test_refused_and_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="score_mode must be 'dot' or 'concat'"):
        Attention(score_mode="general")
    with pytest.raises(TypeError, match="score_mode"):
        AdditiveAttention(score_mode="dot")
    with pytest.raises(ValueError, match=r"dropout must be a float in \[0, 1\)"):
        Attention(dropout=1.0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        MultiHeadAttention(2, 3, seed="x")
    with pytest.raises(ValueError, match=r"takes a list \[query, value\]"):
        Attention()(np.zeros((2, 5, 6), "float32"))
    with pytest.raises(ValueError, match="same last dimension"):
        Attention()([np.zeros((2, 4, 3), "float32"), np.zeros((2, 5, 6), "float32")])
    with pytest.raises(ValueError, match="mask=\\[query_mask, value_mask\\]"):
        Attention()([np.zeros((2, 4, 3), "float32")] * 2, mask=np.ones((2, 4), bool))
    for arg in ("activity_regularizer", "kernel_constraint", "bias_constraint"):
        with pytest.raises(ValueError, match=f"{arg}= is not supported"):
            MultiHeadAttention(2, 3, **{arg: "l2" if arg == "activity_regularizer" else "non_neg"})
    with pytest.raises(ValueError, match="flash_attention=True is not supported"):
        MultiHeadAttention(2, 3, flash_attention=True)
    with pytest.raises(ValueError, match="num_heads must be a positive integer"):
        MultiHeadAttention(0, 3)
    with pytest.raises(ValueError, match="output_shape must be an int or a tuple"):
        MultiHeadAttention(2, 3, output_shape="wide")
    x = np.zeros((2, 4, 6), "float32")
    with pytest.raises(ValueError, match="query_mask= is not supported"):
        MultiHeadAttention(2, 3)(x, x, query_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="attention_axes"):
        MultiHeadAttention(2, 3, attention_axes=-1)(np.zeros((2, 3, 4, 5), "float32"), np.zeros((2, 3, 4, 5), "float32"))
    with pytest.raises(TypeError, match="needs value"):
        MultiHeadAttention(2, 3)(x)
    with pytest.raises(ValueError, match="value and key equal in every axis"):
        MultiHeadAttention(2, 3)(x, x, np.zeros((2, 5, 6), "float32"))
