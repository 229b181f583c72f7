"""What ``Model.compile`` records: losses, loss weights, metrics, optimizer and device.

A model has one or more outputs (flat order, named as Keras names them: the producing
layers' names). ``compile(loss=...)`` takes one loss for every output, a list (one per
output) or a dict ``{output name: loss}``; ``loss_weights``, ``metrics`` and
``weighted_metrics`` follow the same structure. They are resolved per output (`OutputSpec`)
when the model's outputs are known: at compile for built models, else at the first batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from .outputs import flat_outputs, flat_targets, flat_weights, output_spec


class Mean:
    """A running (weighted) mean, as ``keras.metrics.Mean``: the loss trackers of `Model.metrics`."""

    def __init__(self, name: str):
        self.name = name
        self.reset_state()

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None) -> None:
        v = torch.as_tensor(values).detach().double()
        if sample_weight is None:
            self.total += float(v.sum())
            self.count += v.numel()
        else:
            w = torch.broadcast_to(torch.as_tensor(sample_weight, dtype=torch.float64, device=v.device), v.shape)
            self.total += float((v * w).sum())
            self.count += float(w.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class OutputSpec:
    """One model output's share of the compiled training: its loss, weight and metrics."""

    name: str
    loss: losses_mod.Loss | None
    weight: float | None
    metrics: list = field(default_factory=list)
    weighted_metrics: list = field(default_factory=list)
    tracker: Mean | None = None  # "<name>_loss", only for models with several outputs


class CompileMetrics:
    """The compiled metrics of every output, as Keras's ``compile_metrics`` entry of ``model.metrics``:
    ``update_state(y, y_pred, sample_weight)`` on the model's output structure, ``result()`` a dict."""

    name = "compile_metrics"

    def __init__(self, state: "CompiledState"):
        self.state = state

    def _named(self):
        multi = len(self.state.outputs) > 1
        seen: dict[str, int] = {}
        for i, spec in enumerate(self.state.outputs):
            for weighted, group in ((False, spec.metrics), (True, spec.weighted_metrics)):
                for m in group:
                    name = f"{spec.name}_{m.name}" if multi else m.name
                    # Keras 3 numbers a repeated name (outputs of one shared layer): x, x_1, x_2, ...
                    seen[name] = seen.get(name, -1) + 1
                    yield i, weighted, (f"{name}_{seen[name]}" if seen[name] else name), m

    @property
    def metrics(self) -> list:
        return [m for _, _, _, m in self._named()]

    def update_state(self, y_true, y_pred, sample_weight=None, masks=None) -> None:
        names = [s.name for s in self.state.outputs]
        preds = flat_outputs(y_pred, names)
        ys = flat_targets(y_true, names, len(preds))
        ws = flat_weights(sample_weight, names, len(preds))
        with torch.no_grad():
            for i, weighted, _, m in self._named():
                mask = None if masks is None else masks[i]
                if weighted and ws[i] is not None:
                    mask = weighted_mask(ws[i], mask)
                m.update(ys[i], preds[i].detach(), mask)

    def result(self) -> dict:
        return {name: m.result() for _, _, name, m in self._named()}

    def reset_state(self) -> None:
        for m in self.metrics:
            m.reset()


def weighted_mask(w: torch.Tensor, mask):
    """Sample weights (times the output's mask) in the mask's role for `Metric.update`, which
    then computes ``sum(value * w) / sum(w)``: Keras's weighted metric."""
    w = w.float()
    return w if mask is None else w * mask.to(w.dtype)


@dataclass
class CompiledState:
    loss: losses_mod.Loss | None  # the loss of a one-output model (None until resolved for several)
    optimizer: optimizers_mod.Optimizer
    loss_spec: object = None
    loss_weights: object = None
    metric_specs: object = field(default_factory=list)
    weighted_metric_specs: object = None
    metrics: list = field(default_factory=list)  # the one-output fast path's metrics (= outputs[0].metrics)
    outputs: list = field(default_factory=list)  # OutputSpec per output, once resolved
    pending_optimizer_state: dict | None = None
    precision: str = "fp32"
    run_eagerly: bool = False

    def get_config(self) -> dict:
        def names(spec):
            if isinstance(spec, dict):
                return {k: names(v) for k, v in spec.items()}
            if isinstance(spec, (list, tuple)):
                return [names(v) for v in spec]
            if isinstance(spec, str) or spec is None:
                return spec
            # objects keep their arguments (from_logits=, k=...): a name alone would reload defaults
            if isinstance(spec, losses_mod.Loss):
                return spec.get_config()
            if isinstance(spec, metrics_mod.Metric):
                return {"class_name": type(spec).__name__, "config": spec.get_config()}
            return getattr(spec, "name", None) or getattr(spec, "__name__", repr(spec))

        cfg = {
            "loss": self.loss.get_config() if self.loss is not None and not self.outputs[1:] else names(self.loss_spec),
            "optimizer": self.optimizer.get_config(),
            "metrics": names(self.metric_specs),
            "precision": self.precision,
        }
        if self.loss_weights is not None:
            cfg["loss_weights"] = self.loss_weights
        if self.weighted_metric_specs is not None:
            cfg["weighted_metrics"] = names(self.weighted_metric_specs)
        return cfg

    # Keras's attribute names, for model.loss / model.metrics / model.compiled_metrics
    def __post_init__(self):
        self.loss_tracker = Mean("loss")
        self.compile_metrics = CompileMetrics(self)


def resolve_device(device) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but CUDA is not available on this machine")
    return device


def compile_model(model, optimizer="rmsprop", loss=None, metrics=None, device="auto", precision="fp32",
                  loss_weights=None, weighted_metrics=None, run_eagerly=False, jit_compile="auto",
                  steps_per_execution=1, **kwargs):
    if kwargs:
        raise TypeError(f"compile() got unexpected argument(s): {', '.join(sorted(kwargs))}")
    if loss is None:
        raise ValueError(f"compile() needs a loss; expected one of {', '.join(losses_mod.names())} or a callable")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if jit_compile not in ("auto", False, None):
        # Keras's "auto" is eager on its PyTorch backend; True would mean torch.compile.
        raise ValueError(f"compile(): jit_compile={jit_compile!r} is not supported (rnnkit runs eagerly; "
                         f"jit_compile='auto' or False)")
    if isinstance(steps_per_execution, bool) or steps_per_execution != 1:
        raise ValueError(f"compile(): steps_per_execution={steps_per_execution!r} is not supported "
                         f"(rnnkit runs one batch per step; leave it 1)")
    if not isinstance(run_eagerly, bool):
        raise ValueError(f"compile(): run_eagerly must be True or False, got {run_eagerly!r}")
    target = resolve_device(device)
    model.to(target)
    opt = optimizers_mod.get(optimizer)
    single = loss if not isinstance(loss, (list, tuple, dict)) or _is_loss_config(loss) else None
    model.compiled = CompiledState(
        loss=losses_mod.get(single) if single is not None else None, optimizer=opt, loss_spec=loss,
        loss_weights=_check_weights(loss_weights), metric_specs=metrics if metrics is not None else [],
        weighted_metric_specs=weighted_metrics, precision=precision, run_eagerly=run_eagerly)
    if model.built:
        build_training_state(model)


def _is_loss_config(loss) -> bool:
    """A saved loss's config (``{"name": ..., "from_logits": ...}``), not a dict by output name."""
    return isinstance(loss, dict) and loss.get("name") in losses_mod.names() and set(loss) <= {"name", "from_logits"}


def _check_weights(weights):
    if weights is None:
        return None
    values = weights.values() if isinstance(weights, dict) else weights
    if not isinstance(weights, (list, tuple, dict)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"compile(): loss_weights must be a list or a dict of numbers, got {weights!r}")
    return list(weights) if isinstance(weights, tuple) else weights


def _per_output(spec, names, what, allow_missing=False):
    """``spec`` (one value for every output, a list in output order, or a dict by output name)
    as a list with one entry per output."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ValueError(f"compile(): {what} names {', '.join(map(repr, unknown))}, which the model has no "
                             f"output called; its outputs are {names}")
        missing = [n for n in names if n not in spec]
        if missing and not allow_missing:
            raise ValueError(f"compile(): the {what} dict has no entry for output(s) {missing}; expected keys "
                             f"{names} (give None for an output without one)")
        return [spec.get(n) for n in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ValueError(f"compile(): {what} has {len(spec)} entries but the model has {len(names)} outputs "
                             f"{names}")
        return list(spec)
    return [spec] * len(names)


def _metric_lists(spec, names, losses, out_shapes, what):
    """One list of metric objects per output, from ``metrics``/``weighted_metrics`` as Keras reads
    them: a flat list for a one-output model; for several outputs a list of lists or a dict."""
    if spec is None or (isinstance(spec, (list, tuple)) and not spec):
        return [[] for _ in names]
    if len(names) == 1:
        if isinstance(spec, dict):
            spec = spec.get(names[0], [])
        elif isinstance(spec, (list, tuple)) and len(spec) == 1 and isinstance(spec[0], (list, tuple)):
            spec = spec[0]
        per = [spec]
    elif isinstance(spec, dict):
        per = _per_output(spec, names, what, allow_missing=True)
    elif isinstance(spec, (list, tuple)) and all(isinstance(s, (list, tuple)) or s is None for s in spec):
        per = _per_output(list(spec), names, what)
    else:
        raise ValueError(f"compile(): {what} for a model with several outputs {names} must be a list with one "
                         f"list of metrics per output, or a dict {{output name: metrics}}; got {spec!r}")
    out = []
    for group, loss, shape in zip(per, losses, out_shapes):
        group = [] if group is None else ([group] if not isinstance(group, (list, tuple)) else list(group))
        out.append([metrics_mod.get(m, loss.name if loss is not None else None, shape) for m in group])
    return out


def resolve_outputs(model, names, out_shapes=None) -> None:
    """Resolve the compiled losses, weights and metrics for outputs ``names`` (flat order)."""
    state = model.compiled
    out_shapes = out_shapes or [None] * len(names)
    if state.loss is not None:
        losses = [state.loss] + [losses_mod.get(state.loss_spec) for _ in names[1:]]
    else:
        losses = [None if l is None else losses_mod.get(l) for l in _per_output(state.loss_spec, names, "loss")]
    if all(l is None for l in losses):
        raise ValueError("compile(): every output's loss is None; give at least one output a loss")
    weights = [None] * len(names) if state.loss_weights is None else [
        None if w is None else float(w) for w in _per_output(state.loss_weights, names, "loss_weights")]
    metrics = _metric_lists(state.metric_specs, names, losses, out_shapes, "metrics")
    weighted = _metric_lists(state.weighted_metric_specs, names, losses, out_shapes, "weighted_metrics")
    multi = sum(l is not None for l in losses) > 1
    state.outputs = [
        OutputSpec(name, loss, w, m, wm, Mean(f"{name}_loss") if multi and loss is not None else None)
        for name, loss, w, m, wm in zip(names, losses, weights, metrics, weighted)]
    if len(names) == 1:
        state.loss = losses[0]
        state.metrics = metrics[0]


def build_training_state(model, names=None, out_shapes=None) -> None:
    """Create the torch optimizer once the model's weights exist, and resolve the per-output
    losses and metrics once its outputs are known (``names``: from the model or a first batch)."""
    state = model.compiled
    if state.optimizer.torch_optimizer is None:
        state.optimizer.build(model.parameters())
        if state.pending_optimizer_state is not None:
            state.optimizer.torch_optimizer.load_state_dict(state.pending_optimizer_state)
            state.pending_optimizer_state = None
    if not state.outputs:
        if names is None:
            names, out_shapes = output_spec(model)
        if names is not None:
            resolve_outputs(model, names, out_shapes)
