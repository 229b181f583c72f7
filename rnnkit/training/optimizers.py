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

import torch


class Optimizer:
    torch_class: type[torch.optim.Optimizer] = torch.optim.SGD
    name = "optimizer"

    def __init__(self, learning_rate: float = 0.001, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, lr=None, **kwargs):
        if lr is not None:  # Keras 2 spelling
            learning_rate = lr
        if float(learning_rate) <= 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be positive, got {learning_rate!r}")
        if sum(c is not None for c in (clipnorm, global_clipnorm)) > 1:
            raise ValueError("set at most one of clipnorm and global_clipnorm")
        self._lr = float(learning_rate)
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.torch_optimizer: torch.optim.Optimizer | None = None
        self.iterations = 0

    # --- what subclasses define
    def torch_kwargs(self) -> dict:
        return {}

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "learning_rate": self.learning_rate,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    # --- learning rate, readable and settable while training (ReduceLROnPlateau)
    @property
    def learning_rate(self) -> float:
        if self.torch_optimizer is not None:
            return float(self.torch_optimizer.param_groups[0]["lr"])
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
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

    def step(self, params, scaler=None) -> None:
        """Clip (Keras's way) and apply one update; with a GradScaler (fp16), unscale first."""
        if scaler is not None:
            scaler.unscale_(self.torch_optimizer)
            self.clip(params)
            scaler.step(self.torch_optimizer)
            scaler.update()
        else:
            self.clip(params)
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

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.weight_decay = float(weight_decay)

    def torch_kwargs(self):
        return {**super().torch_kwargs(), "weight_decay": self.weight_decay}

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}


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
