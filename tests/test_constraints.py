"""Weight constraints against Keras 3: each projection's values, and constrained Dense,
Conv1D and Embedding weights after ``fit`` steps (``tests/fixtures/keras/layers_args``)."""
import copy
import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import constraints as C
from rnnkit import keras
from rnnkit.layers import Conv1D, Dense, Embedding, Flatten, Input

from .conftest import FIXTURES

HERE = FIXTURES / "keras" / "layers_args"
META = json.loads((HERE / "constraints.json").read_text())
ARRAYS = np.load(HERE / "constraints.npz")


@pytest.mark.parametrize("spec", META["values"], ids=lambda s: f"{s['class_name']}-{s['config']}")
def test_constraint_values_match_keras(spec):
    c = C.get({"class_name": spec["class_name"], "config": spec["config"]})
    got = c(torch.as_tensor(ARRAYS[spec["w"]])).numpy()
    np.testing.assert_allclose(got, ARRAYS[spec["y"]], rtol=1e-5, atol=1e-6)
    again = C.get(C.serialize(c))
    np.testing.assert_allclose(again(torch.as_tensor(ARRAYS[spec["w"]])).numpy(), got, rtol=0, atol=0)


def _model(fit):
    cfg, cons = fit["config"], fit["constraints"]
    if fit["layer"] == "Dense":
        return [Input(tuple(fit["input_shape"])), Dense(cfg["units"], **cons)]
    if fit["layer"] == "Conv1D":
        return [Input(tuple(fit["input_shape"])), Conv1D(cfg["filters"], cfg["kernel_size"], **cons), Flatten()]
    return [Input(tuple(fit["input_shape"]), dtype="int64"), Embedding(cfg["input_dim"], cfg["output_dim"], **cons),
            Flatten()]


@pytest.mark.parametrize("fit", META["fits"], ids=lambda f: f["name"])
def test_constrained_weights_after_fit_steps_match_keras(fit):
    name = fit["name"]
    model = rnnkit.Sequential(_model(fit))
    model.set_weights([ARRAYS[f"{name}/before{i}"] for i in range(fit["n_weights"])])
    model.compile(optimizer=rnnkit.optimizers.SGD(0.5), loss="mse")
    model.fit(ARRAYS[f"{name}/x"], ARRAYS[f"{name}/y"], batch_size=4, epochs=1, shuffle=False, verbose=0)
    for i, got in enumerate(model.get_weights()):
        np.testing.assert_allclose(got, ARRAYS[f"{name}/after{i}"], rtol=1e-5, atol=1e-6, err_msg=f"{name} weight {i}")
    layer = model.layers[0]
    for key, value in fit["constraints"].items():
        assert layer.get_config()[key] == {"class_name": value["class_name"], "config": value["config"]}


def test_constraints_apply_in_any_torch_loop_only_to_updated_weights_and_survive_copies():
    dense = Dense(3, kernel_constraint="non_neg", bias_constraint=keras.constraints.MaxNorm(0.01))
    dense(np.zeros((1, 2), "float32"))
    with torch.no_grad():
        dense.kernel.fill_(-1.0)
        dense.bias.fill_(-1.0)
    opt = torch.optim.SGD([dense.kernel], lr=0.0)  # a step of nothing: the projection alone
    dense(torch.ones(1, 2)).sum().backward()
    opt.step()
    assert (dense.kernel == 0).all()
    assert (dense.bias == -1).all()  # not in this optimizer: Keras leaves it as well
    twin = copy.deepcopy(dense)
    with torch.no_grad():
        twin.kernel.fill_(-2.0)
    twin(torch.ones(1, 2)).sum().backward()
    torch.optim.SGD(twin.parameters(), lr=0.0).step()
    assert (twin.kernel == 0).all() and twin.bias.abs().max() <= 0.01 + 1e-6


@pytest.mark.parametrize("bad,message", [
    ("max", "unknown constraint 'max'; expected one of"),
    ({"class_name": "Clip", "config": {}}, "unknown constraint class 'Clip'"),
    (3, "cannot interpret 3 as a constraint"),
])
def test_unknown_constraints_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        Dense(2, kernel_constraint=bad)
    with pytest.raises(ValueError, match="constraint axis must be an integer or a list of integers"):
        C.MaxNorm(axis=0.5)
    with pytest.raises(ValueError, match="has no Keras name, so it cannot be saved"):
        Dense(2, kernel_constraint=lambda w: w).get_config()
