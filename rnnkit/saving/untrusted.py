"""The loading policy for model files, which may come from anyone.

A model file is data, never code (nothing is unpickled or imported from it), but data can still
lie: declare a shape its bytes do not hold, expand a thousandfold when decompressed, point an HDF5
dataset at another local file, or nest a config until the parser gives up. The loaders
(``native``, ``keras_format``) call this module at the points where they open a file:

- ``reading(path)`` wraps a whole load: every failure inside comes out as one ``ModelFileError``
  (one line, naming the file), and while it is active an *allocation budget* is enforced: PyTorch
  factory calls (``torch.empty``, ``zeros``, ``randn``, ``*_like``, ``new_*``, ``repeat`` ...) are
  checked before they run against the tensor bytes the file was verified to hold
  (``BUDGET_FACTOR`` times those, plus ``BUDGET_SLACK``). So a config of a few hundred bytes that
  says ``Dense(units=10**9)`` is refused before the kernel is allocated.
- ``check_declared_tensors`` / ``check_tensor_bytes``: declared tensor counts and shapes against the
  limits and against the bytes present (a generic helper for any safetensors-like format).
- ``check_config``: layer widths and vocabularies a config declares, against the limits.
- ``read_member``: a zip member's declared size and compression ratio, before it is decompressed.
- ``check_hdf5``: soft and external links, external storage, virtual datasets, unknown filters and
  non-numeric datasets are refused; the datasets' logical size is checked against the bytes stored
  (a sparse dataset of fill values holds none), before any dataset is read.

Limits (``Limits``; the defaults admit any model an RNN library is likely to meet) are raised for a
genuinely larger model with environment variables, read at each load: ``RNNKIT_MAX_PARAMETERS``,
``RNNKIT_MAX_VOCABULARY``, ``RNNKIT_MAX_WIDTH``, ``RNNKIT_MAX_ARCHIVE_BYTES``,
``RNNKIT_MAX_COMPRESSION_RATIO``, ``RNNKIT_MAX_CONFIG_BYTES``. Every refusal names the variable
that lifts it. Files of old formats that carry no checksum load only with ``RNNKIT_ALLOW_UNCHECKED=1``.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from dataclasses import dataclass, fields
from typing import Iterator

import torch
from torch.overrides import TorchFunctionMode


class ModelFileError(ValueError):
    """A model file is missing, corrupt, truncated, hostile or not an rnnkit/Keras model."""


@dataclass(frozen=True)
class Limits:
    """What a model file may declare. ``parameters``: elements of the weight tensors a file holds
    (optimizer state not counted); ``vocabulary``: an Embedding's ``input_dim``; ``width``: a
    layer's ``units``/``filters``/``output_dim``/``key_dim``/``value_dim``/``num_heads``;
    ``archive_bytes``: decompressed bytes read from a ``.keras`` zip; ``compression_ratio``:
    decompressed over stored bytes, for a zip member or the datasets of an HDF5 file, above
    ``EXPANSION_FLOOR``; ``config_bytes``: the JSON model config."""

    parameters: int = 1_000_000_000
    vocabulary: int = 16_777_216
    width: int = 1_048_576
    archive_bytes: int = 16 * 2**30
    compression_ratio: int = 100
    config_bytes: int = 16 * 2**20


ENV = {f.name: f"RNNKIT_MAX_{f.name.upper()}" for f in fields(Limits)}
ALLOW_UNCHECKED_ENV = "RNNKIT_ALLOW_UNCHECKED"
# Below this many bytes a high compression ratio is harmless (and common: zero biases, configs).
EXPANSION_FLOOR = 16 * 2**20
BUDGET_FACTOR = 8  # a layer's initializer and float16 -> float32 casts allocate a few times its weights
BUDGET_SLACK = 64 * 2**20  # bytes any model may allocate while it is built: probes, buffers, states


def limits() -> Limits:
    """The limits in force: the defaults, each replaced by its environment variable when set."""
    values = {}
    for name, var in ENV.items():
        raw = os.environ.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            value = int(float(raw)) if re.fullmatch(r"\s*[0-9.eE+_]+\s*", raw) else None
        except (ValueError, OverflowError):
            value = None
        if value is None or value <= 0:
            raise ValueError(f"{var}={raw!r}: expected a positive whole number (such as 5e9)")
        values[name] = value
    return Limits(**values)


def allow_unchecked() -> bool:
    """Whether files of formats without a checksum may be read (``RNNKIT_ALLOW_UNCHECKED=1``)."""
    raw = os.environ.get(ALLOW_UNCHECKED_ENV, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"{ALLOW_UNCHECKED_ENV}={raw!r}: expected 1 or 0")


def one_line(text: str, max_chars: int = 300) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``max_chars``."""
    text = " ".join(str(text).split())
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def over_limit(path, what: str, value: int, limit: str) -> None:
    """Refuse ``value`` (what the file declares) when it is over the limit named ``limit``."""
    allowed = getattr(limits(), limit)
    if value > allowed:
        raise ModelFileError(
            f"{path}: {what} is {value:,}, over the limit of {allowed:,} for untrusted model files "
            f"(set {ENV[limit]} to load a genuinely larger model)"
        )


# ------------------------------------------------------------------ declared sizes
def check_tensor_bytes(path, name: str, shape, itemsize: int, available: int) -> int:
    """Refuse a tensor ``name`` declared with ``shape`` of ``itemsize``-byte elements when it needs
    more than ``available`` bytes (what the file holds for it); returns its byte count."""
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ModelFileError(f"{path}: tensor {name!r} has an invalid shape {list(shape)!r}")
    nbytes = math.prod(shape) * itemsize
    if nbytes > available:
        raise ModelFileError(
            f"{path}: tensor {name!r} declares shape {tuple(shape)} ({nbytes:,} bytes) but the file holds "
            f"{available:,} bytes for it"
        )
    return nbytes


def check_declared_tensors(path, shapes: dict[str, tuple[int, ...]], weights: set[str] | None = None) -> int:
    """Refuse a file whose weight tensors (``weights``, default all of ``shapes``) hold more elements
    than the parameters limit; returns that element count."""
    names = shapes if weights is None else weights
    count = sum(math.prod(shapes[n]) for n in names)
    over_limit(path, "the number of weights it holds", count, "parameters")
    return count


_WIDTH_KEYS = ("units", "filters", "output_dim", "key_dim", "value_dim", "num_heads")
_VOCABULARY_KEYS = ("input_dim",)
_MAX_CONFIG_DEPTH = 64  # far deeper than any real model (wrappers of wrappers of cells)


def check_config(path, config, _depth: int = 0) -> None:
    """Refuse a model config (any JSON) nested deeper than 64 levels, or declaring a layer width
    or vocabulary over the limits; walks every dict and list in it."""
    if _depth > _MAX_CONFIG_DEPTH:
        raise ModelFileError(f"{path}: the model config is nested deeper than {_MAX_CONFIG_DEPTH} levels")
    if isinstance(config, dict):
        for key, value in config.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                if key in _WIDTH_KEYS:
                    over_limit(path, f"{key} in its config", int(value), "width")
                elif key in _VOCABULARY_KEYS:
                    over_limit(path, f"{key} (a vocabulary size) in its config", int(value), "vocabulary")
            check_config(path, value, _depth + 1)
    elif isinstance(config, list):
        for value in config:
            check_config(path, value, _depth + 1)


def check_config_bytes(path, size: int) -> None:
    """Refuse a JSON config of ``size`` bytes over the config limit, before it is parsed."""
    over_limit(path, "the size of its JSON config in bytes", size, "config_bytes")


def load_config(raw, path):
    """A JSON model config (``bytes`` or ``str``) parsed, once its size was checked, and then
    checked by ``check_config``."""
    import json

    check_config_bytes(path, len(raw))
    try:
        config = json.loads(raw if isinstance(raw, str) else bytes(raw).decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: its model config is not JSON ({one_line(exc)})") from None
    check_config(path, config)
    return config


def check_expansion(path, what: str, expanded: int, stored: int) -> None:
    """Refuse ``expanded`` bytes made from ``stored`` bytes when over the compression ratio limit
    (sizes under ``EXPANSION_FLOOR`` always pass)."""
    ratio = limits().compression_ratio
    if expanded > max(EXPANSION_FLOOR, ratio * stored):
        raise ModelFileError(
            f"{path}: {what} would expand to {expanded:,} bytes from {stored:,} stored, more than "
            f"{ratio}x (set {ENV['compression_ratio']} to load a genuinely compressible model)"
        )


# ---------------------------------------------------------------------- zip archives
def read_member(zf, name: str, path, budget: list | None = None) -> bytes:
    """The bytes of member ``name`` of the open ``zipfile.ZipFile`` ``zf``, once its declared size
    was checked against the archive limit (adding to ``budget[0]``, the bytes read from this archive
    so far) and its compression ratio; zipfile stops at the declared size, so it bounds memory."""
    info = zf.getinfo(name)
    total = info.file_size + (budget[0] if budget else 0)
    over_limit(path, f"the decompressed size of its archive (reading {name})", total, "archive_bytes")
    if name.endswith(".json"):
        check_config_bytes(path, info.file_size)
    check_expansion(path, f"archive member {name}", info.file_size, info.compress_size)
    if budget:
        budget[0] = total
    return zf.read(name)


# ---------------------------------------------------------------------------- HDF5
_H5_FILTERS = {1, 2, 3, 4, 5, 6, 32000}  # deflate, shuffle, fletcher32, szip, nbit, scaleoffset, lzf
_OPTIMIZER_GROUPS = ("optimizer", "optimizer_weights")


def check_hdf5(h5, path) -> None:
    """Refuse an open ``h5py.File`` that reaches outside its own bytes or declares datasets its
    bytes do not hold. Walks every link once, before any dataset is read, and grants the datasets'
    bytes to the active allocation budget."""
    import h5py

    logical = stored = weights = 0

    def visit(name: str, link) -> str | None:
        """Why ``name`` is refused (which stops the walk: h5py's visit must not raise), or None."""
        nonlocal logical, stored, weights
        if not isinstance(link, h5py.HardLink):
            kind = {h5py.SoftLink: "soft", h5py.ExternalLink: "external"}.get(type(link), "user-defined")
            return f"HDF5 {kind} link /{name} refused (a model file is read from its own bytes only)"
        obj = h5[name]
        if not isinstance(obj, h5py.Dataset):
            return None
        if obj.is_virtual:
            return f"HDF5 virtual dataset /{name} refused (its data lives in other files)"
        dcpl = obj.id.get_create_plist()
        if dcpl.get_external_count() > 0:
            return f"HDF5 dataset /{name} with external storage refused (its data lives in another file)"
        for i in range(dcpl.get_nfilters()):
            code = dcpl.get_filter(i)[0]
            if code not in _H5_FILTERS:
                return f"HDF5 dataset /{name} uses filter {code}, which rnnkit does not read"
        if obj.dtype.kind not in "fiub":
            return f"HDF5 dataset /{name} holds {obj.dtype} values, not numbers"
        logical += obj.size * obj.dtype.itemsize
        stored += obj.id.get_storage_size()
        if name.split("/", 1)[0] not in _OPTIMIZER_GROUPS:
            weights += obj.size
        return None

    problem = h5.visititems_links(visit)
    if problem is not None:
        raise ModelFileError(f"{path}: {problem}")
    check_expansion(path, "its HDF5 datasets", logical, stored)
    over_limit(path, "the number of weights it holds", weights, "parameters")
    grant(logical)


def check_hdf5_bytes(data: bytes, path) -> None:
    """``check_hdf5`` for an HDF5 file held in memory (the weights of a ``.keras`` archive)."""
    import io

    import h5py

    try:
        h5 = h5py.File(io.BytesIO(data), "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: its weights are not a readable HDF5 file ({one_line(exc)})") from None
    with h5:
        check_hdf5(h5, path)


# ------------------------------------------------------------------ allocation budget
class BudgetExceeded(ModelFileError):
    """A model being loaded asked for more memory than its file can justify."""


_ACTIVE = threading.local()


def grant(nbytes: int) -> None:
    """Let the model being loaded allocate ``BUDGET_FACTOR * nbytes`` more bytes (the file was
    verified to hold ``nbytes`` bytes of tensors); nothing when no load is active."""
    budget = getattr(_ACTIVE, "budget", None)
    if budget is not None:
        budget.allowed += BUDGET_FACTOR * nbytes


def _size(args) -> list:
    """A size given as ``f(2, 3)``, ``f((2, 3))`` or ``f(torch.Size(...))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return list(args[0])
    return list(args)


def _numel(size) -> int:
    dims = [int(d) for d in size]
    return 0 if any(d <= 0 for d in dims) else math.prod(dims)


def _itemsize(kwargs, default: torch.dtype | None = None) -> int:
    dtype = kwargs.get("dtype") or default or torch.get_default_dtype()
    return dtype.itemsize if isinstance(dtype, torch.dtype) else 8


def _requested(func, args, kwargs) -> int | None:
    """Bytes a factory call ``func(*args, **kwargs)`` will allocate, or None for other functions."""
    name = getattr(func, "__name__", "")
    if func in (torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn):
        return _numel(_size(kwargs.get("size", args))) * _itemsize(kwargs)
    if func in (torch.full, torch.empty_strided):
        return _numel(_size(args[:1] or [kwargs.get("size", ())])) * _itemsize(kwargs)
    if func is torch.randint:
        return _numel(_size(kwargs.get("size", args[-1:]))) * 8
    if func is torch.normal and ("size" in kwargs or len(args) >= 3):
        return _numel(_size(kwargs.get("size", args[2:3]))) * _itemsize(kwargs)
    if func is torch.eye:
        n = int(args[0]) if args else int(kwargs.get("n", 0))
        m = int(args[1]) if len(args) > 1 and isinstance(args[1], int) else int(kwargs.get("m", n))
        return max(n, 0) * max(m, 0) * _itemsize(kwargs)
    if func in (torch.linspace, torch.logspace):
        return max(int(args[2] if len(args) > 2 else kwargs.get("steps", 0)), 0) * _itemsize(kwargs)
    if func is torch.arange:
        start, end, step = (0, args[0], 1) if len(args) == 1 else (tuple(args) + (1,))[:3]
        return max(math.ceil((float(end) - float(start)) / float(step)), 0) * 8
    if name.endswith("_like") and args and isinstance(args[0], torch.Tensor):
        return args[0].numel() * _itemsize(kwargs, args[0].dtype)
    if name in ("new_empty", "new_zeros", "new_ones", "new_full") and args and isinstance(args[0], torch.Tensor):
        return _numel(_size(args[1:2] if name == "new_full" else args[1:] or [kwargs.get("size", ())])) * \
            _itemsize(kwargs, args[0].dtype)
    if name in ("repeat", "resize_", "expand_copy") and args and isinstance(args[0], torch.Tensor):
        shape = _size(args[1:])
        if name == "repeat":
            return args[0].numel() * _numel(shape) * args[0].element_size()
        return _numel(shape) * args[0].element_size()
    return None


class _AllocationBudget(TorchFunctionMode):
    """Refuses PyTorch factory calls once the bytes they ask for, summed, pass ``allowed``."""

    def __init__(self, path):
        super().__init__()
        self.path, self.allowed, self.used, self.refused = path, BUDGET_SLACK, 0, None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            nbytes = _requested(func, args, kwargs)
        except (TypeError, ValueError, OverflowError, IndexError):
            nbytes = None  # an unusual signature: the call itself says what is wrong with it
        if nbytes is not None:
            self.used += nbytes
            if self.used > self.allowed:
                self.refused = BudgetExceeded(
                    f"{self.path}: building its model would allocate more than {self.allowed:,} bytes "
                    f"({BUDGET_FACTOR}x the {max(self.allowed - BUDGET_SLACK, 0) // BUDGET_FACTOR:,} bytes of "
                    f"tensors the file holds, plus {BUDGET_SLACK // 2**20} MiB): its config declares "
                    f"weights its file does not contain"
                )
                raise self.refused
        return func(*args, **kwargs)


@contextlib.contextmanager
def reading(path, what: str = "model file") -> Iterator[None]:
    """Load a model file inside: every failure comes out as one one-line ``ModelFileError`` naming
    ``path``, and PyTorch allocations are held to the budget the file's bytes justify."""
    limits(), allow_unchecked()  # a bad environment variable is the caller's error, said before the file's
    outer = getattr(_ACTIVE, "budget", None)
    if outer is not None:  # a nested load (a loader calling another): the outer one decides
        yield
        return
    budget = _AllocationBudget(path)
    _ACTIVE.budget = budget
    try:
        with budget:
            yield
    except BudgetExceeded:
        raise
    except ModelFileError as exc:
        if budget.refused is not None:
            raise budget.refused from None
        if "\n" in str(exc):
            raise ModelFileError(one_line(str(exc))) from exc
        raise
    except Exception as exc:  # RecursionError, KeyError ... from a crafted file reaching code that trusted it
        if budget.refused is not None:  # a layer caught the refusal and raised its own error
            raise budget.refused from None
        raise ModelFileError(
            one_line(f"{path}: unreadable {what} ({type(exc).__name__}: {exc})")
        ) from exc
    finally:
        _ACTIVE.budget = None
