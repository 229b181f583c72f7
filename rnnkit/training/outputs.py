"""A model's outputs and their structure: names and shapes in flat order, and the targets,
sample weights and predictions of a batch as one entry per output (a tensor, a list in output
order or a dict by output name). Shared by the fit loop, `compile` and the models."""
from __future__ import annotations


def output_spec(model):
    """``(output names, output shapes)`` in flat order, or ``(None, None)`` while a subclassed
    model's outputs are not known yet. Functional models give ``output_names``; a Sequential's
    one output is named after its last layer, as Keras names it."""
    names = getattr(model, "output_names", None)
    if names is None and hasattr(model, "final_activation"):
        layers = getattr(model, "layers", None)
        names = [layers[-1].name] if layers else None
    if names is None:
        return None, None
    names = list(names)
    shapes = None
    if getattr(model, "built", False):
        try:
            shape = model.output_shape
        except (AttributeError, ValueError):
            shape = None
        if shape is not None:
            shapes = list(shape) if isinstance(shape, list) else [shape]
            if len(shapes) != len(names):
                shapes = None
    return names, shapes


def output_activations(model, k: int) -> list:
    """Per output, the activation that ``forward_with_mask(return_logits=...)`` can leave out
    (``model.output_activations``; a Sequential's ``final_activation``), else None."""
    acts = getattr(model, "output_activations", None)
    if acts is None and hasattr(model, "final_activation") and hasattr(model, "forward_with_mask"):
        acts = [model.final_activation]
    if acts is None or len(acts) != k:
        return [None] * k
    return list(acts)


def names_of(out) -> list[str]:
    """Output names for a subclassed model, from the structure its call returned."""
    if isinstance(out, dict):
        return list(out)
    if isinstance(out, (list, tuple)):
        return [f"output_{i + 1}" for i in range(len(out))]
    return ["output"]


def flat_outputs(out, names) -> list:
    """A model's outputs (a tensor, list or dict) as a flat list in output order."""
    if isinstance(out, dict):
        return [out[n] for n in names] if names and all(n in out for n in names) else list(out.values())
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def _by_name(data, names, what):
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"{what} has no entry for output {missing[0]!r}; expected keys {names}, got {sorted(data)}")
    return [data[n] for n in names]


def flat_targets(y, names, k: int) -> list:
    """``y`` (one array, a list in output order or a dict by output name) as one target per output."""
    if y is None:
        return [None] * k
    if isinstance(y, dict):
        return _by_name(y, names, "y")
    if isinstance(y, (list, tuple)):
        if len(y) != k:
            raise ValueError(f"y has {len(y)} arrays but the model has {k} output(s) {names}")
        return list(y)
    if k != 1:
        raise ValueError(f"the model has {k} outputs {names} but y is one array; give a list or a dict of targets")
    return [y]


def flat_weights(sample_weight, names, k: int) -> list:
    """Per-output sample weights: one array serves every output (Keras's rule), else a list or dict."""
    if sample_weight is None:
        return [None] * k
    if isinstance(sample_weight, dict):
        return [sample_weight.get(n) for n in names]
    if isinstance(sample_weight, (list, tuple)):
        if len(sample_weight) != k:
            raise ValueError(f"sample_weight has {len(sample_weight)} arrays but the model has {k} output(s) {names}")
        return list(sample_weight)
    return [sample_weight] * k
