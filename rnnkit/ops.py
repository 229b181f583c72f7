"""``keras.ops`` on torch tensors: the operations custom recurrent code uses.

Each function has Keras 3's name, signature and semantics (NumPy's, for the NumPy-named ones:
``split``, ``take``, ``norm``, ``dot`` ...) and returns a torch tensor, so gradients flow through
it. Inputs may be torch tensors, NumPy arrays, lists or Python numbers.

Dtypes follow Keras's rules, not torch's: Python lists and numbers become ``int32`` /
``float32`` (``floatx``); NumPy arrays keep their dtype; Python numbers are *weak* (``int32 +
1.5`` is ``float32``, ``float16 * 2.0`` stays ``float16``); float functions (``tanh``, ``exp``,
``mean``, ``divide`` ...) turn integer input into ``float32``; integer ``sum``/``cumsum`` keep
``int32`` (bool and small ints become ``int32``); indices (``argmax``, ``argsort``, ``top_k``,
``where(cond)``) are ``int32``. Keras arguments that are not implemented are refused.
"""
from __future__ import annotations

import builtins

import numpy as np
import torch
import torch.nn.functional as F

_DTYPES = {
    "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
    "int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
    "uint8": torch.uint8, "bool": torch.bool, "float": torch.float32, "int": torch.int32,
    "half": torch.float16, "double": torch.float64,
}
_SMALL_INTS = (torch.bool, torch.int8, torch.int16, torch.uint8)


def _dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is float:
        return torch.float32
    if dtype is int:
        return torch.int32
    if dtype is bool:
        return torch.bool
    name = getattr(dtype, "name", None) or str(dtype)  # numpy dtypes, "float32", np.float32
    name = name.replace("torch.", "")
    if name.startswith("<class 'numpy."):
        name = name[len("<class 'numpy."):-2]
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"ops: unknown dtype {dtype!r}; expected one of {', '.join(sorted(_DTYPES))}") from None


def dtype_name(dtype) -> str:
    """Keras's name of a dtype (``"float32"``)."""
    return str(_dtype(dtype)).replace("torch.", "")


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None) -> torch.Tensor:
    """``x`` as a torch tensor (Python numbers/lists: int32 or float32; NumPy keeps its dtype)."""
    if sparse:
        raise ValueError("ops.convert_to_tensor: sparse=True is not supported (rnnkit has dense tensors only)")
    if ragged:
        raise ValueError("ops.convert_to_tensor: ragged=True is not supported (rnnkit has dense tensors only)")
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray) or isinstance(x, np.generic):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple)) and builtins.any(isinstance(e, torch.Tensor) for e in x):
        t = torch.stack([convert_to_tensor(e) for e in x])
    else:
        a = np.asarray(x)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        elif a.dtype == np.int64:
            a = a.astype(np.int32)
        elif a.dtype.kind not in "biuf":
            raise TypeError(f"ops.convert_to_tensor: cannot make a tensor of {type(x).__name__} {x!r}")
        t = torch.from_numpy(a)
    return t if dtype is None else t.to(_dtype(dtype))


def convert_to_numpy(x) -> np.ndarray:
    """``x`` as a NumPy array (detached, on the CPU; bfloat16 becomes float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _t(x) -> torch.Tensor:
    return convert_to_tensor(x)


def _float(x) -> torch.Tensor:
    """A tensor, integer or bool input turned into float32 (Keras's rule for float functions)."""
    t = _t(x)
    return t if t.is_floating_point() else t.to(torch.float32)


def _weak(value, other: torch.Tensor) -> torch.Tensor:
    """A Python number beside tensor ``other``, typed as Keras types weak scalars."""
    if isinstance(value, bool):
        dt = other.dtype
    elif isinstance(value, int):
        dt = other.dtype if other.dtype != torch.bool else torch.int32
    else:
        dt = other.dtype if other.is_floating_point() else torch.float32
    return torch.tensor(value, dtype=dt, device=other.device)


def _is_number(x) -> bool:
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def _common(*xs) -> list[torch.Tensor]:
    """Tensors of one dtype and device, promoted as Keras promotes them."""
    tensors = [None if _is_number(x) else _t(x) for x in xs]
    ref = next((t for t in tensors if t is not None), None)
    if ref is None:
        tensors = [_t(x) for x in xs]
    else:
        device = next((t.device for t in tensors if t is not None and t.device.type != "cpu"), ref.device)
        strong = [t for t in tensors if t is not None]
        dt = strong[0].dtype
        for t in strong[1:]:
            dt = torch.promote_types(dt, t.dtype)
        anchor = torch.empty((), dtype=dt)
        tensors = [_weak(x, anchor) if t is None else t for x, t in zip(xs, tensors)]
        tensors = [t.to(device) for t in tensors]
    dt = tensors[0].dtype
    for t in tensors[1:]:
        dt = torch.promote_types(dt, t.dtype)
    return [t.to(dt) for t in tensors]


def _axes(axis, ndim: int):
    """Keras's ``axis`` (None, int or tuple) as a tuple of non-negative dims."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (list, tuple)):
        return tuple(int(a) % builtins.max(ndim, 1) for a in axis)
    return (int(axis) % builtins.max(ndim, 1),)


def _int_result(t: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    # torch sums small integers into int64; Keras keeps int32 (and int64 for int64).
    if source.dtype in _SMALL_INTS or source.dtype == torch.int32:
        return t.to(torch.int32)
    return t


# --- element-wise functions ---------------------------------------------------------------

def tanh(x): return torch.tanh(_float(x))
def sigmoid(x): return torch.sigmoid(_float(x))
def relu(x): return torch.relu(_t(x))
def relu6(x): return F.relu6(_float(x))
def exp(x): return torch.exp(_float(x))
def expm1(x): return torch.expm1(_float(x))
def log(x): return torch.log(_float(x))
def log1p(x): return torch.log1p(_float(x))
def sqrt(x): return torch.sqrt(_float(x))
def rsqrt(x): return torch.rsqrt(_float(x))
def erf(x): return torch.erf(_float(x))
def sin(x): return torch.sin(_float(x))
def cos(x): return torch.cos(_float(x))
def floor(x): return torch.floor(_float(x))
def sign(x): return torch.sign(_t(x))
def negative(x): return torch.neg(_t(x))
def reciprocal(x): return torch.reciprocal(_float(x))
def silu(x): return F.silu(_float(x))
def softplus(x): return F.softplus(_float(x))
def softsign(x): return F.softsign(_float(x))
def selu(x): return F.selu(_float(x))
def log_sigmoid(x): return F.logsigmoid(_float(x))
def hard_sigmoid(x): return F.relu6(_float(x) + 3.0) / 6.0
def stop_gradient(variable): return _t(variable).detach()


swish = silu


def abs(x):  # noqa: A001 - Keras's name
    t = _t(x)
    return t if t.dtype == torch.bool else torch.abs(t)


absolute = abs


def square(x):
    t = _t(x)
    return torch.square(t.to(torch.int32) if t.dtype == torch.bool else t)


def round(x, decimals=0):  # noqa: A001 - Keras's name; half to even, as NumPy
    return torch.round(_t(x), decimals=int(decimals))


def gelu(x, approximate=True):
    return F.gelu(_float(x), approximate="tanh" if approximate else "none")


def leaky_relu(x, negative_slope=0.2):
    return F.leaky_relu(_float(x), float(negative_slope))


def elu(x, alpha=1.0):
    return F.elu(_float(x), float(alpha))


def softmax(x, axis=-1):
    t = _float(x)
    if isinstance(axis, (list, tuple)) or axis is None:
        return torch.exp(t - torch.logsumexp(t, dim=_axes(axis, t.dim()), keepdim=True))
    return torch.softmax(t, dim=int(axis))


def log_softmax(x, axis=-1):
    t = _float(x)
    if isinstance(axis, (list, tuple)) or axis is None:
        return t - torch.logsumexp(t, dim=_axes(axis, t.dim()), keepdim=True)
    return torch.log_softmax(t, dim=int(axis))


def clip(x, x_min, x_max):
    t = _t(x)
    if t.dtype == torch.bool:
        t = t.to(torch.int32)
    return torch.clamp(t, x_min, x_max)


def cast(x, dtype):
    return _t(x).to(_dtype(dtype))


# --- binary functions ----------------------------------------------------------------------

def add(x1, x2): a, b = _common(x1, x2); return a + b  # noqa: E702
def subtract(x1, x2): a, b = _common(x1, x2); return a - b  # noqa: E702
def multiply(x1, x2): a, b = _common(x1, x2); return a * b  # noqa: E702
def maximum(x1, x2): a, b = _common(x1, x2); return torch.maximum(a, b)  # noqa: E702
def minimum(x1, x2): a, b = _common(x1, x2); return torch.minimum(a, b)  # noqa: E702
def equal(x1, x2): a, b = _common(x1, x2); return a == b  # noqa: E702
def not_equal(x1, x2): a, b = _common(x1, x2); return a != b  # noqa: E702
def greater(x1, x2): a, b = _common(x1, x2); return a > b  # noqa: E702
def greater_equal(x1, x2): a, b = _common(x1, x2); return a >= b  # noqa: E702
def less(x1, x2): a, b = _common(x1, x2); return a < b  # noqa: E702
def less_equal(x1, x2): a, b = _common(x1, x2); return a <= b  # noqa: E702
def logical_and(x1, x2): return torch.logical_and(_t(x1), _t(x2))
def logical_or(x1, x2): return torch.logical_or(_t(x1), _t(x2))
def logical_not(x): return torch.logical_not(_t(x))


def divide(x1, x2):
    a, b = _common(x1, x2)
    if not a.is_floating_point():
        a, b = a.to(torch.float32), b.to(torch.float32)
    return a / b


true_divide = divide


def power(x1, x2):
    a, b = _common(x1, x2)
    return torch.pow(a, b)


def matmul(x1, x2):
    a, b = _common(x1, x2)
    return torch.matmul(a, b)


def dot(x1, x2):
    """NumPy's ``dot``: a product for scalars, the inner product over ``x1``'s last axis and
    ``x2``'s second-to-last (its only one when 1-D)."""
    a, b = _common(x1, x2)
    if a.dim() == 0 or b.dim() == 0:
        return a * b
    return torch.tensordot(a, b, dims=([a.dim() - 1], [builtins.max(b.dim() - 2, 0)]))


def outer(x1, x2):
    a, b = _common(x1, x2)
    return torch.outer(a.reshape(-1), b.reshape(-1))


def einsum(subscripts, *operands, **kwargs):
    if kwargs:
        raise TypeError(f"ops.einsum: argument(s) {', '.join(sorted(kwargs))} are not supported")
    return torch.einsum(subscripts, *_common(*operands))


def where(condition, x1=None, x2=None):
    """``x1`` where ``condition``, else ``x2``; with neither, the int32 indices where it holds."""
    cond = _t(condition).to(torch.bool)
    if x1 is None and x2 is None:
        return [i.to(torch.int32) for i in torch.nonzero(cond, as_tuple=True)]
    if x1 is None or x2 is None:
        raise ValueError("ops.where: give both x1 and x2, or neither")
    a, b = _common(x1, x2)
    return torch.where(cond.to(a.device), a, b)


# --- shapes ----------------------------------------------------------------------------------

def shape(x) -> tuple:
    return tuple(_t(x).shape)


def ndim(x) -> int:
    return _t(x).dim()


def size(x) -> int:
    return _t(x).numel()


def reshape(x, newshape):
    if isinstance(newshape, int):
        newshape = (newshape,)
    return torch.reshape(_t(x), tuple(-1 if d is None else int(d) for d in newshape))


def transpose(x, axes=None):
    t = _t(x)
    return t.permute(*(range(t.dim() - 1, -1, -1) if axes is None else axes))


def expand_dims(x, axis):
    t = _t(x)
    axes = axis if isinstance(axis, (list, tuple)) else (axis,)
    out_ndim = t.dim() + len(axes)
    for a in sorted(int(a) % out_ndim for a in axes):
        t = t.unsqueeze(a)
    return t


def squeeze(x, axis=None):
    t = _t(x)
    if axis is None:
        return t.squeeze()
    dims = _axes(axis, t.dim())
    for d in dims:
        if t.shape[d] != 1:
            raise ValueError(f"ops.squeeze: axis {d} of a tensor of shape {tuple(t.shape)} has size "
                             f"{t.shape[d]}, not 1")
    return t.squeeze(dims)


def swapaxes(x, axis1, axis2):
    return torch.swapaxes(_t(x), axis1, axis2)


def moveaxis(x, source, destination):
    return torch.movedim(_t(x), source, destination)


def concatenate(xs, axis=0):
    return torch.cat(_common(*xs), dim=axis)


def stack(x, axis=0):
    return torch.stack(_common(*x), dim=axis)


def split(x, indices_or_sections, axis=0):
    """NumPy's ``split``: ``n`` equal parts (``n`` must divide the axis), or cut before each index
    of a list (out-of-range indices give empty parts). Returns a list."""
    t = _t(x)
    if isinstance(indices_or_sections, (int, np.integer)):
        n = t.shape[axis]
        if n % int(indices_or_sections):
            raise ValueError(f"ops.split: axis {axis} of size {n} does not split into "
                             f"{indices_or_sections} equal parts")
        return list(torch.tensor_split(t, int(indices_or_sections), dim=axis))
    return list(torch.tensor_split(t, [int(i) for i in indices_or_sections], dim=axis))


def tile(x, repeats):
    return torch.tile(_t(x), (repeats,) if isinstance(repeats, int) else tuple(repeats))


def repeat(x, repeats, axis=None):
    t = _t(x)
    if not isinstance(repeats, int):
        repeats = _t(repeats).to(torch.int64).to(t.device)
    return torch.repeat_interleave(t, repeats, dim=axis)


def flip(x, axis=None):
    t = _t(x)
    return torch.flip(t, _axes(axis, t.dim()))


def roll(x, shift, axis=None):
    return torch.roll(_t(x), shift, dims=axis)


def take(x, indices, axis=None):
    """NumPy's ``take``: entries of ``x`` (flattened when ``axis`` is None) at ``indices``
    (negative ones count from the end); the result has ``indices``'s shape on that axis."""
    t = _t(x)
    if axis is None:
        t, axis = t.reshape(-1), 0
    axis = int(axis) % t.dim()
    idx = _t(indices).to(torch.int64).to(t.device)
    n = t.shape[axis]
    idx = torch.where(idx < 0, idx + n, idx)
    out = torch.index_select(t, axis, idx.reshape(-1))
    return out.reshape(t.shape[:axis] + idx.shape + t.shape[axis + 1:])


def slice(inputs, start_indices, shape):  # noqa: A001 - Keras's name
    t = _t(inputs)
    for d, (s, n) in enumerate(zip(start_indices, shape)):
        t = t.narrow(d, int(s), int(n))
    return t


def pad(x, pad_width, mode="constant", constant_values=None):
    if mode != "constant":
        raise ValueError(f"ops.pad: mode={mode!r} is not supported; rnnkit pads with mode='constant'")
    t = _t(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (t.dim(), 2))
    flat = [int(w) for pair in widths[::-1] for w in pair]
    return F.pad(t, flat, value=0 if constant_values is None else constant_values)


def tril(x, k=0): return torch.tril(_t(x), diagonal=k)
def triu(x, k=0): return torch.triu(_t(x), diagonal=k)


# --- reductions ----------------------------------------------------------------------------

def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras's name
    t = _t(x)
    return _int_result(torch.sum(t, dim=_axes(axis, t.dim()), keepdim=keepdims), t)


def prod(x, axis=None, keepdims=False, dtype=None):
    t = _t(x)
    out = t
    for d in sorted(_axes(axis, t.dim()), reverse=True):
        out = torch.prod(out, dim=d, keepdim=keepdims)
    out = _int_result(out, t)
    return out if dtype is None else out.to(_dtype(dtype))


def mean(x, axis=None, keepdims=False):
    t = _float(x)
    return torch.mean(t, dim=_axes(axis, t.dim()), keepdim=keepdims)


def var(x, axis=None, keepdims=False):
    t = _float(x)
    return torch.var(t, dim=_axes(axis, t.dim()), keepdim=keepdims, correction=0)


def std(x, axis=None, keepdims=False):
    t = _float(x)
    return torch.std(t, dim=_axes(axis, t.dim()), keepdim=keepdims, correction=0)


def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001 - Keras's name
    t = _t(x)
    out = torch.amax(t, dim=_axes(axis, t.dim()), keepdim=keepdims)
    return out if initial is None else maximum(out, initial)


def min(x, axis=None, keepdims=False, initial=None):  # noqa: A001 - Keras's name
    t = _t(x)
    out = torch.amin(t, dim=_axes(axis, t.dim()), keepdim=keepdims)
    return out if initial is None else minimum(out, initial)


amax, amin = max, min


def any(x, axis=None, keepdims=False):  # noqa: A001 - Keras's name
    t = _t(x).to(torch.bool)
    return torch.any(t, dim=_axes(axis, t.dim()), keepdim=keepdims)


def all(x, axis=None, keepdims=False):  # noqa: A001 - Keras's name
    t = _t(x).to(torch.bool)
    return torch.all(t, dim=_axes(axis, t.dim()), keepdim=keepdims)


def logsumexp(x, axis=None, keepdims=False):
    t = _float(x)
    return torch.logsumexp(t, dim=_axes(axis, t.dim()), keepdim=keepdims)


def _arg(fn, x, axis, keepdims):
    t = _t(x)
    if axis is None:
        out = fn(t.reshape(-1), dim=0)
        if keepdims:
            out = out.reshape((1,) * t.dim())
    else:
        out = fn(t, dim=int(axis), keepdim=keepdims)
    return out.to(torch.int32)


def argmax(x, axis=None, keepdims=False):
    return _arg(torch.argmax, x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    return _arg(torch.argmin, x, axis, keepdims)


def cumsum(x, axis=None, dtype=None):
    t = _t(x)
    if axis is None:
        t, axis = t.reshape(-1), 0
    out = _int_result(torch.cumsum(t, dim=int(axis)), t)
    return out if dtype is None else out.to(_dtype(dtype))


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 - Keras's name
    """NumPy's ``linalg.norm``: the 2-norm of the flattened tensor by default, a vector norm over
    one axis, a matrix norm (Frobenius by default) over two."""
    t = _float(x)
    if axis is None and ord is None:
        out = torch.linalg.vector_norm(t)
        return out.reshape((1,) * t.dim()) if keepdims else out
    return torch.linalg.norm(t, ord=ord, dim=axis, keepdim=keepdims)


def sort(x, axis=-1):
    return torch.sort(_t(x), dim=axis, stable=True).values


def argsort(x, axis=-1):
    return torch.argsort(_t(x), dim=axis, stable=True).to(torch.int32)


def top_k(x, k, sorted=True):  # noqa: A002 - Keras's name
    values, indices = torch.topk(_t(x), int(k), dim=-1, sorted=sorted)
    return values, indices.to(torch.int32)


# --- making tensors --------------------------------------------------------------------------

def _shape_arg(shape):
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)


def zeros(shape, dtype=None):
    return torch.zeros(_shape_arg(shape), dtype=_dtype(dtype or "float32"))


def ones(shape, dtype=None):
    return torch.ones(_shape_arg(shape), dtype=_dtype(dtype or "float32"))


def full(shape, fill_value, dtype=None):
    fill = _t(fill_value)
    return torch.full(_shape_arg(shape), fill.item() if fill.dim() == 0 else 0,
                      dtype=_dtype(dtype) if dtype else fill.dtype) + (0 if fill.dim() == 0 else fill)


def zeros_like(x, dtype=None):
    t = _t(x)
    return torch.zeros_like(t, dtype=_dtype(dtype) if dtype else t.dtype)


def ones_like(x, dtype=None):
    t = _t(x)
    return torch.ones_like(t, dtype=_dtype(dtype) if dtype else t.dtype)


def full_like(x, fill_value, dtype=None):
    t = _t(x)
    return torch.full_like(t, fill_value, dtype=_dtype(dtype) if dtype else t.dtype)


def arange(start, stop=None, step=None, dtype=None):
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    if dtype is None:
        dtype = "int32" if builtins.all(isinstance(v, (int, np.integer)) for v in (start, stop, step)) else "float32"
    return torch.arange(start, stop, step, dtype=_dtype(dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    if retstep:
        raise ValueError("ops.linspace: retstep=True is not supported")
    if not (_is_number(start) and _is_number(stop)) or axis != 0:
        raise ValueError("ops.linspace: rnnkit takes scalar start and stop (and axis=0)")
    if endpoint:
        out = torch.linspace(start, stop, int(num), dtype=torch.float32)
    else:
        out = torch.linspace(start, stop, int(num) + 1, dtype=torch.float32)[:-1]
    return out if dtype is None else out.to(_dtype(dtype))


def eye(N, M=None, k=0, dtype=None):  # noqa: N803 - Keras's names
    M = N if M is None else M
    rows = torch.arange(N).unsqueeze(1)
    cols = torch.arange(M).unsqueeze(0)
    return (cols - rows == k).to(_dtype(dtype or "float32"))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """One-hot vectors of length ``num_classes`` on ``axis`` (indices outside [0, num_classes)
    give all-zero vectors, as in Keras)."""
    if sparse:
        raise ValueError("ops.one_hot: sparse=True is not supported (rnnkit has dense tensors only)")
    t = _t(x).to(torch.int64)
    out = (t.unsqueeze(-1) == torch.arange(int(num_classes), device=t.device)).to(_dtype(dtype or "float32"))
    return out if axis == -1 else torch.movedim(out, -1, axis)


def _all_names():
    return sorted(n for n, v in globals().items()
                  if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == __name__
                  and n != "dtype_name")


__all__ = _all_names() + ["absolute", "amax", "amin", "swish", "true_divide", "dtype_name"]
