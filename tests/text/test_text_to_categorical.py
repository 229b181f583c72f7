"""rnnkit.utils.to_categorical against tf_keras on valid labels."""
from __future__ import annotations

import numpy as np

from rnnkit.utils import to_categorical


def test_matches_keras(keras_ref):
    for case in keras_ref["to_categorical"]:
        out = to_categorical(case["y"], num_classes=case["num_classes"])
        assert list(out.shape) == case["shape"], case
        assert out.dtype.str == case["dtype"], case
        np.testing.assert_array_equal(out, np.array(case["values"], dtype=out.dtype).reshape(out.shape))
