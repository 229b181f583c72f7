"""``rnnkit generate``: continue a prime with a trained run's model and print the text.

The run folder's ``config.json`` names its level; the generator for that
level (in `GENERATORS`) does the work through the Python API.

    rnnkit generate runs/sonnets --prime "Shall I compare thee" --words 100 --temperature 0.8 --seed 1
    rnnkit generate runs/sonnets --prime "Shall I compare thee" --words 20 --beam-width 5
"""
from __future__ import annotations

import argparse

from ..lm.run import RunFolder, warn
from ..lm.word import WordRun
from .checks import non_negative_float, non_negative_int, positive_int, seed_int, share
from .train import set_threads, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "generate", help="generate text from a trained run (rnnkit train --out RUN)",
        description="Continue --prime by --words tokens with the model of a run folder. Temperature 0 is greedy; "
                    "a fixed --seed gives the same text every time; --beam-width > 1 searches for the most likely text. "
                    "The options below are those of n-gram runs (rnnkit train --level word); streaming runs "
                    "(--level char, or --stream) take those of `rnnkit lm generate --help`: --length N tokens "
                    "(--words N too at the word level), --precision, --num-samples, --checkpoint.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder written by `rnnkit train`")
    p.add_argument("--prime", default="", metavar="TEXT", help="text to continue (default: none)")
    p.add_argument("--words", type=non_negative_int, default=50, metavar="N", help="words to generate (default: 50)")
    p.add_argument("--temperature", type=non_negative_float, metavar="T",
                   help="0 = always the most likely word; higher = freer (default: 1.0)")
    p.add_argument("--top-k", type=positive_int, metavar="K", help="sample among the K most likely words only")
    p.add_argument("--top-p", type=share, metavar="P", help="sample among the most likely words holding P of the probability")
    p.add_argument("--beam-width", type=positive_int, default=1, metavar="W",
                   help="beam search with W beams (deterministic; default 1 = sampling)")
    p.add_argument("--seed", type=seed_int, help="seed for sampling: the same seed gives the same text (default: random, "
                   "reported in --json)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .checks import check_writable
    from .checks import CLIError

    check_writable("--json", args.json)
    level = RunFolder.open(args.run_dir).read_config().get("level")
    generator = GENERATORS.get(level)
    if generator is None:
        raise CLIError(f"{args.run_dir} holds a {level!r}-level run; this rnnkit generates from: {', '.join(GENERATORS)}")
    if args.beam_width > 1 and args.temperature is not None:
        raise CLIError("--beam-width > 1 searches deterministically; drop --temperature (or use --beam-width 1)")
    set_threads(args.threads)
    result = generator(args)
    print(result["text"])
    if args.json:
        write_json(args.json, result)
    return 0


def generate_word(args: argparse.Namespace) -> dict:
    run = WordRun.load(args.run_dir)
    temperature = 1.0 if args.temperature is None else args.temperature
    gen = run.generate(args.prime, words=args.words, temperature=temperature, top_k=args.top_k,
                       top_p=args.top_p, beam_width=args.beam_width, seed=args.seed)
    if gen.unknown_words:
        oov = run.tokenizer.oov_token
        fate = f"read as the OOV token {oov!r}" if oov is not None else "dropped"
        warn(f"prime word(s) not in the run's vocabulary, {fate}: {', '.join(gen.unknown_words)}")
    return {"run": str(run.folder.path), "level": "word", **gen.to_dict(),
            "temperature": temperature if args.beam_width == 1 else None,
            "top_k": args.top_k, "top_p": args.top_p, "beam_width": args.beam_width, "window": run.window}


GENERATORS = {"word": generate_word}
