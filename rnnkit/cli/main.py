"""``rnnkit`` entry point: subcommands are registered by the modules in ``rnnkit.cli``.

Every failure the user can fix (bad input, missing files) is reported as one
``rnnkit: error: ...`` line on stderr with exit status 2; nothing is half-written.
"""
from __future__ import annotations

import argparse
import sys

from . import bench, demo, export, generate, lm, serve, train, seq2seq
from .checks import CLIError

# Each module contributes ``register(subparsers)`` and sets ``func`` on its parser.
COMMAND_MODULES = [demo, train, generate, lm, seq2seq, bench, export, serve]



def build_parser() -> argparse.ArgumentParser:
    from .checks import OneLineParser

    parser = OneLineParser(
        prog="rnnkit",
        description="Build, train, inspect and compare recurrent sequence models; generate text with them.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__import__('rnnkit').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
        if module is generate:
            lm.register_evaluate(sub)  # listed beside generate in rnnkit --help
    return parser


def _is_stream_run(path: str) -> bool:
    import json
    from pathlib import Path

    config = Path(path) / "config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("engine") == "stream"
    except (OSError, ValueError, AttributeError):
        return False


def route(argv: list[str]) -> list[str]:
    """One CLI for both engines: the streaming LM engine lives under ``rnnkit lm``; the
    top-level commands hand over to it.

    - ``train --level char`` and ``train --stream`` (word level) -> ``lm train``
    - ``generate RUN`` on a streaming run folder -> ``lm generate`` (``evaluate`` is its own command)
    """
    if not argv:
        return argv
    cmd, rest = argv[0], list(argv[1:])
    if cmd == "train":
        level = next((rest[i + 1] for i, a in enumerate(rest[:-1]) if a == "--level"), None)
        level = level or next((a.split("=", 1)[1] for a in rest if a.startswith("--level=")), None)
        if "--stream" in rest or level == "char":
            rest = [a for a in rest if a != "--stream"]
            if level is None:
                rest = ["--level", "word"] + rest
            return ["lm", "train"] + rest
    if cmd == "generate":
        run = _first_positional(rest)
        if run is not None and _is_stream_run(run):
            return ["lm", "generate"] + rest
    return argv


def _first_positional(args: list[str]) -> str | None:
    """The first argument that is neither an option nor an option's value (`generate`'s RUN)."""
    valued = _generate_options_with_values()
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--":
            continue
        elif a.startswith("-"):
            skip = "=" not in a and a in valued
        else:
            return a
    return None


def _generate_options_with_values() -> set[str]:
    """Option strings of both `generate` commands (n-gram and streaming) that take a value."""
    from ..lm.stream_cli import add_generate_arguments

    found: set[str] = set()
    for add in (lambda p: add_generate_arguments(p, run_argument=False),
                lambda p: generate.register(p.add_subparsers())):
        parser = argparse.ArgumentParser(add_help=False)
        add(parser)
        parsers = [parser] + [a for act in parser._actions if isinstance(act, argparse._SubParsersAction)
                              for a in act.choices.values()]
        for p in parsers:
            found.update(o for act in p._actions if act.nargs != 0 for o in act.option_strings)
    return found


def _unrecognized(argv: list[str], extra: list[str]) -> str:
    """The one-line error for options the command does not take, naming where its options are
    listed (``rnnkit train --level char --help``), or what the run folder is when ``generate``
    was pointed at one it cannot read."""
    cmd = argv[0] if argv else ""
    if cmd == "generate":
        from ..lm.run import describe_run

        run = _first_positional(argv[1:])
        kind = describe_run(run) if run else None
        if kind == "a seq2seq run":
            return f"{run} is a seq2seq run: translate with it (rnnkit seq2seq translate {run} TEXT)"
    words = ["rnnkit", cmd]
    if cmd in ("lm", "seq2seq") and len(argv) > 1 and not argv[1].startswith("-"):
        words.append(argv[1])
    if cmd == "train":
        level = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--level"), None)
        level = level or next((a.split("=", 1)[1] for a in argv if a.startswith("--level=")), None)
        words += ["--level", level] if level else []
    return f"unrecognized arguments: {' '.join(extra)} (options: {' '.join(words)} --help)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(route(given))
    if extra:
        print(f"rnnkit: error: {_unrecognized(given, extra)}", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, RuntimeError) as exc:  # OSError: a path that is a file, a full disk, ...
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"rnnkit: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
