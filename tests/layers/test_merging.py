import numpy as np
import pytest
import torch

import rnnkit.keras as keras
from rnnkit.layers import (
    Add, Average, Concatenate, Dot, Embedding, Maximum, Minimum, Multiply, Subtract, deserialize_layer,
    serialize_layer,
)
from tests.layers._layers2 import INFO, arr, assert_config_keys, close, has

MERGES = {"add": Add, "subtract": Subtract, "multiply": Multiply, "average": Average,
          "maximum": Maximum, "minimum": Minimum}


def _embedded(i):
    """Input i of the masked cases, through rnnkit's Embedding(mask_zero=True) with Keras's table."""
    emb = Embedding(10, 3, mask_zero=True)
    ids = arr(f"embedded{i}/ids")
    x = emb(ids)
    emb.set_weights([arr(f"embedded{i}/weights")])
    x = emb(ids)
    close(x, f"embedded{i}/x")
    mask = emb.compute_mask(ids, None)
    close(mask, f"embedded{i}/mask")
    return x, mask


def _plain(i):
    return torch.from_numpy(arr(f"plain/x{i}"))


@pytest.mark.parametrize("name", sorted(MERGES))
def test_elementwise_merges_match_keras(name):
    cls = MERGES[name]
    for k in ([2] if name == "subtract" else [2, 3]):
        close(cls()([_plain(i) for i in range(k)]), f"{name}_plain{k}/y")
        pairs = [_embedded(i) for i in range(k)]
        layer = cls()
        xs, masks = [p[0] for p in pairs], [p[1] for p in pairs]
        close(layer(xs, mask=masks), f"{name}_masked{k}/y")
        close(layer.compute_mask(xs, masks), f"{name}_masked{k}/mask")  # the OR of the masks


@pytest.mark.parametrize("name", sorted(MERGES))
def test_merges_with_one_masked_input_match_keras(name):
    # Multiply reads the masked steps as 1, Maximum/Minimum take the other input's values there.
    x0, m0 = _embedded(0)
    x1, m1 = _embedded(1)
    for case, xs, masks in ((f"{name}_mixed", [x0, _plain(1)], [m0, None]),
                            (f"{name}_mixed_b", [_plain(0), x1], [None, m1])):
        layer = MERGES[name]()
        close(layer(xs, mask=masks), f"{case}/y")
        assert not has(f"{case}/mask") and layer.compute_mask(xs, masks) is None


@pytest.mark.parametrize("name", sorted(MERGES))
def test_merge_shapes_configs_and_errors(name):
    layer = MERGES[name]()
    assert layer.compute_output_shape([(None, 5, 3), (None, 5, 3)]) == tuple(INFO["shapes"][name])
    assert_config_keys(layer, name)
    assert serialize_layer(deserialize_layer(serialize_layer(layer)))["config"] == layer.get_config()
    with pytest.raises(ValueError, match=rf"layer '{name}.*' \({MERGES[name].__name__}\).*incompatible shapes "
                                         r"\[\((None|2), 5, 3\), \((None|2), 4, 3\)\]"):
        MERGES[name]()([torch.zeros(2, 5, 3), torch.zeros(2, 4, 3)])
    with pytest.raises(ValueError, match="should be called on a list"):
        MERGES[name]()(torch.zeros(2, 5, 3))
    built = MERGES[name]()
    built([torch.zeros(2, 5, 3), torch.zeros(2, 5, 3)])
    with pytest.raises(ValueError, match="incompatible shapes"):  # checked on every call, not only at build
        built([torch.zeros(2, 5, 3), torch.zeros(2, 4, 3)])


def test_broadcasting_as_keras():
    b1, b2, b3 = (torch.from_numpy(arr(f"broadcast/x{i}")) for i in range(3))
    close(Add()([b1, b2]), "add_broadcast/y")
    close(Add()([b1, b3]), "add_rank/y")  # (2, 3) broadcasts along the time axis of (2, 5, 3)
    close(Maximum()([b3, b1]), "maximum_rank/y")
    assert Add().compute_output_shape([(None, 5, 3), (None, 1, 3)]) == tuple(INFO["shapes"]["add_broadcast"])
    assert Add().compute_output_shape([(None, 5, 3), (None, 3)]) == tuple(INFO["shapes"]["add_rank"])
    assert Add().compute_output_shape([(None, None, 3), (None, 5, 3)]) == tuple(INFO["shapes"]["add_none"])


def test_subtract_takes_exactly_two_inputs():
    assert "exactly 2 inputs" in INFO["errors"]["subtract_three"]
    with pytest.raises(ValueError, match=r"layer 'subtract' \(Subtract\) should be called on exactly 2 inputs"):
        Subtract()([_plain(0), _plain(1), _plain(2)])


def test_merges_refuse_different_batch_sizes_and_mask_lists_of_other_lengths():
    with pytest.raises(ValueError, match="different batch sizes"):
        Add()([torch.zeros(2, 3), torch.zeros(3, 3)])
    with pytest.raises(ValueError, match="one mask per input"):
        Add()([torch.zeros(2, 3), torch.zeros(2, 3)], mask=[torch.ones(2, dtype=torch.bool)])


def test_concatenate_matches_keras():
    c1, c2 = torch.from_numpy(arr("concat_in/x0")), torch.from_numpy(arr("concat_in/x1"))
    close(Concatenate()([_plain(0), _plain(1)]), "concatenate_last/y")
    close(Concatenate(axis=1)([c1, c2]), "concatenate_axis1/y")
    assert Concatenate(axis=1).compute_output_shape([(None, 5, 3), (None, 4, 3)]) == tuple(
        INFO["shapes"]["concatenate_axis1"])
    assert Concatenate(axis=1).compute_output_shape([(None, None, 3), (None, 4, 3)]) == tuple(
        INFO["shapes"]["concatenate_none"])
    assert_config_keys(Concatenate(), "concatenate")
    assert Concatenate(axis=1).get_config()["axis"] == INFO["configs"]["concatenate_axis1"]["axis"]


@pytest.mark.parametrize("axis", [-1, 1])
def test_concatenate_masks_match_keras(axis):
    x0, m0 = _embedded(0)
    x1, m1 = _embedded(1)
    layer = Concatenate(axis=axis)
    close(layer([x0, x1], mask=[m0, m1]), f"concatenate_masked_axis{axis}/y")
    close(layer.compute_mask([x0, x1], [m0, m1]), f"concatenate_masked_axis{axis}/mask")
    # an unmasked input counts as all ones: joined features keep every step, joined time keeps its steps
    close(layer.compute_mask([x0, _plain(1)], [m0, None]), f"concatenate_mixed_axis{axis}/mask")
    assert layer.compute_mask([x0, x1], [None, None]) is None


def test_concatenate_errors():
    c1, c2 = torch.from_numpy(arr("concat_in/x0")), torch.from_numpy(arr("concat_in/x1"))
    assert "matching shapes except for the concatenation axis" in INFO["errors"]["concatenate_incompatible"]
    with pytest.raises(ValueError, match=r"layer 'concatenate' \(Concatenate\) requires inputs with matching "
                                         r"shapes except for the concatenation axis -1, got \[\((None|2), 5, 3\), \((None|2), 4, 3\)\]"):
        Concatenate()([c1, c2])
    with pytest.raises(ValueError, match="matching shapes"):
        Concatenate()([c1, torch.zeros(2, 3)])
    with pytest.raises(TypeError, match="axis must be an integer"):
        Concatenate(axis="1")


DOTS = {"dot_last": (dict(axes=-1), ["x0", "x1"]), "dot_12": (dict(axes=(1, 2)), ["x0", "x4"]),
        "dot_2d": (dict(axes=1), ["x2", "x3"]), "dot_2d3d": (dict(axes=(1, 2)), ["x2", "x1"]),
        "dot_norm": (dict(axes=-1, normalize=True), ["x0", "x1"]), "dot_3d2d": (dict(axes=(2, 1)), ["x0", "x3"])}


@pytest.mark.parametrize("case", sorted(DOTS))
def test_dot_matches_keras(case):
    kw, names = DOTS[case]
    xs = [torch.from_numpy(arr(f"dot_in/{n}")) for n in names]
    layer = Dot(**kw)
    close(layer(xs), f"{case}/y")
    assert layer.compute_output_shape([(None,) + tuple(x.shape[1:]) for x in xs]) == tuple(INFO["shapes"][case])
    assert_config_keys(layer, case)
    assert layer.get_config()["axes"] == INFO["configs"][case]["axes"]
    assert layer.get_config()["normalize"] == INFO["configs"][case]["normalize"]


def test_dot_outputs_no_mask_and_checks_its_axes():
    x0, m0 = _embedded(0)
    x1, m1 = _embedded(1)
    assert INFO["shapes"]["dot_masked_mask"] is None
    assert Dot(axes=-1).compute_mask([x0, x1], [m0, m1]) is None
    d1, d2 = torch.from_numpy(arr("dot_in/x0")), torch.from_numpy(arr("dot_in/x1"))
    assert "Incompatible input shapes" in INFO["errors"]["dot_incompatible"]
    with pytest.raises(ValueError, match=r"layer 'dot.*' \(Dot\) got incompatible inputs: axis 1 of \((None|2), 5, 3\) "
                                         r"has size 5, axis 1 of \((None|2), 4, 3\) has size 4"):
        Dot(axes=1)([d1, d2])
    with pytest.raises(ValueError, match="batch axis 0"):
        Dot(axes=0)([d1, d1])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        Dot(axes=-1)([d1, d1, d1])
    with pytest.raises(ValueError, match="pair of integers"):
        Dot(axes=(1, 2, 3))
    with pytest.raises(TypeError, match="pair of integers"):
        Dot(axes="1")


def test_functional_forms_build_and_call_their_layer():
    c1, c2 = torch.from_numpy(arr("concat_in/x0")), torch.from_numpy(arr("concat_in/x1"))
    d1, d2 = torch.from_numpy(arr("dot_in/x0")), torch.from_numpy(arr("dot_in/x1"))
    close(keras.layers.concatenate([c1, c2], axis=1), "fn_concatenate/y")
    close(keras.layers.dot([d1, d2], axes=-1, normalize=True), "fn_dot/y")
    close(keras.layers.subtract([_plain(0), _plain(1)]), "fn_subtract/y")
    for fn, cls in ((keras.layers.add, "add"), (keras.layers.multiply, "multiply"), (keras.layers.average, "average"),
                    (keras.layers.maximum, "maximum"), (keras.layers.minimum, "minimum")):
        close(fn([_plain(0), _plain(1)]), f"{cls}_plain2/y")
    named = keras.layers.add([np.ones((2, 3), "float32"), np.ones((2, 3), "float32")], name="sum")
    assert torch.equal(named, torch.full((2, 3), 2.0))
    with pytest.raises(TypeError, match="unexpected argument"):
        keras.layers.add([_plain(0), _plain(1)], bogus=1)
