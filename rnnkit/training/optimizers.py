"""Optimizers with Keras's names and defaults, running PyTorch's own implementations.

An ``Optimizer`` here is a small config object (as ``keras.optimizers.Adam(...)``)
that makes the ``torch.optim`` optimizer for a model's parameters at compile
time, choosing the fused (single-kernel) or multi-tensor implementation when
PyTorch offers it. Gradient clipping follows Keras: ``clipnorm`` clips each
gradient tensor to that norm separately, ``global_clipnorm`` clips all of them
together, ``clipvalue`` clips element-wise.
"""
from __future__ import annotations

import inspect
import math

import torch

from . import schedules


class Optimizer:
    """Keras 3's optimizer arguments, shared by every optimizer here.

    Args:
        learning_rate: a number, or a ``keras.optimizers.schedules`` schedule (evaluated at the
            update count before every update).
        weight_decay: decoupled weight decay, as Keras 3: before each update every weight is
            multiplied by ``1 - learning_rate * weight_decay``.
        clipnorm / clipvalue / global_clipnorm: gradient clipping (at most one of them).
        gradient_accumulation_steps: an int >= 2: gradients are summed over that many batches and
            their mean applied once (``iterations`` counts the updates applied).
        use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor: refused unless at their
            defaults (not implemented). ``decay`` (Keras 2) is refused, as Keras 3 drops it.
    """

    torch_class: type[torch.optim.Optimizer] = torch.optim.SGD
    name = "optimizer"
    _torch_weight_decay = False  # whether torch_class applies weight_decay itself (decoupled)

    def __init__(self, learning_rate: float = 0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, lr=None, **kwargs):
        cls = type(self).__name__
        if "decay" in kwargs:
            raise ValueError(f"{cls}: argument `decay` is no longer supported (Keras 3 dropped it); use a "
                             "keras.optimizers.schedules learning rate instead")
        if kwargs:
            raise ValueError(f"{cls}: argument(s) not recognized: {kwargs}")
        refused = {"use_ema": (use_ema, False), "ema_momentum": (ema_momentum, 0.99),
                   "ema_overwrite_frequency": (ema_overwrite_frequency, None),
                   "loss_scale_factor": (loss_scale_factor, None)}
        for arg, (value, default) in refused.items():
            if value != default:
                raise ValueError(f"{cls}: {arg}={value!r} is not supported (rnnkit has no weight averaging or "
                                 "loss scaling in its optimizers)")
        if name is not None and str(name).lower() != self.name.lower():
            raise ValueError(f"{cls}: name={name!r} is not supported; an optimizer's config names its class "
                             f"({self.name!r})")
        if lr is not None:  # Keras 2 spelling
            learning_rate = lr
        if isinstance(learning_rate, dict):  # a serialized schedule, from a saved config
            learning_rate = schedules.deserialize(learning_rate)
        self._schedule = learning_rate if isinstance(learning_rate, schedules.LearningRateSchedule) else None
        if self._schedule is None:
            if callable(learning_rate):
                raise ValueError(f"{cls}: learning_rate must be a number or a keras.optimizers.schedules "
                                 f"schedule, got {learning_rate!r}")
            if not 0 < float(learning_rate) < math.inf:
                raise ValueError(f"{cls}: learning_rate must be a finite number > 0, got {learning_rate!r}")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{cls}: set at most one of clipnorm, clipvalue and global_clipnorm "
                             f"(got clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm})")
        if weight_decay is not None and float(weight_decay) < 0:
            raise ValueError(f"{cls}: weight_decay must be >= 0, got {weight_decay!r}")
        if gradient_accumulation_steps is not None and (
                isinstance(gradient_accumulation_steps, bool) or not isinstance(gradient_accumulation_steps, int)
                or gradient_accumulation_steps < 2):
            raise ValueError(f"{cls}: gradient_accumulation_steps must be an integer >= 2, "
                             f"got {gradient_accumulation_steps!r}")
        self._lr = float(self._schedule(0)) if self._schedule is not None else float(learning_rate)
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self._accumulated: list[torch.Tensor] | None = None
        self._pending = 0  # batches summed into _accumulated
        self.torch_optimizer: torch.optim.Optimizer | None = None
        self.iterations = 0

    # --- what subclasses define
    def torch_kwargs(self) -> dict:
        return {}

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "learning_rate": schedules.serialize(self._schedule) if self._schedule is not None else self.learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    # --- learning rate, readable and settable while training (ReduceLROnPlateau)
    @property
    def learning_rate(self) -> float:
        if self._schedule is not None:  # the rate of the next update, as Keras reports it
            return float(self._schedule(self.iterations))
        if self.torch_optimizer is not None:
            return float(self.torch_optimizer.param_groups[0]["lr"])
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self._schedule is not None:
            raise TypeError(f"{type(self).__name__}: its learning_rate is a schedule "
                            f"({type(self._schedule).__name__}), so it cannot be set")
        self._set_lr(value)

    def _set_lr(self, value: float) -> None:
        self._lr = float(value)
        if self.torch_optimizer is not None:
            for group in self.torch_optimizer.param_groups:
                group["lr"] = self._lr

    lr = learning_rate

    def build(self, params) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable weights to optimize")
        kwargs = {"lr": self._lr, **self.torch_kwargs()}
        accepted = inspect.signature(self.torch_class.__init__).parameters
        on_cuda = params[0].is_cuda
        # The fused kernel does the whole update in one pass (CPU support since torch 2.4).
        if "fused" in accepted and all(p.dtype == torch.float32 for p in params):
            try:
                self.torch_optimizer = self.torch_class(params, fused=True, **kwargs)
                return self.torch_optimizer
            except (RuntimeError, ValueError):
                pass
        if "foreach" in accepted:
            kwargs["foreach"] = on_cuda or None
        self.torch_optimizer = self.torch_class(params, **kwargs)
        return self.torch_optimizer

    def clip(self, params) -> None:
        if self.clipvalue is None and self.clipnorm is None and self.global_clipnorm is None:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        if self.clipvalue is not None:
            torch._foreach_clamp_min_(grads, -float(self.clipvalue))
            torch._foreach_clamp_max_(grads, float(self.clipvalue))
        if self.clipnorm is not None:
            norms = torch._foreach_norm(grads)
            scales = [torch.clamp(float(self.clipnorm) / (n + 1e-12), max=1.0) for n in norms]
            torch._foreach_mul_(grads, scales)
        if self.global_clipnorm is not None:
            torch.nn.utils.clip_grad_norm_(params, float(self.global_clipnorm))

    def _accumulate(self, params) -> bool:
        """Add this batch's gradients to the sums; True when they hold a full update (then the
        gradients are their mean and the sums start again)."""
        params = [p for p in params if p.grad is not None]
        if self._accumulated is None:
            self._accumulated = [torch.zeros_like(p) for p in params]
        torch._foreach_add_(self._accumulated, [p.grad for p in params])
        self._pending += 1
        if self._pending < self.gradient_accumulation_steps:
            return False
        for p, total in zip(params, self._accumulated):
            p.grad = total / self.gradient_accumulation_steps
        self._accumulated, self._pending = None, 0
        return True

    def _decay_weights(self, params) -> None:
        if self.weight_decay and not self._torch_weight_decay:
            with torch.no_grad():
                torch._foreach_mul_([p for p in params if p.grad is not None], 1.0 - self._lr * self.weight_decay)

    def step(self, params, scaler=None) -> None:
        """Clip (Keras's way), decay the weights, and apply one update (or, accumulating
        gradients, add this batch's); with a GradScaler (fp16), unscale first."""
        if self._schedule is not None:
            self._set_lr(self._schedule(self.iterations))
        if scaler is not None:
            if self.gradient_accumulation_steps:
                raise ValueError("gradient_accumulation_steps cannot be combined with fp16 loss scaling")
            scaler.unscale_(self.torch_optimizer)
            self.clip(params)
            self._decay_weights(params)
            scaler.step(self.torch_optimizer)
            scaler.update()
        else:
            if self.gradient_accumulation_steps and not self._accumulate(params):
                return
            self.clip(params)
            self._decay_weights(params)
            self.torch_optimizer.step()
        self.iterations += 1

    def apply(self, grads, trainable_variables=None) -> None:
        """One update from ``grads`` for ``trainable_variables`` (Keras's ``optimizer.apply``, as custom
        ``train_step`` code calls it): the gradients are set on the parameters, then `step` runs."""
        if trainable_variables is None:
            raise ValueError(f"{type(self).__name__}.apply: give the variables the gradients are for")
        params = list(trainable_variables)
        grads = list(grads)
        if len(grads) != len(params):
            raise ValueError(f"{type(self).__name__}.apply: {len(grads)} gradients for {len(params)} variables")
        if self.torch_optimizer is None:
            self.build(params)
        for p, g in zip(params, grads):
            if g is not p.grad:
                p.grad = None if g is None else torch.as_tensor(g, device=p.device, dtype=p.dtype)
        self.step(params)

    def apply_gradients(self, grads_and_vars) -> None:
        """``apply`` from ``[(gradient, variable), ...]`` (Keras's spelling)."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class SGD(Optimizer):
    torch_class = torch.optim.SGD
    name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= float(momentum) <= 1:
            raise ValueError(f"SGD: momentum must be a float in [0, 1], got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def torch_kwargs(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    torch_class = torch.optim.Adam
    name = "Adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), bool(amsgrad)

    def torch_kwargs(self):
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "amsgrad": self.amsgrad}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    torch_class = torch.optim.AdamW
    name = "AdamW"
    _torch_weight_decay = True  # torch's AdamW decays p by lr * weight_decay first, as Keras

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number (default 0.004), got None")
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)

    def torch_kwargs(self):
        return {**super().torch_kwargs(), "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    torch_class = torch.optim.RMSprop
    name = "RMSprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), bool(centered)

    def torch_kwargs(self):
        return {"alpha": self.rho, "momentum": self.momentum, "eps": self.epsilon, "centered": self.centered}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    torch_class = torch.optim.Adagrad
    name = "Adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)

    def torch_kwargs(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "eps": self.epsilon}

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class TorchOptimizer(Optimizer):
    """Wraps a ``torch.optim`` class (built for the model's parameters) or a ready instance."""

    name = "torch"

    def __init__(self, optimizer, **kwargs):
        self._given = optimizer
        lr = optimizer.param_groups[0]["lr"] if isinstance(optimizer, torch.optim.Optimizer) else kwargs.pop("learning_rate", 1e-3)
        super().__init__(lr, **kwargs)
        if self.weight_decay or self.gradient_accumulation_steps:
            raise ValueError("a torch.optim optimizer takes weight_decay in its own arguments, and "
                             "gradient_accumulation_steps is not supported with it")

    def build(self, params):
        if isinstance(self._given, torch.optim.Optimizer):
            self.torch_optimizer = self._given
        else:
            self.torch_optimizer = self._given([p for p in params if p.requires_grad], lr=self._lr)
        return self.torch_optimizer

    def get_config(self):
        raise ValueError("a model compiled with a raw torch.optim optimizer cannot save its optimizer config")


_OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier) -> Optimizer:
    """An Optimizer from a name, an instance, a config dict, or a torch.optim class/instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _OPTIMIZERS.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}; expected one of {', '.join(sorted(_OPTIMIZERS))}")
        return cls()
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        cls = _OPTIMIZERS[cfg.pop("name").lower()]
        return cls(**cfg)
    if isinstance(identifier, torch.optim.Optimizer) or (
        isinstance(identifier, type) and issubclass(identifier, torch.optim.Optimizer)
    ):
        return TorchOptimizer(identifier)
    raise ValueError(f"cannot interpret {identifier!r} as an optimizer")
