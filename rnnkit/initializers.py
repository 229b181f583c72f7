"""Weight initializers with Keras's names and defaults.

Each initializer fills a tensor given in *Keras layout* (for a Dense kernel
``(input_dim, units)``; for a recurrent kernel ``(units, gates * units)``), so
fan-in and fan-out are computed exactly as Keras computes them.

Two forms, as in Keras: names (``"glorot_uniform"``, drawn from torch's global generator, so
``torch.manual_seed``/``keras.utils.set_random_seed`` make them reproducible) and classes
(``GlorotUniform(seed=1)``, ``Orthogonal(gain=2.0)`` ...) with ``get_config``/``from_config``.
As in Keras 3, an instance gives the same values at every call: one given ``seed`` uses it, one
without draws its seed once, when made, from torch's global generator. The values themselves
differ from Keras's (another random number generator); their distributions are Keras's.
"""
from __future__ import annotations

import math

import torch

from .ops import _dtype


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    # Keras: the last two axes are (fan_in, fan_out); leading axes are receptive field.
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, generator=None) -> torch.Tensor:
    fan_in, fan_out = _fans(tuple(shape))
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(shape).uniform_(-limit, limit, generator=generator)


def glorot_normal(shape, generator=None) -> torch.Tensor:
    fan_in, fan_out = _fans(tuple(shape))
    std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978  # truncated-normal correction
    return torch.nn.init.trunc_normal_(torch.empty(shape), 0.0, std, -2 * std, 2 * std, generator=generator)


def he_uniform(shape, generator=None) -> torch.Tensor:
    fan_in, _ = _fans(tuple(shape))
    limit = math.sqrt(6.0 / fan_in)
    return torch.empty(shape).uniform_(-limit, limit, generator=generator)


def orthogonal(shape, generator=None) -> torch.Tensor:
    """Orthogonal matrix of ``shape`` (rows orthonormal when rows <= cols), gain 1."""
    rows = math.prod(shape[:-1])
    cols = shape[-1]
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # make the decomposition unique, as Keras does
    if rows < cols:
        q = q.T
    return q.reshape(shape).contiguous()


def uniform(shape, generator=None) -> torch.Tensor:
    # Keras's "uniform" / RandomUniform defaults: [-0.05, 0.05].
    return torch.empty(shape).uniform_(-0.05, 0.05, generator=generator)


def zeros(shape, generator=None) -> torch.Tensor:
    return torch.zeros(shape)


def ones(shape, generator=None) -> torch.Tensor:
    return torch.ones(shape)


class Initializer:
    """Base class: ``init(shape, dtype=None)`` returns a new tensor of ``shape`` (float32 default)."""

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _dt(dtype) -> torch.dtype:
    return torch.float32 if dtype is None else _dtype(dtype)


class Constant(Initializer):
    """Every entry ``value`` (a number)."""

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return torch.full(tuple(shape), float(self.value), dtype=_dt(dtype))

    def get_config(self):
        return {"value": self.value}


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return torch.zeros(tuple(shape), dtype=_dt(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return torch.ones(tuple(shape), dtype=_dt(dtype))


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; rectangular ones get ``eye(rows, cols)``)."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(f"Identity initializer: only 2-D shapes have an identity; got shape {tuple(shape)}")
        return (float(self.gain) * torch.eye(*shape)).to(_dt(dtype))

    def get_config(self):
        # Keras 3.15 writes {} and so loses a non-default gain; rnnkit keeps it.
        return {"gain": self.gain}


class _Random(Initializer):
    """Holds the seed: the given int, or one drawn now from torch's global generator."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{type(self).__name__}: seed must be an int or None, got {seed!r}")
        self.seed = seed
        self._seed = int(torch.randint(0, 2**62, ()).item()) if seed is None else seed

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self._seed)

    def get_config(self):
        return {"seed": self.seed}


def _truncated(shape, mean, std, generator) -> torch.Tensor:
    # Keras truncates at two standard deviations (of the untruncated normal).
    return torch.nn.init.trunc_normal_(torch.empty(tuple(shape)), mean, std, mean - 2 * std, mean + 2 * std,
                                       generator=generator)


class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        out = torch.empty(tuple(shape)).normal_(float(self.mean), float(self.stddev), generator=self._generator())
        return out.to(_dt(dtype))

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    """Normal(mean, stddev) redrawn outside two ``stddev`` of the mean."""

    def __call__(self, shape, dtype=None):
        return _truncated(shape, float(self.mean), float(self.stddev), self._generator()).to(_dt(dtype))


class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        out = torch.empty(tuple(shape)).uniform_(float(self.minval), float(self.maxval), generator=self._generator())
        return out.to(_dt(dtype))

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(_Random):
    """Variance ``scale / n`` with ``n`` the fan given by ``mode`` (``"fan_in"``, ``"fan_out"``,
    ``"fan_avg"``), drawn from ``distribution``: ``"truncated_normal"`` (std corrected for the
    truncation at two std), ``"untruncated_normal"`` or ``"uniform"`` (limit ``sqrt(3 scale / n)``).
    ``input_axes``/``output_axes`` name the axes whose sizes multiply into the fans (default: the
    last two axes, times the receptive field of the others)."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        super().__init__(seed)
        name = type(self).__name__
        if scale <= 0:
            raise ValueError(f"{name}: scale must be positive, got {scale!r}")
        if mode not in self._MODES:
            raise ValueError(f"{name}: mode must be one of {', '.join(self._MODES)}, got {mode!r}")
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"{name}: distribution must be one of {', '.join(self._DISTRIBUTIONS)}, "
                             f"got {distribution!r}")
        if (input_axes is None) != (output_axes is None):
            raise ValueError(f"{name}: give both input_axes and output_axes, or neither")
        self.scale, self.mode = scale, mode
        self.distribution = "truncated_normal" if distribution == "normal" else distribution
        self.input_axes, self.output_axes = input_axes, output_axes

    def _fans(self, shape):
        if self.input_axes is None:
            return _fans(tuple(shape))
        return (math.prod(shape[a] for a in self.input_axes), math.prod(shape[a] for a in self.output_axes))

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = self._fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = float(self.scale) / max(1.0, n)
        g = self._generator()
        if self.distribution == "truncated_normal":
            out = _truncated(shape, 0.0, math.sqrt(variance) / 0.87962566103423978, g)
        elif self.distribution == "untruncated_normal":
            out = torch.empty(tuple(shape)).normal_(0.0, math.sqrt(variance), generator=g)
        else:
            limit = math.sqrt(3.0 * variance)
            out = torch.empty(tuple(shape)).uniform_(-limit, limit, generator=g)
        return out.to(_dt(dtype))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes, "output_axes": self.output_axes}



def _preset(class_name, scale, mode, distribution, doc):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    return type(class_name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc,
                                                 "__module__": __name__})


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform", "U(-l, l), l = sqrt(6 / (fan_in + fan_out)).")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                       "Truncated normal, std sqrt(2 / (fan_in + fan_out)).")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform", "U(-l, l), l = sqrt(6 / fan_in).")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal", "Truncated normal, std sqrt(2 / fan_in).")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform", "U(-l, l), l = sqrt(3 / fan_in).")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal", "Truncated normal, std sqrt(1 / fan_in).")


class Orthogonal(_Random):
    """``gain`` times a random orthogonal matrix (of the shape flattened to ``(prod(shape[:-1]),
    shape[-1])``): orthonormal rows when rows <= columns, else orthonormal columns."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializer: the shape must have at least 2 axes, got {tuple(shape)}")
        return (float(self.gain) * orthogonal(tuple(shape), generator=self._generator())).to(_dt(dtype))

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


_INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "orthogonal": orthogonal,
    "uniform": uniform,
    "random_uniform": uniform,
    "zeros": zeros,
    "ones": ones,
}
_CLASSES = {cls.__name__: cls for cls in (
    Constant, Zeros, Ones, Identity, RandomNormal, TruncatedNormal, RandomUniform, VarianceScaling,
    GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal)}
# Keras's names of the classes (and its aliases) that have no function form above.
_NAMED_CLASSES = {
    "he_normal": HeNormal, "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "random_normal": RandomNormal, "normal": RandomNormal, "truncated_normal": TruncatedNormal,
    "identity": Identity, "variance_scaling": VarianceScaling, "constant": Constant,
}
_CLASS_ALIASES = {"IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal}


def get(identifier):
    """An initializer from a Keras name, a serialized dict, an instance or a class, or a callable
    ``fn(shape) -> tensor``."""
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):  # Keras serialised form
        name = identifier.get("class_name")
        cls = _CLASSES.get(name) or _CLASS_ALIASES.get(name)
        if cls is None:
            from .saving.objects import get_registered_object

            cls = get_registered_object(identifier.get("registered_name") or name)
        if cls is None:
            raise ValueError(f"unknown initializer class {name!r}; expected one of {', '.join(sorted(_CLASSES))}")
        return cls.from_config(dict(identifier.get("config") or {}))
    if str(identifier) in _NAMED_CLASSES:
        init = _NAMED_CLASSES[str(identifier)]()
        init._keras_name = str(identifier)
        return init
    fn = _INITIALIZERS.get(str(identifier))
    if fn is None:
        names = sorted(set(_INITIALIZERS) | set(_NAMED_CLASSES))
        raise ValueError(f"unknown initializer {identifier!r}; expected one of {', '.join(names)}")
    return fn


def serialize(identifier):
    """The Keras config form: the name a layer was given, else Keras's dict for an instance."""
    if isinstance(identifier, str):
        get(identifier)
        return identifier
    if isinstance(identifier, Initializer):
        if getattr(identifier, "_keras_name", None):
            return identifier._keras_name
        from .saving.objects import registered_name

        cls = type(identifier)
        builtin = _CLASSES.get(cls.__name__) is cls
        return {"module": "keras.initializers" if builtin else None, "class_name": cls.__name__,
                "config": identifier.get_config(), "registered_name": None if builtin else registered_name(cls)}
    for name, fn in _INITIALIZERS.items():
        if fn is identifier:
            return name
    raise ValueError(f"initializer {identifier!r} has no Keras name, so it cannot be saved")


deserialize = get
