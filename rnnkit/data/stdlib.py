"""The built-in ``python-stdlib`` corpus: standard-library sources of the running Python.

Always available offline. The module list and its order are fixed; the text is
whatever those modules' source files hold in the running interpreter, so it is
identical from run to run but changes with the Python version (about 3 MB on
CPython 3.11).
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

from .errors import CorpusError

__all__ = ["STDLIB_MODULES", "stdlib_files"]

#: Standard-library modules whose source forms the corpus, in this order
#: (all present in CPython 3.10 and later).
STDLIB_MODULES: tuple[str, ...] = (
    "argparse", "ast", "asyncio.base_events", "calendar", "collections",
    "configparser", "contextlib", "dataclasses", "difflib", "doctest",
    "email._header_value_parser", "enum", "fractions", "functools", "http.client",
    "http.server", "imaplib", "inspect", "ipaddress", "logging",
    "mailbox", "optparse", "os", "pdb", "pickle",
    "pydoc", "random", "shutil", "socket", "ssl",
    "statistics", "subprocess", "tarfile", "threading", "typing",
    "unittest.mock", "urllib.request", "zipfile", "_pydecimal", "_pyio",
)


def stdlib_files() -> list[Path]:
    """Source files of `STDLIB_MODULES`, in order (`pkg/__init__.py` for packages).

    Raises:
        CorpusError: a module's source is missing (e.g. a stripped Python install).
    """
    root = Path(sysconfig.get_path("stdlib"))
    files = []
    for module in STDLIB_MODULES:
        rel = Path(*module.split("."))
        for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
            if candidate.is_file():
                files.append(candidate)
                break
        else:
            raise CorpusError(f"python-stdlib: no source for module {module!r} under {root}")
    return files
