"""``keras.activations``: the activation functions by their Keras names, on tensors.

``softmax(x, axis=-1)`` and ``log_softmax`` take Keras's ``axis`` (the Coursera attention
model's ``softmax(x, axis=1)`` is a softmax over time); ``get``/``serialize`` resolve names as
layers' ``activation=`` arguments do."""
from .. import ops
from ..activations import get, hard_sigmoid_keras2, linear, serialize

relu, tanh, sigmoid, elu, selu, gelu = ops.relu, ops.tanh, ops.sigmoid, ops.elu, ops.selu, ops.gelu
softplus, softsign, silu, relu6, exp = ops.softplus, ops.softsign, ops.silu, ops.relu6, ops.exp
swish, exponential, hard_sigmoid, leaky_relu = ops.silu, ops.exp, ops.hard_sigmoid, ops.leaky_relu
softmax, log_softmax = ops.softmax, ops.log_softmax


def deserialize(name):
    """The activation function called ``name`` (as ``get``)."""
    return get(name)


__all__ = [
    "relu", "tanh", "sigmoid", "elu", "selu", "gelu", "softplus", "softsign", "silu", "swish", "relu6",
    "exp", "exponential", "hard_sigmoid", "hard_sigmoid_keras2", "leaky_relu", "softmax", "log_softmax",
    "linear", "get", "serialize", "deserialize",
]
