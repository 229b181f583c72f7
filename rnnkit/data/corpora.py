"""`load_corpus`: a named corpus, the built-in stdlib corpus, or local text files, as one string.

Named corpora are looked up, in order, in

1. ``$RNNKIT_DATA_DIR`` -- an offline mirror laid out as ``tiny-shakespeare.txt``,
   ``sonnets.txt``, ``irish-lyrics-eof.txt``, ``wikitext-2/{train,valid,test}.txt``,
   ``ptb/{train,valid,test}.txt``;
2. the cache, ``$RNNKIT_CACHE/corpora`` (default ``~/.cache/rnnkit/corpora``), same layout;
3. the network: downloaded from the file's URL into the cache.

Whatever the source, the bytes must match the registered SHA-256 or a
`CorpusError` is raised; a mismatching file is never used.
"""
from __future__ import annotations

import codecs
import os
from pathlib import Path

from .errors import CorpusError
from .fetch import download, sha256_digest
from .registry import STDLIB_CORPUS, CorpusFile, corpus_info, list_corpora
from .stdlib import stdlib_files

__all__ = ["load_corpus", "corpus_key", "cache_dir", "decode_text"]

_BOM = codecs.BOM_UTF8


def cache_dir() -> Path:
    """Folder where downloaded corpora are kept: ``$RNNKIT_CACHE/corpora``
    (default ``~/.cache/rnnkit/corpora``)."""
    base = os.environ.get("RNNKIT_CACHE") or Path.home() / ".cache" / "rnnkit"
    return Path(base) / "corpora"


def decode_text(data: bytes, source: str | os.PathLike, errors: str = "strict") -> str:
    """Decodes UTF-8 `data`, dropping one leading byte-order mark.

    Args:
        data: Raw bytes.
        source: Name used in error messages (usually the file path).
        errors: Codec error handler: `"strict"`, `"replace"`, `"ignore"`, ...
            Defaults to `"strict"`.

    Raises:
        CorpusError: undecodable bytes under `"strict"` (the message gives
            the byte offset in `data`), or an unknown `errors` handler.
    """
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise CorpusError(f"unknown errors handler {errors!r}; use 'strict', 'replace' or 'ignore'") from None
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[skip:].decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{source}: invalid UTF-8 byte(s) {data[skip + e.start:skip + e.end]!r} "
            f"at byte offset {skip + e.start}; pass errors='replace' (command line: --decode-errors replace) "
            f"to substitute them"
        ) from None


def corpus_key(name_or_path: str | os.PathLike) -> str:
    """How a run records its corpus: a name as is (names win over same-named paths, as in
    `load_corpus`), an existing file or folder as its absolute path, so the run can be
    resumed or evaluated from any working directory."""
    key = os.fspath(name_or_path)
    if key == STDLIB_CORPUS or key in list_corpora() or not Path(key).exists():
        return key
    return str(Path(key).resolve())


def load_corpus(name_or_path: str | os.PathLike, split: str | None = None, errors: str = "strict") -> str:
    """Loads a corpus as one string.

    Args:
        name_or_path: A name from `list_corpora()` (names win over same-named
            paths; write ``./name`` for the file), the built-in
            `"python-stdlib"`, a text file, or a folder whose ``*.txt`` files
            (sorted by name, not recursive) are concatenated.
        split: `"train"`, `"valid"` or `"test"` for corpora with splits
            (`wikitext-2`, `ptb`; defaults to `"train"` there). Must be `None`
            otherwise. Defaults to `None`.
        errors: UTF-8 decoding error handler, e.g. `"strict"` or `"replace"`.
            Defaults to `"strict"`.

    Returns:
        The text, with one leading UTF-8 BOM removed per file and line endings
        untouched. When several files are concatenated, a newline is added
        after any file that does not end with one.

    Raises:
        CorpusError: unknown name, bad split, missing file, checksum mismatch,
            failed download, or undecodable bytes (with file and byte offset).
    """
    key = os.fspath(name_or_path)
    if key == STDLIB_CORPUS:
        _no_split(key, split)
        return _concat([_read(p, errors) for p in stdlib_files()])
    if key in list_corpora():
        entry = _split_file(key, split)
        return _read(_locate(entry), errors, sha256=entry.sha256)
    path = Path(key)
    if path.is_dir():
        _no_split(key, split)
        files = sorted((p for p in path.iterdir() if p.suffix == ".txt" and p.is_file()), key=lambda p: p.name)
        if not files:
            raise CorpusError(f"{path}: folder holds no .txt files")
        return _concat([_read(p, errors) for p in files])
    if path.is_file():
        _no_split(key, split)
        return _read(path, errors)
    raise CorpusError(
        f"unknown corpus {key!r} (not a file or folder either); known corpora: {', '.join(list_corpora())}"
    )


def _no_split(key: str, split: str | None) -> None:
    if split is not None:
        raise CorpusError(f"corpus {key!r} has no splits; got split={split!r}")


def _split_file(name: str, split: str | None) -> CorpusFile:
    info = corpus_info(name)
    if not info.splits:
        _no_split(name, split)
        return info.files[None]
    split = "train" if split is None else split
    if split not in info.files:
        raise CorpusError(f"corpus {name!r} has no split {split!r}; splits: {', '.join(info.splits)}")
    return info.files[split]


def _locate(entry: CorpusFile) -> Path:
    """Path of a named corpus file: in the mirror, else in the cache (downloaded if absent)."""
    mirror = os.environ.get("RNNKIT_DATA_DIR")
    if mirror and (Path(mirror) / entry.path).is_file():
        return Path(mirror) / entry.path
    cached = cache_dir() / entry.path
    if not cached.is_file():
        download(entry.url, cached, entry.sha256, size=entry.size)
    return cached


def _read(path: Path, errors: str, sha256: str | None = None) -> str:
    """Text of one file, its SHA-256 checked first when `sha256` is given."""
    data = Path(path).read_bytes()
    if sha256 is not None and (actual := sha256_digest(data)) != sha256:
        raise CorpusError(
            f"{path}: sha256 {actual} does not match expected {sha256}; "
            "the file is corrupt or not this corpus (delete it to re-download)"
        )
    return decode_text(data, path, errors)


def _concat(texts: list[str]) -> str:
    """Joins the texts of several files, adding a newline after any that lacks one."""
    return "".join(t + "\n" if t and not t.endswith("\n") else t for t in texts)
