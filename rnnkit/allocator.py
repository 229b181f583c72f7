"""Keep freed memory for reuse during training: glibc malloc settings.

PyTorch takes CPU tensors straight from ``malloc``. glibc serves a block above its
mmap threshold (128 KiB to start, raised as large blocks are freed) with fresh pages
from the kernel, and hands free memory at the top of its heap back to the kernel once
it exceeds the trim threshold (twice the mmap threshold). A training step allocates and
frees the same few megabytes of activations and gradients every step, so depending on
the order of those frees the process can fault in every page again on every step:
measured here on the seed BiLSTM at batch 32, 1,400–2,700 page faults and a fifth to a
third of each step (the same in hand-written PyTorch, which is just as exposed).

`keep_freed_memory` fixes both thresholds high, so freed blocks are reused instead:
the process then keeps the heap at its peak size, as caching allocators (jemalloc,
tcmalloc, TensorFlow's, PyTorch's own on CUDA) do. glibc maps every block above 32 MiB
(its largest mmap threshold) fresh whatever the threshold says, and an LSTM's oneDNN
workspace passes that at long sequences (width 64, length 512, batch 32: ~9,500 page
faults and a third of each step), so it also turns mmap off for the main heap
(``M_MMAP_MAX`` 0): large blocks then come from the heap too and are reused.

The price: freed memory stays with the process, and a freed block can only be reused
for a request that fits in it. Training repeats the same shapes, so the heap settles
at its peak within a few steps; a process whose large blocks keep growing (a sequence
length raised step after step) while small tensors stay alive between them can grow
its heap several times over (a review measured 1.28 GB against 220 MB for twelve
growing blocks of 10–60 MB). Such runs should set ``RNNKIT_KEEP_FREED_MEMORY=0``. rnnkit's training entry points call
it; set ``RNNKIT_KEEP_FREED_MEMORY=0`` to leave malloc as it is. It does nothing off
glibc (macOS, musl, Windows).
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
#: glibc's largest mmap threshold on 64-bit (HEAP_MAX_SIZE / 2): blocks above it would be mapped
#: anyway, were mapping not turned off as well.
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept before any is returned.
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds and stop it mapping large blocks, for this process (once);
    True when in effect.

    False where malloc is not glibc's or ``RNNKIT_KEEP_FREED_MEMORY=0`` is set."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("RNNKIT_KEEP_FREED_MEMORY", "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl has mallopt as a no-op
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = (bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
                and bool(mallopt(_M_MMAP_MAX, 0)))
    return _applied
