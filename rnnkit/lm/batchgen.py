"""Many streams of a character/word LSTM stepped together: the batched generation step.

`BatchLSTM` holds up to ``capacity`` streams of a `CharLM` with LSTM cells, rows ``0..n-1``
of its buffers, and advances them all by one token per `step`. A stream joins with `add`
(a state from `CharLM.prime`) and leaves with `remove`, which moves the last row into the
freed one, so the active rows stay ``0..n-1`` and a step costs what ``n`` streams cost.

The step runs in C (``rnnkit/native/lstm_batch.c``): register-blocked products that load each
weight once for several streams, the cell, the head and plain sampling in one OpenMP team.
Every number a stream gets is a fixed-order float32 sum over that stream's inputs alone,
so a stream's logits do not depend on the batch it runs in, its row or the thread count:
generated alone or among 255 others, the same seed gives the same text, bit for bit.
Where the C code cannot be built (see `rnnkit.native`) numpy does the same work, with
BLAS products whose rounding may depend on the batch.

    >>> batch = BatchLSTM(model, capacity=64)            # doctest: +SKIP
    >>> logits, state = model.prime([5, 7, 9])           # doctest: +SKIP
    >>> row = batch.add(state)                           # doctest: +SKIP
    >>> logits = batch.step(np.array([3], np.int32))     # (n, vocab): row 0 is that stream's
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .fastgen import folded_weights, native_max_layers, unsupported

__all__ = ["BatchLSTM", "PANEL"]

#: Gate rows per packed panel of the C product (three AVX2 registers of float32), and streams
#: per packed group of its inputs (ROWS and GROUP in lstm_batch.c).
PANEL, GROUP = 24, 4


def _pack(w: np.ndarray) -> np.ndarray:
    """``(rows, K)`` -> ``(panels, K, PANEL)``: rows in panels of 24, each panel column by column,
    rows past the end zero (the layout of ``wp`` in lstm_batch.c)."""
    rows, k = w.shape
    panels = -(-rows // PANEL)
    padded = np.zeros((panels * PANEL, k), np.float32)
    padded[:rows] = w
    return np.ascontiguousarray(padded.reshape(panels, PANEL, k).transpose(0, 2, 1))


@functools.lru_cache(maxsize=None)
def _functions():
    """``(Struct, step, sample)`` of lstm_batch.c through ctypes, made once per process."""
    import ctypes

    from .. import native

    lib = native.library("lstm_batch")
    ptr, i32, n = ctypes.c_void_p, ctypes.c_int32, native_max_layers()

    class Struct(ctypes.Structure):
        _fields_ = [("layers", i32), ("hidden", i32), ("vocab", i32), ("threads", i32), ("ldg", i32),
                    ("ldv", i32), ("table", ptr), ("wp", ptr * n), ("b", ptr * n), ("head_wp", ptr),
                    ("head_b", ptr), ("h", ptr), ("c", ptr), ("gates", ptr), ("logits", ptr), ("xp", ptr)]

    step, sample = lib.rnnkit_lstm_batch_step, lib.rnnkit_lstm_batch_sample
    step.argtypes, step.restype = [ctypes.POINTER(Struct), i32, ptr], None
    sample.argtypes, sample.restype = [ctypes.POINTER(Struct), i32, ptr, ptr, ptr, ptr, ptr, ptr], None
    return Struct, step, sample


def native_problem(layers: int) -> str | None:
    """None when the C batched step can run here for a stack of ``layers``, else why not."""
    from .. import native

    if layers > native_max_layers():
        return f"the native step takes at most {native_max_layers()} layers, not {layers}"
    return native.unavailable("lstm_batch")


class BatchLSTM:
    """Up to ``capacity`` streams of a float32 `CharLM` LSTM on the CPU, stepped together.

    Takes a snapshot of the weights. Args:
        capacity: most streams at once (buffers are made for that many).
        threads: OpenMP threads of the C step (default ``torch.get_num_threads()``).
        kernel: ``"auto"`` (C where it can be built, else numpy), ``"native"`` or ``"numpy"``.
    Attributes: ``n`` active streams (rows ``0..n-1``), ``vocab``, ``kernel``, ``logit_bound``.
    """

    def __init__(self, model, capacity: int, threads: int | None = None, kernel: str = "auto"):
        why = unsupported(model, "fp32")
        if why:
            raise ValueError(why)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        if kernel not in ("auto", "native", "numpy"):
            raise ValueError(f"kernel must be one of auto, native, numpy, got {kernel!r}")
        threads = torch.get_num_threads() if threads is None else threads
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
            raise ValueError(f"threads must be an integer from 1 to 256, got {threads!r}")
        H, L = model.config.hidden, model.config.layers
        why_not = native_problem(L) if kernel != "numpy" else "numpy chosen"
        if why_not is not None and kernel == "native":
            raise ValueError(f"the native batched step is unavailable: {why_not}")
        self.kernel = "native" if why_not is None else "numpy"
        self.table, self.weights, self.biases, self.head_w, self.head_b, self.logit_bound = folded_weights(model)
        self.hidden, self.layers, self.vocab, self.capacity, self.threads = H, L, len(self.head_b), capacity, threads
        self.n = 0
        self.h = np.zeros((capacity, L * H), np.float32)
        self.c = np.zeros((capacity, L * H), np.float32)
        head_panels = -(-self.vocab // PANEL)
        self.logits_buffer = np.zeros((capacity, head_panels * PANEL), np.float32)
        gate_rows = -(-4 * H // PANEL) * PANEL
        self.gates = np.zeros((capacity, gate_rows + 8), np.float32)  # slack: a row's last vector reads past 4H
        self._xp = np.zeros((-(-capacity // GROUP), 2 * H, GROUP), np.float32)
        self._cdf = np.empty((threads, self.vocab), np.float64)
        self._plain = np.zeros(capacity, np.uint8)
        self._u, self._t, self._shift = (np.zeros(capacity, np.float64) for _ in range(3))
        self._tokens = np.zeros(capacity, np.int32)
        if self.kernel == "native":
            self._make_struct()

    def _make_struct(self) -> None:
        import ctypes

        Struct, self._step, self._sample = _functions()
        self.packed = [_pack(w) for w in self.weights]
        self.head_packed = _pack(self.head_w)
        s = self.struct = Struct()
        s.layers, s.hidden, s.vocab, s.threads = self.layers, self.hidden, self.vocab, self.threads
        s.ldg, s.ldv = self.gates.shape[1], self.logits_buffer.shape[1]
        s.table, s.head_wp, s.head_b = self.table.ctypes.data, self.head_packed.ctypes.data, self.head_b.ctypes.data
        for i in range(self.layers):
            s.wp[i] = self.packed[i].ctypes.data
            if self.biases[i] is not None:
                s.b[i] = self.biases[i].ctypes.data
        s.h, s.c = self.h.ctypes.data, self.c.ctypes.data
        s.gates, s.logits, s.xp = self.gates.ctypes.data, self.logits_buffer.ctypes.data, self._xp.ctypes.data
        self._ref = ctypes.byref(s)

    # ------------------------------------------------------------- streams
    def add(self, state) -> int:
        """A stream from a `CharLM` state (per layer ``[h, c]``, each ``(1, hidden)``) into row
        ``n``; returns that row. Raises `RuntimeError` when all ``capacity`` rows are taken."""
        if self.n >= self.capacity:
            raise RuntimeError(f"the batch is full ({self.capacity} streams)")
        row, H = self.n, self.hidden
        for i, (h, c) in enumerate(state):
            self.h[row, i * H:(i + 1) * H] = h.detach().float().reshape(-1).numpy()
            self.c[row, i * H:(i + 1) * H] = c.detach().float().reshape(-1).numpy()
        self.n += 1
        return row

    def remove(self, row: int) -> int | None:
        """Drop the stream in ``row``; the last row's stream moves into it. Returns the row that
        moved (its old index, now ``row``), or None when ``row`` was the last."""
        if not 0 <= row < self.n:
            raise IndexError(f"row {row} is not an active stream (0..{self.n - 1})")
        last = self.n - 1
        self.n = last
        if row == last:
            return None
        self.h[row], self.c[row] = self.h[last], self.c[last]
        return last

    def state(self, row: int) -> list:
        """The stream in ``row`` as a `CharLM` state (copies)."""
        H = self.hidden
        return [[torch.tensor(self.h[row:row + 1, i * H:(i + 1) * H]), torch.tensor(self.c[row:row + 1, i * H:(i + 1) * H])]
                for i in range(self.layers)]

    @property
    def logits(self) -> np.ndarray:
        """``(n, vocab)`` next-token logits of the active streams after the last `step`."""
        return self.logits_buffer[:self.n, :self.vocab]

    # ---------------------------------------------------------------- step
    def step(self, tokens: np.ndarray) -> np.ndarray:
        """Feed ``tokens[r]`` (``(n,)`` ints) to the stream in row r; returns `logits` (a view
        that the next step overwrites)."""
        n = self.n
        tokens = np.ascontiguousarray(tokens, np.int32).reshape(-1)
        if len(tokens) != n:
            raise ValueError(f"step: {n} active streams, got {len(tokens)} tokens")
        if n and (tokens.min() < 0 or tokens.max() >= len(self.table)):
            raise IndexError(f"a token is outside the vocabulary (0..{len(self.table) - 1})")
        if n == 0:
            return self.logits
        if self.kernel == "native":
            self._step(self._ref, n, tokens.ctypes.data)
        else:
            self._numpy_step(tokens)
        return self.logits

    def _numpy_step(self, tokens: np.ndarray) -> None:
        n, H = self.n, self.hidden
        for layer in range(self.layers):
            x = self.h[:n, max(layer - 1, 0) * H:(layer + 1) * H]
            gates = x @ self.weights[layer].T
            gates += self.table[tokens] if layer == 0 else self.biases[layer]
            i, f, g, o = (gates[:, q * H:(q + 1) * H] for q in range(4))
            c = self.c[:n, layer * H:(layer + 1) * H]
            c *= 1 / (1 + np.exp(-f))
            c += 1 / (1 + np.exp(-i)) * np.tanh(g)
            self.h[:n, layer * H:(layer + 1) * H] = np.tanh(c) / (1 + np.exp(-o))
        self.logits_buffer[:n, :self.vocab] = self.h[:n, (self.layers - 1) * H:] @ self.head_w.T + self.head_b

    def sample_plain(self, plain: np.ndarray, uniforms: np.ndarray, temperature: np.ndarray,
                     out: np.ndarray) -> None:
        """For each row r with ``plain[r]``, ``out[r]`` = the token whose softmax(logits[r] /
        temperature[r]) CDF first reaches ``uniforms[r]`` (`rnnkit.lm.fastgen.sample_stream`'s
        draw); other rows of ``out`` are left alone. All arrays ``(n,)``."""
        n = self.n
        if n == 0:
            return
        p, u, t, shift = self._plain[:n], self._u[:n], self._t[:n], self._shift[:n]
        p[:] = plain
        u[:] = uniforms
        t[:] = np.where(p, temperature, 1.0)
        np.divide(self.logit_bound, t, out=shift)
        if self.kernel == "native":
            tok = self._tokens[:n]
            tok[:] = out
            self._sample(self._ref, n, p.ctypes.data, u.ctypes.data, t.ctypes.data, shift.ctypes.data,
                         self._cdf.ctypes.data, tok.ctypes.data)
            out[:] = tok
            return
        for r in np.flatnonzero(p):
            z = np.exp(self.logits[r].astype(np.float64) / t[r] - shift[r])
            if not z.sum() > 1e-200:
                z = self.logits[r].astype(np.float64) / t[r]
                z = np.exp(z - z.max())
            cdf = np.cumsum(z)
            out[r] = min(int(cdf.searchsorted(u[r] * cdf[-1])), self.vocab - 1)
