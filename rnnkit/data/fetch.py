"""Downloading a file into the cache, verified, atomically: corpora, and ``keras.utils.get_file``."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from ..utils import atomic_write
from .errors import CorpusError

try:
    from tqdm.auto import tqdm
except ImportError:  # progress display is optional
    tqdm = None

__all__ = ["download", "get_file", "sha256_digest"]

_BLOCK = 1 << 20


def sha256_digest(data: bytes) -> str:
    """Hex SHA-256 digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def _stream(url: str, dest: Path, algorithm: str, expected: str | None, size: int | None, timeout: float) -> None:
    """Streams ``url`` into a temporary file beside ``dest``, renamed over it only when complete and
    (with ``expected``) matching its digest; raises OSError / ValueError, leaving nothing behind."""
    digest = hashlib.new(algorithm)
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
        if expected is not None and digest.hexdigest() != expected.lower():
            raise ValueError(f"downloaded {url} has {algorithm} {digest.hexdigest()}, expected {expected}; not cached")


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
    try:
        _stream(url, dest, "sha256", sha256, size, timeout)
    except ValueError as e:
        raise CorpusError(str(e)) from None
    except OSError as e:  # includes urllib.error.URLError
        reason = getattr(e, "reason", None) or e
        raise CorpusError(
            f"cannot download {url}: {reason} (offline? set RNNKIT_DATA_DIR to a local copy)"
        ) from e
    return dest


def _hash_algorithm(file_hash: str, hash_algorithm: str) -> str:
    if hash_algorithm == "auto":
        return "sha256" if len(file_hash) == 64 else "md5"
    if hash_algorithm not in ("sha256", "md5"):
        raise ValueError(f"get_file: hash_algorithm must be 'auto', 'sha256' or 'md5', got {hash_algorithm!r}")
    return hash_algorithm


def _file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _extract(archive: Path, target: Path, archive_format) -> bool:
    """Unpacks a tar or zip ``archive`` into ``target`` (replacing it) through a temporary folder;
    tar members that would land outside it, links and devices are refused (tarfile's "data" filter)."""
    formats = ["tar", "zip"] if archive_format == "auto" else [archive_format] if isinstance(archive_format, str) \
        else list(archive_format or [])
    for fmt in formats:
        if fmt not in ("tar", "zip"):
            raise ValueError(f"get_file: archive_format must be 'auto', 'tar', 'zip' or None, got {fmt!r}")
        if not (tarfile.is_tarfile if fmt == "tar" else zipfile.is_zipfile)(archive):
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            if fmt == "tar":
                with tarfile.open(archive) as tar:
                    tar.extractall(tmp, filter="data")
            else:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(tmp)  # zipfile drops absolute paths and ".." from member names
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True
    return False


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """Keras's ``keras.utils.get_file``: download ``origin`` into the cache unless it is there, and
    return its path.

    Args:
        fname: file name in the cache (default: the last part of ``origin``'s path); not a path.
        origin: the URL (``https://``, ``http://``, ``file://`` ...).
        file_hash: expected sha256 (or md5) hex digest; a cached file that does not match is
            downloaded again, a download that does not match raises ValueError and is not kept.
        md5_hash: the older spelling of an md5 ``file_hash``.
        hash_algorithm: ``"auto"`` (sha256 for 64 hex digits, else md5), ``"sha256"`` or ``"md5"``.
        cache_dir: the cache's root; default ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras``
            when that is not writable). The file goes to ``cache_dir/cache_subdir``.
        extract / untar: unpack the tar or zip archive (``untar``: tar only) and return the folder
            (``<name>_extracted``, or ``<fname>`` when the name has no suffix, as Keras).
        archive_format: ``"auto"``, ``"tar"``, ``"zip"`` or a list of them.
        force_download: download even when a cached copy exists.

    The download streams into a temporary file renamed into place only when complete and verified.
    """
    if origin is None:
        raise ValueError('get_file: give the "origin" argument (the URL of the file to download)')
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    algorithm = _hash_algorithm(file_hash, hash_algorithm) if file_hash is not None else None
    base = Path(os.path.expanduser(os.fspath(cache_dir)))
    base.mkdir(parents=True, exist_ok=True)
    if not os.access(base, os.W_OK):
        base = Path(tempfile.gettempdir()) / ".keras"
    datadir = base / cache_subdir
    datadir.mkdir(parents=True, exist_ok=True)

    given = fname
    fname = os.fspath(fname) if fname else ""
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"get_file: cannot take a file name from origin {origin!r}; give fname")
    elif os.sep in fname:
        raise ValueError(f"get_file: fname must be a file name, not a path (got {fname!r}); use cache_dir for the folder")

    if extract or untar:
        if given and "." in fname:
            target = datadir / fname
            extraction_dir = datadir / f"{fname[:fname.find('.')]}_extracted"
        else:
            target = datadir / f"{fname}_archive"
            extraction_dir = datadir / fname
    else:
        target = datadir / fname

    fetch = force_download or not target.exists() or (
        file_hash is not None and _file_digest(target, algorithm) != file_hash.lower())
    if fetch:
        try:
            _stream(origin, target, algorithm or "sha256", file_hash, None, timeout=60.0)
        except ValueError:
            raise ValueError(f"get_file: incomplete or corrupted file from {origin}: its {algorithm} hash does not "
                             f"match {file_hash}; nothing was kept") from None
        except OSError as e:  # includes urllib.error.URLError / HTTPError
            raise OSError(f"get_file: URL fetch failure on {origin}: {getattr(e, 'reason', None) or e}") from e

    if extract or untar:
        if not _extract(target, extraction_dir, "tar" if untar else archive_format):
            raise ValueError(f"get_file: {target.name} is not a {'tar' if untar else 'tar or zip'} archive")
        return os.fspath(extraction_dir)
    return os.fspath(target)
