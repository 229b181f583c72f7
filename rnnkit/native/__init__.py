"""rnnkit's C kernels: compiled at first use with the system's C compiler, cached, loaded with ctypes.

They are optional. Where there is no C compiler, the CPU is not an x86-64 with AVX2 and FMA,
the system is not Linux (the kernels share PyTorch's OpenMP runtime, ``libgomp``), or the
environment sets ``RNNKIT_NATIVE=0``, `library` returns None, `unavailable` says why, and
callers keep their numpy/PyTorch paths, which compute the same numbers more slowly.

The compiled library is cached under ``$RNNKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/rnnkit``,
else ``~/.cache/rnnkit``, named by a hash of the source (and the shared headers), the compiler and the flags: an edited
source or another compiler builds anew. It is written to a temporary name and renamed into
place, so a build killed halfway or two processes building at once leave no broken file.
``CC`` picks the compiler (default ``cc``).

Kernels (C sources next to this file):

* ``lstm_step``: one generation step of a stacked LSTM for one stream, and a sampling loop
  over it (`rnnkit.lm.fastgen`).
* ``lstm_batch``: one generation step of a stacked LSTM for a batch of streams, each stream's
  numbers independent of the batch, and plain sampling for each (`rnnkit.lm.batchgen`).
* ``minrnn_scan``: MinGRU / MinLSTM training over whole sequences, gates and recurrence
  in one pass forward and one backward (`rnnkit.layers.minrnn`).
* ``dropout``: dropout masks from a counter-based hash, forward and backward
  (`rnnkit.layers._dropout`).
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch  # noqa: F401  (loaded first, so the kernels bind to PyTorch's OpenMP runtime)

__all__ = ["library", "unavailable", "build", "cache_dir", "FLAGS", "NativeUnavailable"]

#: Compiler flags of every kernel.
FLAGS = ("-O3", "-mavx2", "-mfma", "-fopenmp", "-fPIC", "-shared")
_HERE = Path(__file__).resolve().parent


class NativeUnavailable(RuntimeError):
    """A kernel cannot be built or loaded here; the message says why (one line)."""


def cache_dir() -> Path:
    """Where compiled kernels are kept (see the module docstring)."""
    if os.environ.get("RNNKIT_CACHE_DIR"):
        return Path(os.environ["RNNKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit"


def _platform_problem() -> str | None:
    if os.environ.get("RNNKIT_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return "disabled by RNNKIT_NATIVE=0"
    if not sys.platform.startswith("linux"):
        return f"rnnkit's C kernels are built on Linux only, not {sys.platform}"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"rnnkit's C kernels need an x86-64 CPU, not {platform.machine()}"
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        return f"rnnkit's C kernels need AVX2 and FMA; PyTorch reports this CPU as {capability}"
    return None


def build(name: str, directory: Path | None = None, compiler: str | None = None) -> Path:
    """Compile kernel ``name`` (``<name>.c`` next to this module) into ``directory``, unless a
    build of the same source, compiler and flags is there already; returns its path.

    Raises `NativeUnavailable` (one line: what failed) when the compiler is missing or fails.
    """
    source = _HERE / f"{name}.c"
    if not source.is_file():
        raise NativeUnavailable(f"no C source for kernel {name!r} at {source}")
    compiler = compiler or os.environ.get("CC") or "cc"
    words = shlex.split(compiler)  # CC may carry a wrapper or flags: "ccache gcc", "gcc -m64"
    exe = shutil.which(words[0]) if words else None
    if exe is None:
        raise NativeUnavailable(f"no C compiler: {compiler!r} is not on PATH (set CC to one)")
    command = [exe, *words[1:]]
    try:
        version = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"the C compiler {exe} does not run: {e}") from None
    headers = [h.read_text(encoding="utf-8") for h in sorted(_HERE.glob("*.h"))]  # included by the sources
    key = hashlib.sha256("\0".join([source.read_text(encoding="utf-8"), *headers, *command, version, *FLAGS])
                         .encode())
    directory = (Path(directory) if directory is not None else cache_dir()).resolve()
    target = directory / f"{name}-{key.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=directory)
        os.close(fd)
    except OSError as e:
        raise NativeUnavailable(f"cannot write the compiled kernel to {directory}: {e.strerror or e}") from None
    try:
        done = subprocess.run([*command, *FLAGS, "-o", tmp, str(source), "-lm"], capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            raise NativeUnavailable(f"{Path(exe).name} could not build {source.name}: "
                                    f"{lines[0] if lines else f'exit status {done.returncode}'}")
        _check_library(tmp, f"{Path(exe).name} reported success but wrote no usable library for {source.name}")
        os.chmod(tmp, 0o755 & ~_umask())  # mkstemp made it private; others sharing the cache must read it
        with open(tmp, "rb") as fh:  # on disk before it takes its final name: a crash leaves no empty file
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except subprocess.TimeoutExpired:
        raise NativeUnavailable(f"{Path(exe).name} took over 300 s to build {source.name}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _umask() -> int:
    """The process's umask, read without setting it (``os.umask`` sets it, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_library(path: str, message: str) -> None:
    """Raise `NativeUnavailable` (``message``) unless ``path`` loads as a shared library."""
    import ctypes

    try:
        if os.path.getsize(path) == 0:
            raise OSError("empty file")
        ctypes.CDLL(path)
    except OSError as e:
        raise NativeUnavailable(f"{message} ({e})") from None


@functools.lru_cache(maxsize=None)
def _load(name: str):
    import ctypes

    problem = _platform_problem()
    if problem:
        return None, problem
    try:
        return ctypes.CDLL(str(build(name))), None
    except NativeUnavailable as e:
        return None, str(e)
    except OSError as e:  # the dynamic loader refused the file
        return None, f"cannot load the compiled kernel {name}: {e}"


def library(name: str = "lstm_step"):
    """The loaded kernel library (a ``ctypes.CDLL``), or None where it is unavailable (`unavailable`)."""
    return _load(name)[0]


def unavailable(name: str = "lstm_step") -> str | None:
    """None when kernel ``name`` is loaded, else why it is not (one line)."""
    return _load(name)[1]
