"""``model.summary()``: the layer table in the classic tf.keras (2.3-2.6) layout.

Sequential-like models (a chain of single-input calls) get three columns (65 wide); other
functional models a fourth, "Connected to", listing each call's inbound tensors as
``layer[node][tensor]`` (98 wide). A layer whose calls give outputs of different shapes, or
one inside a subclassed model, shows ``multiple``, as tf.keras does.
"""
from __future__ import annotations

from typing import Callable, Sequence

from ..layers.base import format_shape
from ..layers.core import InputLayer

_NOT_BUILT = ("This model has not yet been built. Build the model first by calling `build()` or calling `fit()` "
              "with some data, or specify an `input_shape` argument in the first layer(s) for automatic build.")


def _is_functional(model) -> bool:
    # A functional model is the one with a graph of nodes; read the graph, not the class: the
    # model base imports this module, and models.functional imports the model base.
    return getattr(model, "_nodes_by_depth", None) is not None


def _is_sequential_like(model) -> bool:
    if not _is_functional(model):
        return True
    seen = set()
    for nodes in model._nodes_by_depth.values():
        if len(nodes) > 1 or (len(nodes) == 1 and len(nodes[0].inbound) > 1):
            return False
        seen.update(id(n) for n in nodes)
    for layer in model.layers:
        if sum(1 for n in layer._inbound_nodes if id(n) in seen) > 1:
            return False
    return True


def _shape_text(shape) -> str:
    if isinstance(shape, str):
        return shape
    return format_shape(shape) if not isinstance(shape, list) else str([tuple(s) for s in shape])


def _output_shape(model, layer):
    if isinstance(layer, InputLayer):
        return [tuple(layer.shape)]  # tf.keras shows an input's shape as a one-element list
    if not _is_functional(model):
        if type(model).__name__ == "Sequential" or model.__class__.__module__.startswith("rnnkit."):
            return layer.output_shape
        return "multiple"
    shapes = []
    for node in layer._inbound_nodes:
        if id(node) in model._node_ids:
            outs = [t.shape for t in node.flat_outputs]
            shapes.append(outs[0] if len(outs) == 1 else outs)
    if not shapes or any(s != shapes[0] for s in shapes):
        return "multiple"
    return shapes[0]


def _connections(model, layer) -> list[str]:
    out = []
    for node in layer._inbound_nodes:
        if id(node) not in model._node_ids:
            continue
        for t in node.inbound:
            producer = t.layer
            index = producer._inbound_nodes.index(t.node)
            out.append(f"{producer.name}[{index}][{t.index}]")
    return out


def print_summary(model, line_length: int | None = None, positions: Sequence[float] | None = None,
                  print_fn: Callable[[str], None] | None = None, expand_nested: bool = False,
                  show_trainable: bool = False) -> None:
    """Print ``model``'s layer table (see the module docstring).

    Args:
        line_length: total width (default 65, or 98 with the "Connected to" column).
        positions: right edge of each column, as fractions of ``line_length`` or absolute.
        print_fn: called with each line (default ``print``).
        show_trainable: add a "Trainable" column (Y/N).
    """
    if expand_nested:
        raise ValueError("summary(expand_nested=True) is not supported by rnnkit")
    if not model.built:
        raise ValueError(_NOT_BUILT)
    print_fn = print_fn or print
    sequential_like = _is_sequential_like(model)
    if sequential_like:
        line_length = line_length or 65
        positions = list(positions or [0.45, 0.85, 1.0])
        header = ["Layer (type)", "Output Shape", "Param #"]
    else:
        line_length = line_length or 98
        positions = list(positions or [0.33, 0.55, 0.67, 1.0])
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    if show_trainable:
        line_length += 11
        positions.append(line_length)
        header.append("Trainable")

    def row(fields):
        line = ""
        for i, field in enumerate(fields):
            if i > 0:
                line = line[:-1] + " "
            line += str(field)
            line = line[: positions[i]]
            line += " " * (positions[i] - len(line))
        print_fn(line)

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    row(header)
    print_fn("=" * line_length)
    layers = model.layers
    for i, layer in enumerate(layers):
        fields = [f"{layer.name} ({type(layer).__name__})", _shape_text(_output_shape(model, layer)),
                  layer.count_params() if layer.built else "0 (unused)"]
        extra = []
        if not sequential_like:
            conns = _connections(model, layer)
            fields.append(conns[0] if conns else "")
            extra = conns[1:]
        if show_trainable:
            fields.append("Y" if layer.trainable else "N")
        row(fields)
        for c in extra:
            row(["", "", "", c] + ([""] if show_trainable else []))
        print_fn("=" * line_length if i == len(layers) - 1 else "_" * line_length)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn("_" * line_length)
