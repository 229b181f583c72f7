"""rnnkit.ops against real Keras 3's keras.ops (fixtures from tests/fixtures/keras/ops)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit import ops

FIXTURES = Path(__file__).parent / "fixtures" / "keras" / "ops"
CASES = json.loads((FIXTURES / "ops.json").read_text())


def decode(v):
    if isinstance(v, dict):
        if "array" in v:
            return np.asarray(v["array"], dtype=v["dtype"])
        if "arrays" in v:
            return [decode(e) for e in v["arrays"]]
        if "tuple" in v:
            return tuple(v["tuple"])
    return v


def check(got, want, where):
    if "list" in want:
        assert isinstance(got, (list, tuple)) and len(got) == len(want["list"]), where
        for g, w in zip(got, want["list"]):
            check(g, w, where)
        return
    if "tuple" in want:
        assert got == tuple(want["tuple"]), where
        return
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        assert got == want["values"], where
        return
    assert isinstance(got, torch.Tensor), f"{where}: returned {type(got).__name__}, not a tensor"
    assert ops.dtype_name(got.dtype) == want["dtype"], f"{where}: dtype {got.dtype}, Keras {want['dtype']}"
    assert list(got.shape) == want["shape"], where
    np.testing.assert_allclose(ops.convert_to_numpy(got), np.asarray(want["values"]), rtol=1e-5, atol=1e-5,
                               err_msg=where)


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['op']}" for i, c in enumerate(CASES)])
def test_matches_keras(case):
    args = [decode(a) for a in case["args"]]
    kwargs = {k: decode(v) for k, v in case["kwargs"].items()}
    got = getattr(ops, case["op"])(*args, **kwargs)
    check(got, case["out"], f"{case['op']}({case['kwargs']})")


def test_every_fixture_op_is_exported():
    assert {c["op"] for c in CASES} <= set(ops.__all__)


def test_ops_are_differentiable():
    x = torch.randn(3, 4, requires_grad=True)
    h = ops.tanh(ops.matmul(x, ops.transpose(x)))
    parts = ops.split(ops.concatenate([h, ops.softmax(h)], axis=1), 2, axis=1)
    loss = ops.sum(ops.where(parts[0] > 0, parts[0], ops.exp(parts[1]))) + ops.mean(ops.max(x, axis=1))
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_numpy_and_lists_are_accepted():
    out = ops.add(np.ones(2, dtype="float32"), [1.0, 2.0])
    assert isinstance(out, torch.Tensor) and out.tolist() == [2.0, 3.0]


def test_weak_python_scalars_keep_the_tensor_dtype():
    assert ops.multiply(torch.ones(2, dtype=torch.float16), 2.0).dtype == torch.float16
    assert ops.add(torch.ones(2, dtype=torch.int32), 1).dtype == torch.int32
    assert ops.add(torch.ones(2, dtype=torch.int32), 1.5).dtype == torch.float32


def test_refusals_name_the_argument():
    with pytest.raises(ValueError, match="sparse"):
        ops.one_hot([1], 3, sparse=True)
    with pytest.raises(ValueError, match="sparse"):
        ops.convert_to_tensor([1.0], sparse=True)
    with pytest.raises(ValueError, match="mode"):
        ops.pad(np.ones((2, 2)), [[1, 1], [1, 1]], mode="reflect")
    with pytest.raises(ValueError, match="equal parts"):
        ops.split(np.ones(5), 2)
    with pytest.raises(ValueError, match="not 1"):
        ops.squeeze(np.ones((2, 3)), axis=0)
    with pytest.raises(ValueError, match="x1 and x2"):
        ops.where(np.ones(2) > 0, np.ones(2))
    with pytest.raises(ValueError, match="dtype"):
        ops.cast(np.ones(2), "complex-ish")


def test_keras_namespace():
    import rnnkit.keras as keras

    assert keras.ops.matmul is ops.matmul
