"""What ``Model.compile`` records: loss, metrics, optimizer and device."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod


@dataclass
class CompiledState:
    loss: losses_mod.Loss
    optimizer: optimizers_mod.Optimizer
    metric_specs: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    pending_optimizer_state: dict | None = None
    precision: str = "fp32"

    def get_config(self) -> dict:
        return {
            "loss": self.loss.get_config() if self.loss is not None else None,
            "optimizer": self.optimizer.get_config(),
            "metrics": [m if isinstance(m, str) else m.name for m in self.metric_specs],
            "precision": self.precision,
        }


def resolve_device(device) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but CUDA is not available on this machine")
    return device


def compile_model(model, optimizer="rmsprop", loss=None, metrics=None, device="auto", precision="fp32", **kwargs):
    unsupported = set(kwargs) - {"loss_weights", "weighted_metrics", "run_eagerly", "jit_compile", "steps_per_execution"}
    if unsupported:
        raise TypeError(f"compile() got unexpected argument(s): {', '.join(sorted(unsupported))}")
    if loss is None:
        raise ValueError(f"compile() needs a loss; expected one of {', '.join(losses_mod.names())} or a callable")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    target = resolve_device(device)
    model.to(target)
    loss_obj = losses_mod.get(loss)
    opt = optimizers_mod.get(optimizer)
    specs = list(metrics or [])
    model.compiled = CompiledState(loss=loss_obj, optimizer=opt, metric_specs=specs, precision=precision)
    if model.built:
        build_training_state(model)


def build_training_state(model) -> None:
    """Create the torch optimizer and metric objects once the model's weights exist."""
    state = model.compiled
    if state.optimizer.torch_optimizer is None:
        state.optimizer.build(model.parameters())
        if state.pending_optimizer_state is not None:
            state.optimizer.torch_optimizer.load_state_dict(state.pending_optimizer_state)
            state.pending_optimizer_state = None
    if not state.metrics and state.metric_specs:
        out_shape = model.output_shape if model.built else None
        state.metrics = [metrics_mod.get(m, state.loss.name, out_shape) for m in state.metric_specs]
