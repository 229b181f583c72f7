"""``keras.backend``: the basics custom activations and layers written for Keras 2 use
(``K.softmax``, ``K.exp``, ``K.sum``, ``K.int_shape`` ...), as ``keras.ops`` computes them."""
from .. import ops
from ..layers.base import clear_session

softmax, exp, log, tanh, sigmoid, relu = ops.softmax, ops.exp, ops.log, ops.tanh, ops.sigmoid, ops.relu
sum, mean, max, min = ops.sum, ops.mean, ops.max, ops.min  # noqa: A001  (Keras's names)
dot, concatenate, reshape, transpose, square, sqrt, abs = (ops.dot, ops.concatenate, ops.reshape, ops.transpose,
                                                          ops.square, ops.sqrt, ops.abs)
expand_dims, squeeze, stack, cast, clip = ops.expand_dims, ops.squeeze, ops.stack, ops.cast, ops.clip


def ndim(x) -> int:
    """The number of axes of ``x`` (a tensor, an array, or a symbolic tensor)."""
    return len(x.shape)


def int_shape(x) -> tuple:
    """``x``'s shape as a tuple of ints (None for unknown axes of a symbolic tensor)."""
    return tuple(None if d is None else int(d) for d in x.shape)


def shape(x):
    return ops.shape(x)


def epsilon() -> float:
    """The fuzz factor Keras uses in its losses and metrics (1e-7)."""
    return 1e-7


def floatx() -> str:
    return "float32"


def backend() -> str:
    return "torch"


__all__ = [
    "clear_session", "softmax", "exp", "log", "tanh", "sigmoid", "relu", "sum", "mean", "max", "min", "dot",
    "concatenate", "reshape", "transpose", "square", "sqrt", "abs", "expand_dims", "squeeze", "stack", "cast",
    "clip", "ndim", "int_shape", "shape", "epsilon", "floatx", "backend",
]
