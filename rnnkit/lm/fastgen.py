"""Fast generation from a character LSTM on the CPU, one stream or a batch of them.

Sampling one character from a batch of one is a chain of matrix-vector products,
so its speed is the speed of reading the weights from memory, plus whatever each
operation costs to launch. `FastLSTM` keeps both small:

* the embedding is folded into layer 1's input projection: a ``(vocab, 4*hidden)``
  table (``embedding @ W_ih.T + biases``), so layer 1 reads one row of it and
  multiplies only ``W_hh``;
* every later layer is one product ``[W_ih | W_hh] @ [h_below; h_own]``: the
  hidden states of all layers sit end to end in one buffer, so that input is a
  slice of it, not a copy;
* the products run in numpy (OpenBLAS), whose single-vector product is faster
  than PyTorch's on the CPUs measured (benchmarks/README.md) and which splits
  it over the cores; every other operation is an in-place numpy ufunc on a
  preallocated buffer (about a microsecond each instead of a few for a tensor op);
* the gate rows are reordered to ``i, f, o, g``, so one in-place ``torch.sigmoid_``
  (a vectorised kernel, faster than numpy's) covers the three sigmoid gates.

In float32 the results equal `CharLM.step`'s up to rounding (summation order),
about 1e-6 relative on the logits. ``precision="fp16"``/``"int8"`` runs the
products through fbgemm instead (`PACKERS`): fewer bytes, but at a batch of one
those kernels were slower than OpenBLAS's float32 ones on the CPU measured.
`sample_stream` draws the same uniforms as the plain path and inverts the same
CDF, so the same seed gives the same text, up to a draw that rounding tips (rare:
the logits differ by ~1e-6).

A single fp32 stream steps in C where it can (``kernel="native"``, `rnnkit.native`'s
``lstm_step``, built at first use): the same folded table and products, and the cell, in
one OpenMP region per step, and `sample_stream` runs its sampling loop there too. That is
~1.6x the numpy step's speed, whose time goes largely to the dozens of calls into numpy a
token takes (benchmarks/README.md). Each unit's sums run on one thread in a fixed order,
so the numbers do not depend on the thread count. Where the C code cannot be built (no
compiler, no AVX2, not Linux, ``RNNKIT_NATIVE=0``), the numpy step does the same work.

OpenBLAS's threads spin while they wait for each other: on cores busy with other
work that makes every product wait for a descheduled thread. `set_blas_threads`
and `idle_cores` let the caller choose (the CLI uses the cores other processes leave idle).
"""
from __future__ import annotations

import functools
import os
from typing import Iterator

import numpy as np
import torch

__all__ = ["FastLSTM", "PACKERS", "KERNELS", "unsupported", "sample_stream", "blas_threads", "set_blas_threads",
           "idle_cores"]

#: Who runs a single stream's fp32 step: "auto" (C where it can be built, else numpy), "native", "numpy".
KERNELS = ("auto", "native", "numpy")


def unsupported(model, precision: str = "fp32") -> str | None:
    """None when `FastLSTM` can step ``model`` at ``precision``, else why not (one line)."""
    if model.config.cell != "lstm":
        return f"the fast generation step is for LSTM cells, not {model.config.cell}"
    if model.config.residual:
        return "the fast generation step is for plain LSTM stacks, not residual ones"
    weight = model.head.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return f"the fast generation step needs float32 weights on the CPU, not {weight.dtype} on {weight.device}"
    if precision not in FAST_PRECISIONS:
        return f"the fast generation step supports precision {', '.join(FAST_PRECISIONS)}, not {precision}"
    if precision != "fp32" and "fbgemm" not in torch.backends.quantized.supported_engines:
        return f"precision {precision!r} needs PyTorch's fbgemm kernels (x86 CPUs)"
    return None


class FastLSTM:
    """One stream of a `CharLM` with LSTM cells, stepped one token at a time in C or numpy;
    ``batch=N`` steps N streams together in numpy (each product then reads the weights once
    for all).

    Takes a snapshot of the weights: later changes to the model are not seen.

    Args:
        kernel: for one fp32 stream, ``"auto"`` (C where `rnnkit.native` can build it, else
            numpy), ``"native"`` (C, or ValueError saying why not) or ``"numpy"``. The
            attribute ``kernel`` says which runs.
        threads: OpenMP threads of the C step (default: ``torch.get_num_threads()``).

    Example:
        >>> fast = FastLSTM(model)                   # doctest: +SKIP
        >>> logits, state = model.prime([5, 7, 9])   # doctest: +SKIP
        >>> fast.load_state(state)                   # doctest: +SKIP
        >>> logits = fast.step(3)                    # (vocab,) float32, valid until the next step
    """

    def __init__(self, model, precision: str = "fp32", batch: int | None = None, kernel: str = "auto",
                 threads: int | None = None):
        why = unsupported(model, precision)
        if why:
            raise ValueError(why)
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise ValueError(f"batch must be a positive integer or None, got {batch!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        self.native = None  # the C step (`_NativeStep`) when it runs this stream
        H, layers = model.config.hidden, model.config.layers
        why_not = _native_problem(precision, batch, layers) if kernel != "numpy" else "numpy chosen"
        if why_not is not None and kernel == "native":
            raise ValueError(f"the native generation step is unavailable: {why_not}")
        # PyTorch's gate order is i, f, g, o. The numpy step puts the three sigmoid gates first;
        # the C step takes PyTorch's order.
        order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        if why_not is None:
            order = torch.arange(4 * H)

        self.table, weights, self.biases, head_w, self.head_b, self.logit_bound = folded_weights(model, order)
        product = _PRODUCTS[precision]
        self.products = [product(w, batch) for w in weights]
        self.head_product = product(head_w, batch)
        self.head_w = head_w
        self.precision, self.batch = precision, batch
        self.hidden, self.layers = H, layers

        # A single stream has vectors (a matrix-vector product); a batch has rows (batch, features).
        lead = () if batch is None else (batch,)
        self.h = np.zeros(lead + (layers * H,), np.float32)  # h of every layer, end to end
        self.c_all = np.zeros(lead + (layers * H,), np.float32)
        self.c = [self.c_all[..., i * H: (i + 1) * H] for i in range(layers)]
        self.gates = np.empty(lead + (4 * H,), np.float32)
        self.logits = np.empty(lead + (len(self.head_b),), np.float32)
        self._tmp = np.empty(lead + (H,), np.float32)
        g = self.gates
        self._gate_views = (torch.from_numpy(g[..., : 3 * H]), g[..., :H], g[..., H: 2 * H], g[..., 2 * H: 3 * H],
                            g[..., 3 * H:])
        # Per layer: (input slice of self.h, own slice of self.h, product, bias, cell state).
        self._plan = [(self.h[..., max(i - 1, 0) * H: (i + 1) * H], self._own(i), self.products[i],
                       self.biases[i], self.c[i]) for i in range(layers)]
        self._top = self._own(layers - 1)

        if why_not is None:
            self.native = _NativeStep(self, weights, threads)
            self.logits = self.native.logits
        self.kernel = "native" if self.native is not None else "numpy"

    def _own(self, layer: int) -> np.ndarray:
        h = self.h if self.native is None else self.native.h[self.native.struct.cur]
        return h[..., layer * self.hidden: (layer + 1) * self.hidden]

    # ---------------------------------------------------------------- state
    def load_state(self, state) -> None:
        """Copy a `CharLM` state (per layer ``[h, c]``, each ``(batch, hidden)``; batch 1 for a
        single stream) into the buffers."""
        for i, (h, c) in enumerate(state):
            self._own(i)[...] = h.detach().float().numpy().reshape(self._own(i).shape)
            self.c[i][...] = c.detach().float().numpy().reshape(self.c[i].shape)

    def state(self) -> list:
        """The current state as a `CharLM` state (copies, ``(batch, hidden)`` tensors)."""
        return [[torch.tensor(self._own(i)).view(-1, self.hidden), torch.tensor(self.c[i]).view(-1, self.hidden)]
                for i in range(self.layers)]

    # ----------------------------------------------------------------- step
    def step(self, token) -> np.ndarray:
        """Advance by ``token`` (an int; for a batch, ``(batch,)`` ints); returns the next-token
        logits ``(vocab,)`` or ``(batch, vocab)`` (a buffer that the next step overwrites)."""
        if self.native is not None:
            self.native.step(int(token))
            return self.logits
        sig, i, f, o, g = self._gate_views
        gates, tmp, mul, tanh, sigmoid_ = self.gates, self._tmp, np.multiply, np.tanh, torch.sigmoid_
        for layer, (x, h, product, b, c) in enumerate(self._plan):
            product(x, gates)
            gates += self.table[token] if layer == 0 else b
            sigmoid_(sig)
            tanh(g, out=g)
            c *= f
            mul(i, g, out=tmp)
            c += tmp
            tanh(c, out=h)
            h *= o
        self.head_product(self._top, self.logits)
        self.logits += self.head_b
        return self.logits


def sample_stream(fast: FastLSTM, logits: np.ndarray, uniforms: np.ndarray, temperature: float) -> Iterator[int]:
    """Tokens drawn by inverting the softmax CDF at ``uniforms`` (float64, one per token),
    stepping ``fast`` after each; ``logits`` are the first token's.

    The same draw as `CharLM.generate`'s plain path: ``cdf = cumsum(softmax(logits / T))``,
    the first index whose CDF reaches ``u`` (here on the unnormalised CDF against ``u * total``).
    """
    if getattr(fast, "native", None) is not None:
        yield from fast.native.sample(logits, uniforms, temperature, fast.logit_bound / temperature)
        return
    z = np.empty(len(logits), np.float64)
    cdf = np.empty_like(z)
    last = len(logits) - 1
    # exp(z - shift) with shift = the bound of every logit / T cannot overflow, and saves finding the
    # maximum each token; only when the shift makes everything underflow (a very low temperature)
    # is the actual maximum used.
    shift = fast.logit_bound / temperature
    for u in uniforms.tolist():
        np.divide(logits, temperature, out=z, dtype=np.float64)
        z -= shift
        np.exp(z, out=z)
        np.add.accumulate(z, out=cdf)
        if not cdf[-1] > 1e-200:
            np.divide(logits, temperature, out=z, dtype=np.float64)
            z -= z.max()
            np.exp(z, out=z)
            np.add.accumulate(z, out=cdf)
        token = min(int(cdf.searchsorted(u * cdf[-1])), last)
        yield token
        logits = fast.step(token)


def folded_weights(model, order: torch.Tensor | None = None) -> tuple:
    """A `CharLM` LSTM's weights as the fast steps read them, float32 numpy arrays with the gate
    rows in ``order`` (default PyTorch's, i, f, g, o): ``(table (vocab, 4H), weights, biases,
    head_w (V, H), head_b (V,), logit_bound)``, where ``table`` is ``embedding @ W_ih0.T`` plus
    layer 0's biases (float64, rounded once), ``weights[0]`` layer 0's ``W_hh`` ``(4H, H)``,
    ``weights[l]`` ``[W_ih | W_hh]`` ``(4H, 2H)`` with ``biases[l]`` ``(4H,)`` (``biases[0]`` None),
    and ``logit_bound`` a bound on every logit: each ``|h| <= 1``, so ``|W h + b| <= |W|_1 + |b|``."""
    H = model.config.hidden
    if order is None:
        order = torch.arange(4 * H)

    def rows(w):  # reordered (an exact copy), float32, C-contiguous for a row-by-row product
        return w.detach().float().index_select(0, order).numpy()

    def bias(layer):
        b = layer.bias_ih.detach().double() if layer.bias_ih is not None else torch.zeros(4 * H, dtype=torch.float64)
        if layer.bias_hh is not None:
            b = b + layer.bias_hh.detach().double()
        return b

    first = model.rnns[0]
    table = model.embed.weight.detach().double() @ first.weight_ih.detach().double().T + bias(first)
    weights = [rows(first.weight_hh)] + [
        rows(torch.cat([layer.weight_ih, layer.weight_hh], 1)) for layer in model.rnns[1:]]
    biases = [None] + [rows(bias(layer)[:, None])[:, 0].copy() for layer in model.rnns[1:]]
    head = model.head
    bound = float((head.weight.detach().double().abs().sum(1) + head.bias.detach().double().abs()).max())
    return (rows(table.T).T.copy(), weights, biases, head.weight.detach().float().numpy().copy(),
            head.bias.detach().float().numpy().copy(), bound)


# ------------------------------------------------------------------ native
def _native_problem(precision: str, batch: int | None, layers: int) -> str | None:
    """None when `_NativeStep` can run a stream of this kind here, else why not."""
    if precision != "fp32":
        return f"the native step is float32 only, not {precision}"
    if batch is not None:
        return "the native step runs a single stream (batch None)"
    from .. import native

    if layers > native_max_layers():
        return f"the native step takes at most {native_max_layers()} layers, not {layers}"
    return native.unavailable("lstm_step")


def native_max_layers() -> int:
    return 16  # RNNKIT_MAX_LAYERS in rnnkit/native/lstm_step.c


@functools.lru_cache(maxsize=None)
def _native_functions():
    """``(Struct, step, sample)``: the kernel's struct type (``rnnkit_lstm`` in
    rnnkit/native/lstm_step.c) and its two functions with their signatures, made once: ctypes
    keeps one function object per library, so every `_NativeStep` must share these."""
    import ctypes

    from .. import native

    lib = native.library("lstm_step")
    ptr, i32, n = ctypes.c_void_p, ctypes.c_int32, native_max_layers()

    class Struct(ctypes.Structure):
        _fields_ = [("layers", i32), ("hidden", i32), ("vocab", i32), ("threads", i32), ("table", ptr),
                    ("w", ptr * n), ("b", ptr * n), ("head_w", ptr), ("head_b", ptr), ("h", ptr * 2),
                    ("c", ptr), ("logits", ptr), ("cur", i32)]

    step, sample = lib.rnnkit_lstm_step, lib.rnnkit_lstm_sample
    step.argtypes, step.restype = [ctypes.POINTER(Struct), i32], None
    sample.argtypes = [ctypes.POINTER(Struct), ptr, i32, ctypes.c_double, ctypes.c_double, ptr, ptr]
    sample.restype = None
    return Struct, step, sample


#: Most OpenMP threads the C step takes (more would only wait on each other).
MAX_NATIVE_THREADS = 256


class _NativeStep:
    """`FastLSTM`'s weights and state as the C kernel's struct plus the buffers it points into;
    the arrays are kept here so they live as long as the struct does."""

    def __init__(self, fast: "FastLSTM", weights: list, threads: int | None):
        import ctypes

        Struct, self._step, self._sample = _native_functions()
        if threads is None:
            threads = torch.get_num_threads()
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_NATIVE_THREADS:
            raise ValueError(f"threads must be an integer from 1 to {MAX_NATIVE_THREADS}, got {threads!r}")
        H, layers = fast.hidden, fast.layers
        # `fast` built these in PyTorch's gate order (i, f, g, o), as the kernel reads them.
        contiguous = np.ascontiguousarray  # no copy: they are already
        self.table, self.weights = contiguous(fast.table), [contiguous(w) for w in weights]
        self.biases = [None if b is None else contiguous(b) for b in fast.biases]
        self.head_w = contiguous(fast.head_w)
        self.head_b = fast.head_b
        self.h = np.zeros((2, layers * H), np.float32)
        self.c = fast.c_all
        self.logits = np.zeros(len(fast.head_b), np.float32)
        self.cdf = np.empty(len(fast.head_b), np.float64)
        self.tokens = np.empty(_SAMPLE_CHUNK, np.int32)

        s = self.struct = Struct()
        s.layers, s.hidden, s.vocab, s.threads = layers, H, len(fast.head_b), threads
        s.table, s.head_w, s.head_b = self.table.ctypes.data, self.head_w.ctypes.data, self.head_b.ctypes.data
        for i in range(layers):
            s.w[i] = self.weights[i].ctypes.data
            if self.biases[i] is not None:
                s.b[i] = self.biases[i].ctypes.data
        s.h[0], s.h[1] = self.h[0].ctypes.data, self.h[1].ctypes.data
        s.c, s.logits, s.cur = self.c.ctypes.data, self.logits.ctypes.data, 0
        self._ref = ctypes.byref(s)

    def step(self, token: int) -> None:
        if not 0 <= token < len(self.table):
            raise IndexError(f"token {token} is outside the vocabulary (0..{len(self.table) - 1})")
        self._step(self._ref, token)

    def sample(self, logits: np.ndarray, uniforms: np.ndarray, temperature: float, shift: float) -> Iterator[int]:
        """Tokens for ``uniforms`` as `sample_stream` draws them, sampled and stepped in C a chunk
        at a time (so the state runs up to a chunk ahead of what the caller has taken)."""
        np.copyto(self.logits, logits)
        uniforms = np.ascontiguousarray(uniforms, np.float64)
        out = self.tokens
        for start in range(0, len(uniforms), _SAMPLE_CHUNK):
            k = min(_SAMPLE_CHUNK, len(uniforms) - start)
            self._sample(self._ref, uniforms[start:].ctypes.data, k, float(temperature), float(shift),
                         self.cdf.ctypes.data, out.ctypes.data)
            yield from out[:k].tolist()


#: Tokens sampled per call into C: ~5 ms of text at a time, so the output still streams.
_SAMPLE_CHUNK = 32


# ------------------------------------------------------------------ products
# ``product(w, batch)`` is made from a (rows, cols) float32 matrix and called as ``product(x, out)``:
# ``out[:] = w @ x`` for a (cols,) vector ``x`` (batch None), or ``out[:] = x @ w.T`` for (batch, cols) rows.

def _fp32_product(w: np.ndarray, batch: int | None):
    if batch is None:
        return lambda x, out: np.matmul(w, x, out=out)  # a matrix-vector product (BLAS gemv)
    if batch <= 4:  # measured: a few matrix-vector products beat one thin matrix product (OpenBLAS packs w)
        def rows(x, out):
            for k in range(batch):
                np.matmul(w, x[k], out=out[k])
        return rows
    wt = w.T
    return lambda x, out: np.matmul(x, wt, out=out)


def _pack_fp16(w, b=None):
    return torch.ops.quantized.linear_prepack_fp16(w.detach().float(), None if b is None else b.detach().float())


def _pack_int8(w, b=None):
    import warnings

    w = w.detach().float()
    scales = (w.abs().amax(1) / 127).clamp(min=1e-12).double()
    with warnings.catch_warnings():  # quantized tensors are deprecated in torch 2.13 but still the way into fbgemm
        warnings.simplefilter("ignore")
        q = torch.quantize_per_channel(w, scales, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(q, None if b is None else b.detach().float())


#: precision -> (pack a weight and optional bias for fbgemm, ``linear(x (batch, in), packed)``).
PACKERS = {
    "fp16": (_pack_fp16, lambda x, w: torch.ops.quantized.linear_dynamic_fp16(x, w)),
    "int8": (_pack_int8, lambda x, w: torch.ops.quantized.linear_dynamic(x, w, True)),
}


def _packed_product(precision: str):
    pack, linear = PACKERS[precision]

    def make(w: np.ndarray, batch: int | None):
        packed, cols = pack(torch.from_numpy(w)), w.shape[1]

        def product(x, out):
            np.copyto(out, linear(torch.from_numpy(x).reshape(-1, cols), packed).numpy().reshape(out.shape))
        return product
    return make


_PRODUCTS = {"fp32": _fp32_product, "fp16": _packed_product("fp16"), "int8": _packed_product("int8")}
FAST_PRECISIONS = tuple(_PRODUCTS)


# ------------------------------------------------------------------- threads
# numpy has no call for its BLAS's thread count; OpenBLAS exports one, under a prefix and
# suffix that depend on the build (numpy's wheels: ``scipy_openblas_..._64_``).
_OPENBLAS_PREFIXES = ("scipy_openblas", "openblas")
_OPENBLAS_SUFFIXES = ("64_", "_64", "")


@functools.lru_cache(maxsize=None)
def _openblas():
    """numpy's OpenBLAS thread functions ``(get, set)`` through ctypes, or None."""
    import ctypes

    try:  # the libraries this process has loaded (Linux); numpy's BLAS is among them
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _OPENBLAS_PREFIXES:
            for suffix in _OPENBLAS_SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, put
    return None


def blas_threads() -> int | None:
    """Threads numpy's OpenBLAS uses for the fp32 products, or None where it cannot be found."""
    lib = _openblas()
    return int(lib[0]()) if lib else None


def idle_cores(window: float = 0.2) -> int:
    """Cores that other processes leave idle, measured over ``window`` seconds (at least 1):
    a safe count of BLAS threads.

    OpenBLAS's threads wait for each other by spinning; when one shares its core with other
    work, every product waits for it to be scheduled again, and generation gets an order of
    magnitude slower than on a single thread (measured on 2 busy cores: 190 vs 4,700 chars/s
    for a 1x512 LSTM). Where ``/proc/stat`` is missing the 1-minute load average stands in.
    """
    import time

    cores = os.cpu_count() or 1
    try:
        before = _cpu_jiffies()
        time.sleep(window)
        after = _cpu_jiffies()
        busy = (after[0] - before[0]) / max(after[1] - before[1], 1) * cores
    except (OSError, ValueError, IndexError):
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on every platform
            return cores
    return max(1, min(cores, int(cores - busy + 0.5)))


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (Linux)."""
    with open("/proc/stat", encoding="ascii") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # all but idle and iowait


def set_blas_threads(n: int) -> bool:
    """Use ``n`` threads in numpy's OpenBLAS; False (nothing changed) where it cannot be found."""
    lib = _openblas()
    if lib:
        lib[1](int(n))
    return bool(lib)
