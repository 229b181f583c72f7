"""Operator layers of functional graphs: OpCall (keras.ops calls recorded in Keras files)."""
import numpy as np
import pytest


def test_op_call_runs_an_rnnkit_op_with_the_arguments_keras_stored():
    from rnnkit.layers.lambda_layer import OpCall

    total = OpCall("sum", arguments={"axis": 1, "keepdims": False})
    np.testing.assert_allclose(np.asarray(total(np.ones((2, 3), "float32"))), [3.0, 3.0])
    mask = OpCall("not_equal")(np.array([[1, 0, 2]]), 0)
    assert np.asarray(mask).tolist() == [[True, False, True]]
    assert OpCall.from_config(total.get_config()).arguments == {"axis": 1, "keepdims": False}
    for bad in ("no_such_op", "_common"):
        with pytest.raises(ValueError, match=f"no operation '{bad}'"):
            OpCall(bad)
