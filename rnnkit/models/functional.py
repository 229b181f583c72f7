"""Functional models: ``Model(inputs, outputs)``, the graph of layer calls from ``keras.Input``
tensors to the outputs, run in topological order.

The graph is read once, at construction (Keras's ``map_graph``: nodes ordered by depth, layers
by depth and then by first visit, so ``model.layers`` and ``get_weights()`` come in Keras's
order); a call then walks a precomputed plan, so a layer shared across a loop of ``Ty``
steps costs one plain module call per step, with no shape checks or re-tracing.
"""
from __future__ import annotations

import collections

import torch

from ..layers.base import Layer, as_tensor, format_shape
from ..layers._fusion import embedded_call
from ..layers.core import Embedding, InputLayer
from ..layers import functional_call
from ..layers.registry import deserialize_layer, serialize_layer
from ..layers.symbolic import KerasTensor, flatten, map_structure, pack_like, torch_dtype
from .model import Model


def _build_map(inputs: list, outputs: list):
    """Nodes from inputs to outputs (depth-first, Keras's ``_build_map``) and each layer's first visit."""
    finished, in_progress, ordered, first_visit = set(), set(), [], {}
    input_ids = {id(t) for t in inputs}

    def visit(tensor):
        node = tensor.node
        if node is None or id(node) in finished:
            return
        if not node.is_input and id(tensor) in input_ids:  # an intermediate tensor given as an input
            finished.add(id(node))
            return
        if id(node) in in_progress:
            raise ValueError(f"the graph has a cycle at layer {node.layer.name!r}")
        first_visit.setdefault(node.layer, len(first_visit))
        in_progress.add(id(node))
        for t in node.inbound:
            visit(t)
        finished.add(id(node))
        in_progress.discard(id(node))
        ordered.append(node)

    for t in outputs:
        visit(t)
    return ordered, first_visit


def map_graph(inputs: list, outputs: list):
    """``(nodes in execution order, layers in Keras's order, nodes by depth)``; checks that every
    tensor the outputs need can be computed from ``inputs`` and that layer names are unique."""
    ordered, first_visit = _build_map(inputs, outputs)
    in_graph = {id(n) for n in ordered}
    node_depth, layer_depth = {}, {}
    for node in reversed(ordered):
        depth = node_depth.setdefault(id(node), 0)
        depth = max(depth, layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = depth
        node_depth[id(node)] = depth
        for t in node.inbound:
            parent = t.node
            if parent is not None and id(parent) in in_graph:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:  # inputs the outputs do not use are still the model's
        if t.node is not None and t.node.is_input and t.node.layer not in layer_depth:
            layer_depth[t.node.layer] = 0
            first_visit[t.node.layer] = -1
            node_depth[id(t.node)] = 0
            ordered.insert(0, t.node)
    by_depth = collections.defaultdict(list)
    for layer, depth in layer_depth.items():
        by_depth[depth].append(layer)
    layers = []
    for depth in sorted(by_depth, reverse=True):
        layers += sorted(by_depth[depth], key=lambda layer: first_visit[layer])
    nodes_by_depth = collections.defaultdict(list)
    for node in ordered:
        nodes_by_depth[node_depth[id(node)]].append(node)
    steps = [n for d in sorted(nodes_by_depth, reverse=True) for n in nodes_by_depth[d]]

    computable = {id(t) for t in inputs}
    for node in steps:
        if node.is_input and not any(id(t) in computable for t in node.flat_outputs):
            raise ValueError(
                f"graph disconnected: the outputs need input {node.layer.name!r}, which is not among the "
                f"model's inputs ({', '.join(t.name or '?' for t in inputs)})"
            )
        for t in node.inbound:
            if id(t) not in computable:
                raise ValueError(
                    f"graph disconnected: layer {node.layer.name!r} needs tensor {t.name!r} "
                    f"{format_shape(t.shape)}, which cannot be computed from the model's inputs "
                    f"({', '.join(x.name or '?' for x in inputs)})"
                )
        computable.update(id(t) for t in node.flat_outputs)
    names = [layer.name for layer in layers]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"the name {name!r} is used {names.count(name)} times in the model; "
                             f"all layer names must be unique")
    steps = [n for n in steps if not n.is_input]
    return steps, layers, dict(nodes_by_depth)


class Functional(Model):
    """A model defined by its inputs and outputs, as ``keras.Model(inputs, outputs)``.

    Args:
        inputs: a ``keras.Input`` tensor, a list of them, or a dict ``{name: tensor}``.
        outputs: a tensor computed from them, a list, or a dict ``{name: tensor}``; calls and
            ``predict`` return the same structure.
        name: the model's name.

    Example (Ng's attention model's step, shared layers in a loop)::

        X = keras.Input(shape=(Tx, 37)); s0 = keras.Input(shape=(64,)); c0 = keras.Input(shape=(64,))
        a = keras.layers.Bidirectional(keras.layers.LSTM(32, return_sequences=True))(X)
        s, c, outputs = s0, c0, []
        for t in range(Ty):
            context = one_step_attention(a, s)
            _, s, c = post_lstm(context, initial_state=[s, c])
            outputs.append(output_layer(s))
        model = keras.Model(inputs=[X, s0, c0], outputs=outputs)
    """

    def __init__(self, inputs=None, outputs=None, name: str | None = None, trainable: bool = True, **kwargs):
        if inputs is None or outputs is None:
            raise TypeError("Model(inputs, outputs): both are needed for a functional model")
        for what, struct in (("inputs", inputs), ("outputs", outputs)):
            for t in flatten(struct):
                if not isinstance(t, KerasTensor):
                    raise TypeError(
                        f"Model: all {what} must be symbolic tensors (keras.Input or a layer's output on one), "
                        f"got {type(t).__name__}"
                    )
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self.inputs = flatten(inputs)
        self.outputs = flatten(outputs)
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("Model: the same input tensor is given twice")
        steps, layers, self._nodes_by_depth = map_graph(self.inputs, self.outputs)
        self._steps = steps
        self._graph_layers = torch.nn.ModuleList(layers)
        self._node_ids = {id(n) for nodes in self._nodes_by_depth.values() for n in nodes}
        self.input_names = [t.name for t in self.inputs]
        self.output_names = [t.layer.name if t.layer is not None else t.name for t in self.outputs]
        self._input_dtypes = [torch_dtype(t.dtype) for t in self.inputs]
        self._build_input_shape = map_structure(lambda t: t.shape, inputs)
        self._output_shape = map_structure(lambda t: t.shape, outputs)
        self.built = True
        self._consumers = collections.Counter(id(t) for n in steps for t in n.inbound)
        self._consumers.update(id(t) for t in self.outputs)
        self._fused = _fusion_pairs(steps, self._consumers)
        if not trainable:
            self.trainable = False

    # ------------------------------------------------------------- layers
    @property
    def layers(self) -> list[Layer]:
        """Every layer of the graph, inputs included, in Keras's order (by depth, then first use)."""
        return list(self._graph_layers)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"model {self.name!r} has {len(layers)} layers; index {index} is out of range")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model {self.name!r} has no layer named {name!r}; its layers are "
                         f"{', '.join(l.name for l in layers)}")

    @property
    def output_activations(self) -> list:
        """Per output, the activation name `forward_with_mask(return_logits=...)` can leave out
        (a final Dense/Activation's softmax or sigmoid), else None."""
        acts = []
        for t in self.outputs:
            layer = t.layer
            single = t.node is not None and len(t.node.flat_outputs) == 1 and not t.node.is_input
            acts.append(getattr(layer, "activation_name", None) if single and hasattr(layer, "logits") else None)
        return acts

    @property
    def final_activation(self):
        return self.output_activations[0] if len(self.outputs) == 1 else None

    # -------------------------------------------------------------- calls
    def _flat_inputs(self, inputs) -> list[torch.Tensor]:
        n = len(self.inputs)
        if isinstance(inputs, dict):
            keys = sorted(self._inputs_struct) if isinstance(self._inputs_struct, dict) else self.input_names
            missing = [k for k in keys if k not in inputs]
            if missing:
                raise ValueError(f"model {self.name!r}: the input dict has no {', '.join(map(repr, missing))}; "
                                 f"expected keys {keys}")
            unknown = sorted(set(inputs) - set(keys))
            if unknown:
                raise ValueError(f"model {self.name!r}: unknown input key(s) {unknown}; expected keys {keys}")
            flat = [inputs[k] for k in keys]
        elif isinstance(inputs, (list, tuple)):
            flat = list(inputs)
        else:
            flat = [inputs]
        if len(flat) != n:
            raise ValueError(f"model {self.name!r} takes {n} input(s) ({', '.join(self.input_names)}), got {len(flat)}")
        out = []
        device = self._param_device()
        for t, kt, dtype in zip(flat, self.inputs, self._input_dtypes):
            t = as_tensor(t, device)
            if t.dtype != dtype:
                t = t.to(dtype)  # as Keras converts each input to its Input's dtype (bool one-hot -> float)
            if t.dim() != len(kt.shape) or any(d is not None and d != g for d, g in zip(kt.shape[1:], t.shape[1:])):
                raise ValueError(f"model {self.name!r}: input {kt.name!r} expects shape {format_shape(kt.shape)}, "
                                 f"got {format_shape((None,) + tuple(t.shape[1:]))}")
            if kt.shape[0] is not None and t.shape[0] != kt.shape[0]:
                raise ValueError(f"model {self.name!r}: input {kt.name!r} has a fixed batch size of "
                                 f"{kt.shape[0]}, got a batch of {t.shape[0]}")
            out.append(t)
        return out

    def __call__(self, *args, **kwargs):
        if args and not isinstance(args[0], (KerasTensor, list, tuple, dict)) or not args:
            return super().__call__(*args, **kwargs)
        from ..layers.symbolic import any_symbolic

        if any_symbolic(args[0]):
            return super().__call__(*args, **kwargs)
        # A list or dict of arrays: each input is converted to its Input's dtype in forward.
        return functional_call.eager_call(self, args[0], args[1:], kwargs)

    def forward(self, inputs, mask=None, training=None, return_logits=False, with_mask=False):
        outputs, masks = self.forward_with_mask(inputs, mask=mask, training=training, return_logits=return_logits)
        return (outputs, masks) if with_mask else outputs

    def forward_with_mask(self, inputs, mask=None, training=None, return_logits=False):
        """Run the graph; returns ``(outputs, masks)`` in the structure the outputs were given in.

        ``mask``: masks of the inputs (same structure as the inputs). ``return_logits``: a bool, or
        one per output, asking for the pre-activation of outputs with an ``output_activations`` entry.
        """
        flat = self._flat_inputs(inputs)
        if mask is not None:
            masks = flatten(mask) if isinstance(mask, (list, tuple, dict)) else [mask]
            aliased = []
            for t, m in zip(flat, masks):
                if m is not None:
                    t = t.view_as(t)  # a mask rides on the tensor: never on the caller's own object
                    t._keras_mask = as_tensor(m, t.device).bool()
                aliased.append(t)
            flat = aliased
        env = {id(kt): t for kt, t in zip(self.inputs, flat)}
        logit_nodes = self._logit_nodes(return_logits)
        ctx = functional_call._TRAINING
        outer = ctx[0]
        if training is not None:
            ctx[0] = bool(training)
        try:
            done = set()  # recurrent nodes already computed with the embedding before them
            for node in self._steps:
                if id(node) in done:
                    continue
                if id(node) in self._fused:
                    reader = self._fused[id(node)]
                    out = self._embedded(node, reader, env[id(node.args[0])], ctx[0])
                    if out is not None:
                        leaves = flatten(out) if isinstance(reader.outputs, (list, tuple, dict)) else [out]
                        for kt, t in zip(reader.flat_outputs, leaves):
                            env[id(kt)] = t
                        done.add(id(reader))
                        continue
                args = map_structure(lambda v: env[id(v)] if isinstance(v, KerasTensor) else v, node.args)
                kwargs = map_structure(lambda v: env[id(v)] if isinstance(v, KerasTensor) else v, node.kwargs)
                if ctx[0] is not None and "training" in kwargs:
                    kwargs["training"] = ctx[0]  # Keras 3: the model's training flag overrides a call's own
                if id(node) in logit_nodes:
                    out = node.layer.logits(args[0])
                    out_kt = node.flat_outputs[0]
                    env[("logits", id(out_kt))] = out
                    if self._consumers[id(out_kt)] > logit_nodes[id(node)]:
                        env[id(out_kt)] = node.layer.activation(out)
                    continue
                out = functional_call.eager_call(node.layer, args[0], tuple(args[1:]), dict(kwargs))
                leaves = flatten(out) if isinstance(node.outputs, (list, tuple, dict)) else [out]
                for kt, t in zip(node.flat_outputs, leaves):
                    env[id(kt)] = t
        finally:
            ctx[0] = outer
        results = []
        for i, kt in enumerate(self.outputs):
            key = ("logits", id(kt))
            results.append(env[key] if key in env and self._wants_logits(return_logits, i) else env[id(kt)])
        out_masks = [getattr(t, "_keras_mask", None) for t in results]
        return pack_like(self._outputs_struct, results), pack_like(self._outputs_struct, out_masks)

    @staticmethod
    def _embedded(node, reader, ids, training):
        """``reader.layer(node.layer(ids))`` with the recurrent layer reading the embedding's table
        (layers/_fusion.py), the masks as the two calls would set them; None where it cannot."""
        embedding, layer = node.layer, reader.layer
        given = reader.kwargs.get("training")
        training = given if given is not None else training
        emb_mask = embedding.compute_mask(ids, functional_call.get_mask(ids))
        takes_mask = functional_call.call_info(layer).takes_mask
        out = embedded_call(embedding, layer, ids, emb_mask if takes_mask else None, training)
        if out is not None:
            functional_call.set_output_masks(layer, ids, out, emb_mask)
        return out

    @staticmethod
    def _wants_logits(return_logits, i: int) -> bool:
        if isinstance(return_logits, (list, tuple)):
            return bool(return_logits[i])
        return bool(return_logits)

    def _logit_nodes(self, return_logits) -> dict:
        """``{id(node): how many outputs take its logits}`` for the outputs that asked for logits."""
        if not return_logits or (isinstance(return_logits, (list, tuple)) and not any(return_logits)):
            return {}
        wanted: dict = {}
        for i, (kt, act) in enumerate(zip(self.outputs, self.output_activations)):
            if act is not None and self._wants_logits(return_logits, i):
                wanted[id(kt.node)] = wanted.get(id(kt.node), 0) + 1
        return wanted

    def compute_output_shape(self, input_shape):
        batch = None
        first = flatten(input_shape if isinstance(input_shape, (list, dict)) else [input_shape])
        if first and isinstance(first[0], int | None):
            batch = input_shape[0] if isinstance(input_shape, tuple) else None
        shapes = map_structure(lambda t: (batch,) + tuple(t.shape[1:]), self._outputs_struct)
        return shapes if not isinstance(shapes, dict) else list(shapes.values())

    def _check_shape(self, got) -> None:
        return  # forward checks each input against its Input

    # ------------------------------------------------------------- config
    def _node_index(self, node) -> int:
        """A node's number among its layer's calls that belong to this model."""
        own = [n for n in node.layer._inbound_nodes if id(n) in self._node_ids]
        return next(i for i, n in enumerate(own) if n is node)

    def _tensor_ref(self, t: KerasTensor) -> list:
        return [t.layer.name, self._node_index(t.node), t.index]

    def _io_ref(self, t: KerasTensor) -> list:
        # Keras numbers a nested functional model's calls from 1 in input_layers/output_layers only
        # (its "pre-existing node"), and from 0 in the calls' own arguments.
        name, node, index = self._tensor_ref(t)
        return [name, node + isinstance(t.layer, Functional), index]

    def get_config(self) -> dict:
        """Keras 3's functional config: each layer with the calls (``inbound_nodes``) that made the graph."""
        def ser(v):
            if isinstance(v, KerasTensor):
                return {"class_name": "__keras_tensor__",
                        "config": {"shape": list(v.shape), "dtype": v.dtype, "keras_history": self._tensor_ref(v)}}
            if isinstance(v, torch.Tensor):
                raise ValueError(f"model {self.name!r}: a layer call has a tensor argument, which a config cannot hold")
            return v

        layers = []
        for layer in self.layers:
            nodes = [n for n in layer._inbound_nodes if id(n) in self._node_ids and not n.is_input]
            spec = serialize_layer(layer)
            spec["name"] = layer.name
            spec["inbound_nodes"] = [{"args": [map_structure(ser, a) for a in n.args],
                                      "kwargs": {k: map_structure(ser, v) for k, v in n.kwargs.items()}}
                                     for n in nodes]
            layers.append(spec)
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layers,
            "input_layers": map_structure(self._io_ref, self._inputs_struct),
            "output_layers": map_structure(self._io_ref, self._outputs_struct),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> "Functional":
        return functional_from_config(config, custom_objects=custom_objects)


Model._functional = Functional


def _fusion_pairs(steps: list, consumers: collections.Counter) -> dict:
    """``{id(embedding node): reader node}`` where an `Embedding` call's one output is read by
    exactly one call, of a layer that can read the table (MinGRU, MinLSTM, a Bidirectional of
    one: ``reads_table``), on that output alone, and is no model output (layers/_fusion.py)."""
    readers: dict[int, list] = collections.defaultdict(list)
    for node in steps:
        for t in node.inbound:
            readers[id(t)].append(node)
    pairs = {}
    for node in steps:
        if (type(node.layer) is not Embedding or len(node.args) != 1 or not isinstance(node.args[0], KerasTensor)
                or set(node.kwargs) - {"training"}):
            continue
        outs = node.flat_outputs
        if len(outs) != 1 or consumers[id(outs[0])] != 1 or len(readers[id(outs[0])]) != 1:
            continue
        reader = readers[id(outs[0])][0]
        if (hasattr(reader.layer, "reads_table") and len(reader.args) == 1 and reader.args[0] is outs[0]
                and not set(reader.kwargs) - {"training", "mask"} and reader.kwargs.get("mask") is None):
            pairs[id(node)] = reader
    return pairs


def _is_ref(v) -> bool:
    return isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and all(isinstance(i, int) for i in v[1:])


def functional_from_config(config: dict, custom_objects=None) -> Functional:
    """Rebuild a functional model from `Functional.get_config` (Keras 3's layout): make each layer,
    then replay its calls once the tensors they read exist."""
    from ..layers.symbolic import Node  # noqa: F401  (the replayed calls record nodes)

    try:
        layer_specs = list(config["layers"])
        made: dict[str, Layer] = {}
        tensors: dict[tuple, list] = {}  # (layer name, node index) -> flat outputs
        pending = []
        for spec in layer_specs:
            layer = deserialize_layer({"class_name": spec["class_name"], "config": spec["config"]},
                                      custom_objects=custom_objects)
            name = spec.get("name", layer.name)
            made[name] = layer
            if isinstance(layer, InputLayer):
                tensors[(name, 0)] = [layer.symbolic_output()]
            for i, node_spec in enumerate(spec.get("inbound_nodes", [])):
                pending.append((name, i, node_spec))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"functional model config is malformed ({exc!r})") from None

    def resolve(v):
        if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
            name, node, index = v["config"]["keras_history"]
            outs = tensors.get((name, node))
            if outs is None:
                raise LookupError
            return outs[index]
        if isinstance(v, dict):
            return {k: resolve(x) for k, x in v.items()}
        if isinstance(v, list):
            return [resolve(x) for x in v]
        return v

    while pending:
        progressed = []
        for item in pending:
            name, index, node_spec = item
            if any((name, j) not in tensors for j in range(index)):
                continue
            try:
                args = [resolve(a) for a in node_spec.get("args", [])]
                kwargs = {k: resolve(v) for k, v in node_spec.get("kwargs", {}).items()}
            except LookupError:
                continue
            out = made[name](*args, **kwargs)
            tensors[(name, index)] = [t for t in flatten(out) if isinstance(t, KerasTensor)]
            progressed.append(item)
        if not progressed:
            names = sorted({p[0] for p in pending})
            raise ValueError(f"functional model config: the calls of layer(s) {names} read tensors no layer makes")
        pending = [p for p in pending if p not in progressed]

    def ref(v):
        if _is_ref(v):
            return tensors[(v[0], v[1] - isinstance(made[v[0]], Functional))][v[2]]
        if isinstance(v, dict):
            return {k: ref(x) for k, x in v.items()}
        return [ref(x) for x in v]

    inputs, outputs = ref(config["input_layers"]), ref(config["output_layers"])
    return Functional(inputs, outputs, name=config.get("name"), trainable=config.get("trainable", True))
