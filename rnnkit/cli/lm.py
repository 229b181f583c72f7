"""``rnnkit lm train|generate|evaluate``: the streaming language-model engine (characters or words).

    rnnkit lm train --preset shakespeare-10min --out runs/shakes
    rnnkit lm generate runs/shakes --prime "ROMEO:" --length 1000 --temperature 0.8
    rnnkit lm evaluate runs/shakes --corpus tiny-shakespeare --split valid --json eval.json

The options and what they run live in `rnnkit.lm.stream_cli`.
"""
from __future__ import annotations


def register(sub) -> None:
    from ..lm import stream_cli

    p = sub.add_parser("lm", help="streaming char/word language models: train, generate, evaluate")
    lm_sub = p.add_subparsers(dest="lm_command", metavar="ACTION", required=True)
    t = lm_sub.add_parser("train", help="train (or --resume) with the hidden state carried across batches")
    stream_cli.add_train_arguments(t)
    t.set_defaults(func=stream_cli.train_from_args)
    g = lm_sub.add_parser("generate", help="generate from a run: prime fed once, then one token per step")
    stream_cli.add_generate_arguments(g)
    g.set_defaults(func=stream_cli.generate_from_args)
    e = lm_sub.add_parser("evaluate", help="loss, bits per character and perplexity of a run on any text")
    stream_cli.add_evaluate_arguments(e)
    e.set_defaults(func=stream_cli.evaluate_from_args)


def register_evaluate(sub) -> None:
    """``rnnkit evaluate RUN``: the same command as ``rnnkit lm evaluate``, at the top level."""
    from ..lm import stream_cli

    e = sub.add_parser("evaluate", help="loss, bits per character and perplexity of a language-model run on any "
                                        "text (rnnkit lm evaluate)")
    stream_cli.add_evaluate_arguments(e)
    e.set_defaults(func=stream_cli.evaluate_from_args)
