"""``rnnkit`` entry point: subcommands are registered by the modules in ``rnnkit.cli``.

Every failure the user can fix (bad input, missing files) is reported as one
``rnnkit: error: ...`` line on stderr with exit status 2; nothing is half-written.
"""
from __future__ import annotations

import argparse
import sys

from . import bench, demo, generate, lm, train, seq2seq

# Each module contributes ``register(subparsers)`` and sets ``func`` on its parser.
COMMAND_MODULES = [demo, train, generate, lm, seq2seq, bench]


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Build, train, inspect and compare recurrent sequence models; generate text with them.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__import__('rnnkit').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"rnnkit: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
