"""Data adapters behind ``fit`` / ``evaluate`` / ``predict``: what Keras 3 accepts as ``x``.

Every adapter yields batches as ``(x, y, sample_weight)`` tuples of tensors on the model's
device (``y``/``sample_weight`` None when absent), ``x`` and ``y`` being a tensor, a list of
tensors or a dict of them (multi-input / multi-output models). The kinds:

- arrays (NumPy arrays, tensors, and lists/tuples/dicts of them): `ArrayData`, cut into
  ``batch_size`` batches by index, shuffled each epoch;
- `PyDataset` (``keras.utils.PyDataset`` / ``keras.utils.Sequence``): one batch per index;
  ``fit(shuffle=True)`` shuffles the order of the batches, as Keras does;
- a Python generator: consumed, never restarted (Keras's rule);
- any other re-iterable (a ``torch.utils.data.DataLoader``, a list of batches...): iterated
  afresh each epoch.
"""
from __future__ import annotations

import random
import types

import numpy as np
import torch

from ..layers.base import as_tensor


class PyDataset:
    """Base of datasets that give one batch per index, as ``keras.utils.PyDataset``.

    Subclasses implement ``__getitem__(index)`` (a batch: ``x``, ``(x,)``, ``(x, y)`` or
    ``(x, y, sample_weight)``) and ``__len__`` (the number of batches), or a ``num_batches``
    property (None for an endless dataset). ``on_epoch_begin``/``on_epoch_end`` run around
    each epoch. Batches are made in the training process: ``workers`` must stay 1,
    ``use_multiprocessing`` False and ``max_queue_size`` 10 (Keras's defaults).
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        if workers != 1:
            raise ValueError(f"PyDataset: workers={workers!r} is not supported (batches are made in the "
                             f"training process; leave workers=1)")
        if use_multiprocessing:
            raise ValueError("PyDataset: use_multiprocessing=True is not supported (batches are made in the "
                             "training process)")
        if max_queue_size != 10:
            raise ValueError(f"PyDataset: max_queue_size={max_queue_size!r} is not supported (there is no "
                             f"queue: batches are made in the training process)")
        self._workers, self._use_multiprocessing, self._max_queue_size = workers, use_multiprocessing, max_queue_size

    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    @property
    def num_batches(self):
        """The number of batches (``len(self)``), or None for an endless dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ or a num_batches property")

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


Sequence = PyDataset  # keras.utils.Sequence is the same class in Keras 3


def unpack(data, what="a batch"):
    """``(x, y, sample_weight)`` from ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``
    (``keras.utils.unpack_x_y_sample_weight``)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) in (1, 2, 3):
        return tuple(data) + (None,) * (3 - len(data))
    raise ValueError(f"{what} must be x, (x,), (x, y) or (x, y, sample_weight); got a tuple of {len(data)} items")


def is_structure(data) -> bool:
    """Whether ``data`` is several arrays (a list/tuple/dict of arrays), not one array."""
    if isinstance(data, dict):
        return True
    return isinstance(data, (list, tuple)) and len(data) > 0 and all(
        isinstance(v, (np.ndarray, torch.Tensor, list, tuple, dict)) for v in data) and any(
        isinstance(v, (np.ndarray, torch.Tensor, dict)) for v in data)


def to_tensors(data, device, what, cast_ints=False):
    """``data`` (an array or a list/tuple/dict of arrays) as tensors on ``device``; with
    ``cast_ints``, boolean and integer arrays become float32 (inputs of a model whose input
    layer is not an Embedding, as Keras's float32 Input casts them)."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: to_tensors(v, device, f"{what}[{k!r}]", cast_ints) for k, v in data.items()}
    if is_structure(data):
        if any(isinstance(v, dict) for v in data) or any(isinstance(v, (list, tuple)) for v in data):
            raise ValueError(f"{what}: mixed structure (a list holding lists or dicts); give a list of "
                             f"arrays or a dict of arrays")
        return [to_tensors(v, device, f"{what}[{i}]", cast_ints) for i, v in enumerate(data)]
    try:
        t = as_tensor(data, device)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected an array, a list/tuple/dict of arrays, a generator, a PyDataset or "
                         f"a DataLoader; got {type(data).__name__} ({exc})") from None
    if cast_ints and not t.is_floating_point() and not t.is_complex():
        t = t.float()
    return t


def leaves(data) -> list:
    """The tensors of a structure, in order (dicts in key order)."""
    if data is None:
        return []
    if isinstance(data, dict):
        return [t for v in data.values() for t in leaves(v)]
    if isinstance(data, (list, tuple)):
        return [t for v in data for t in leaves(v)]
    return [data]


def take(data, idx):
    """The rows ``idx`` of every tensor of a structure."""
    if data is None:
        return None
    if isinstance(data, torch.Tensor):
        return data[idx]
    if isinstance(data, dict):
        return {k: take(v, idx) for k, v in data.items()}
    return [take(v, idx) for v in data]


def num_samples(x, y=None, sample_weight=None) -> int:
    """The common first dimension of the arrays of ``x`` and ``y``; ValueError naming the ones that
    differ (sample weights are checked against the targets they weigh, by the loop)."""
    sizes = {}
    for what, part in (("x", x), ("y", y)):
        for i, t in enumerate(leaves(part)):
            sizes[f"{what}" if not is_structure(part) else f"{what}[{i}]"] = len(t) if t.dim() else 0
    (first, n), *others = sizes.items()
    for name, count in others:
        if count != n:
            raise ValueError(f"{first} has {n} samples but {name} has {count}; they must have the same length")
    if n == 0:
        raise ValueError("x has no samples")
    return n


class ArrayData:
    """Arrays cut into batches by index: in order, or in a fresh permutation each epoch."""

    kind = "arrays"

    def __init__(self, x, y, sample_weight, batch_size, shuffle):
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.n = num_samples(x, y, sample_weight)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.num_batches = -(-self.n // batch_size)

    def split(self, cut):
        """The first ``cut`` samples and the rest, as two ``ArrayData`` (``validation_split``)."""
        head = slice(0, cut)
        tail = slice(cut, self.n)
        part = lambda idx, shuffle: ArrayData(take(self.x, idx), take(self.y, idx), take(self.sample_weight, idx),
                                              self.batch_size, shuffle)
        return part(head, self.shuffle), part(tail, False)

    def iterator(self, seed=None):
        order = None
        if self.shuffle:
            gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
            order = torch.randperm(self.n, generator=gen).to(leaves(self.x)[0].device)
        x, y, w, bs = self.x, self.y, self.sample_weight, self.batch_size
        for start in range(0, self.n, bs):
            idx = slice(start, min(start + bs, self.n)) if order is None else order[start : start + bs]
            yield take(x, idx), take(y, idx), take(w, idx)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class _BatchStream:
    """Batches from a generator, a `PyDataset` or a re-iterable, converted as they come."""

    def __init__(self, source, device, cast_ints, shuffle):
        self.source, self.device, self.cast_ints, self.shuffle = source, device, cast_ints, shuffle
        if isinstance(source, PyDataset):
            self.kind, self.num_batches = "PyDataset", source.num_batches
        elif isinstance(source, types.GeneratorType):
            self.kind, self.num_batches = "generator", None
        else:
            self.kind = "DataLoader" if isinstance(source, torch.utils.data.DataLoader) else "iterable"
            try:
                self.num_batches = len(source)
            except TypeError:
                self.num_batches = None

    def _raw(self):
        if self.kind == "generator":
            return self.source
        if self.kind == "PyDataset":
            if self.num_batches is None:
                return (self.source[i] for i in iter(int, 1))  # endless: 0, 1, 2, ...
            order = list(range(self.num_batches))
            if self.shuffle:
                random.shuffle(order)
            return (self.source[i] for i in order)
        return iter(self.source)

    def iterator(self, seed=None):
        for batch in self._raw():
            x, y, w = unpack(batch, f"a batch from the {self.kind}")
            yield (to_tensors(x, self.device, "x", self.cast_ints), to_tensors(y, self.device, "y"),
                   to_tensors(w, self.device, "sample_weight"))

    def on_epoch_begin(self):
        if self.kind == "PyDataset":
            self.source.on_epoch_begin()

    def on_epoch_end(self):
        if self.kind == "PyDataset":
            self.source.on_epoch_end()


def is_stream(x) -> bool:
    """Whether ``x`` is a generator, a `PyDataset` or another iterable of batches (not arrays)."""
    if isinstance(x, (PyDataset, types.GeneratorType, torch.utils.data.DataLoader)):
        return True
    return (hasattr(x, "__iter__") and not isinstance(x, (np.ndarray, torch.Tensor, list, tuple, dict, str, bytes)))


def adapt(x, y=None, sample_weight=None, batch_size=None, shuffle=False, device=None, cast_ints=False,
          what="x"):
    """The adapter for ``x`` (and ``y``/``sample_weight`` when ``x`` is arrays).

    ``batch_size`` defaults to 32 for arrays; with a generator, dataset or loader it must not be
    given (the batches are already made) and neither may ``y`` nor ``sample_weight`` (they belong
    in the batches)."""
    if is_stream(x):
        kind = type(x).__name__
        for arg, value in (("y", y), ("sample_weight", sample_weight), ("batch_size", batch_size)):
            if value is not None:
                raise ValueError(f"{what} is a {kind}, which yields its own batches: do not pass {arg}= "
                                 f"(make it part of the {kind}'s batches)")
        return _BatchStream(x, device, cast_ints, shuffle)
    if x is None:
        raise ValueError(f"{what} is missing")
    batch_size = 32 if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}")
    return ArrayData(to_tensors(x, device, "x", cast_ints), to_tensors(y, device, "y"),
                     to_tensors(sample_weight, device, "sample_weight"), int(batch_size), shuffle)
