"""Downloading a corpus file into the cache, verified, atomically."""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from ..utils import atomic_write
from .errors import CorpusError

try:
    from tqdm.auto import tqdm
except ImportError:  # progress display is optional
    tqdm = None

__all__ = ["download", "sha256_digest"]

_BLOCK = 1 << 20


def sha256_digest(data: bytes) -> str:
    """Hex SHA-256 digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def download(url: str, dest: str | Path, sha256: str, size: int | None = None, timeout: float = 60.0) -> Path:
    """Fetches `url` into `dest`, verifying its SHA-256 before it appears there.

    The bytes stream into a temporary file beside `dest` (with a tqdm progress
    bar when tqdm is installed and stderr is a terminal); only a complete,
    verified download is renamed to `dest`, so a failure leaves nothing behind.

    Args:
        url: Any URL `urllib` opens (`https://`, `file://`, ...).
        dest: Destination path; parent folders are created.
        sha256: Expected hex digest.
        size: Expected size in bytes, for the progress bar. Defaults to `None`.
        timeout: Socket timeout in seconds. Defaults to `60.0`.

    Returns:
        `dest` as a `Path`.

    Raises:
        CorpusError: network/IO failure or digest mismatch.
    """
    dest = Path(dest)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dest) as out:
            bar = None
            if tqdm is not None:
                total = size or int(response.headers.get("Content-Length") or 0) or None
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None)
            try:
                while block := response.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
            if digest.hexdigest() != sha256:
                raise CorpusError(
                    f"downloaded {url} has sha256 {digest.hexdigest()}, expected {sha256}; not cached"
                )
    except OSError as e:  # includes urllib.error.URLError
        reason = getattr(e, "reason", None) or e
        raise CorpusError(
            f"cannot download {url}: {reason} (offline? set RNNKIT_DATA_DIR to a local copy)"
        ) from e
    return dest
