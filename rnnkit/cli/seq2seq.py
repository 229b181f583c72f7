"""``rnnkit seq2seq``: train, translate with and evaluate attention sequence-to-sequence models.

    rnnkit seq2seq train --task dates --out runs/dates [--minutes M | --epochs N]
    rnnkit seq2seq train --pairs FILE.tsv --out runs/mine
    rnnkit seq2seq train --task dates --out runs/dates --epochs 20 --resume   (same settings: go on)
    rnnkit seq2seq translate runs/dates "Saturday May 9 2018" [--plot attention.png]
    rnnkit seq2seq translate runs/dates < dates.txt        (one output line per input line)
    rnnkit seq2seq evaluate runs/dates [--json scores.json]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .checks import check_writable, non_negative_int, positive_float, positive_int, seed_int

DEFAULT_MINUTES = 3.0


def register(sub) -> None:
    p = sub.add_parser("seq2seq", help="attention sequence-to-sequence models (date normalisation, your own pairs)",
                       description="Train, translate with and evaluate attention sequence-to-sequence models.")
    cmds = p.add_subparsers(dest="seq2seq_command", metavar="ACTION", required=True)

    t = cmds.add_parser("train", help="train a model and write a run directory")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--task", choices=["dates"], help="built-in task (default: dates)")
    src.add_argument("--pairs", metavar="FILE.tsv", help="train on tab-separated source/target pairs (character level)")
    t.add_argument("--out", required=True, help="run directory to write (model.safetensors, config.json, heldout.tsv)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float,
                        help=f"wall-time budget (default {DEFAULT_MINUTES:g} when no --epochs)")
    budget.add_argument("--epochs", type=positive_int, help="passes over the training pairs")
    t.add_argument("--preset", choices=["course", "dates", "pairs"],
                   help="model and training settings (default: dates for --task dates, pairs for --pairs); "
                        "'course' is the Coursera model, 52,960 parameters")
    t.add_argument("--train-size", type=positive_int, help="generated training pairs (dates task)")
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--lr", type=positive_float, help="Adam learning rate at the start")
    t.add_argument("--n-a", type=positive_int, help="encoder units per direction")
    t.add_argument("--n-s", type=positive_int, help="decoder units")
    t.add_argument("--cell", choices=["lstm", "gru"])
    t.add_argument("--attention", choices=["additive", "dot", "general"])
    t.add_argument("--decoder-input", choices=["context", "feedback"],
                   help="context: the course's decoder; feedback: also the previous output symbol (teacher forcing)")
    t.add_argument("--embedding-dim", type=non_negative_int, help="input embedding width (0: one-hot inputs)")
    t.add_argument("--tx", type=positive_int, help="input length (dates: 30; pairs: the longest source)")
    t.add_argument("--ty", type=positive_int, help="output length (dates: 10; pairs: the longest target)")
    t.add_argument("--lowercase", action="store_true", help="pairs: lower-case the sources")
    t.add_argument("--seed", type=seed_int, help="seed for the data split, weights and batches (default 0)")
    t.add_argument("--threads", type=non_negative_int, default=1,
                   help="torch CPU threads while training (default 1; 0 keeps torch's own setting)")
    again = t.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last epoch: options not given take the run's "
                            "values, and a different one is refused (--epochs/--minutes count from the run's start)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (epoch lines are still printed)")
    t.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard event files to DIR: each epoch's loss, "
                   "accuracy, validation scores, learning rate and samples/s (needs pip install 'rnnkit[tensorboard]')")
    t.set_defaults(func=run_train)

    r = cmds.add_parser("translate", help="translate TEXT, or each line of stdin")
    r.add_argument("run", help="run directory written by 'seq2seq train'")
    r.add_argument("text", nargs="?", help="text to translate; without it, one input per line is read from stdin")
    r.add_argument("--plot", metavar="PNG", help="write the attention heatmap of TEXT to this PNG file")
    r.add_argument("--beam", type=positive_int, default=1, help="beam width (feedback models; default 1: greedy)")
    r.set_defaults(func=run_translate)

    e = cmds.add_parser("evaluate", help="exact-match and character accuracy on the held-out pairs")
    e.add_argument("run", help="run directory written by 'seq2seq train'")
    e.add_argument("--pairs", metavar="FILE.tsv", help="score these pairs instead of the run's heldout.tsv")
    e.add_argument("--json", metavar="PATH", help="also write the scores as JSON (exact_match, char_accuracy, n)")
    e.add_argument("--beam", type=positive_int, default=1)
    e.set_defaults(func=run_evaluate)


def _model_and_train_settings(args, preset: dict) -> tuple[dict, dict]:
    model = dict(preset["model"])
    for arg, key in (("n_a", "n_a"), ("n_s", "n_s"), ("cell", "cell"), ("attention", "attention"),
                     ("decoder_input", "decoder_input"), ("embedding_dim", "embedding_dim")):
        if getattr(args, arg) is not None:
            model[key] = getattr(args, arg)
    train = dict(preset["train"])
    for arg, key in (("train_size", "train_size"), ("batch_size", "batch_size"), ("lr", "learning_rate")):
        if getattr(args, arg) is not None:
            train[key] = getattr(args, arg)
    return model, train


def _take_the_runs_settings(args, config: dict) -> None:
    """``--resume``: every option not given takes the value the run was trained with, so
    ``--out RUN --resume --epochs N`` is enough; given ones must still match (`train_run`)."""
    task, model, train = config["task"], config["model"], config["training"]["train_config"]
    pairs = task.get("task") == "pairs"
    if args.pairs is None and args.task is None and pairs:
        args.pairs = task.get("path")
    if args.preset is None:
        args.preset = task.get("preset")
    if args.train_size is None and not pairs and not args.pairs:
        args.train_size = task.get("train_size")
    if args.seed is None:
        args.seed = task.get("seed", train.get("seed"))
    for arg in ("n_a", "n_s", "cell", "attention", "decoder_input", "embedding_dim", "tx", "ty"):
        if getattr(args, arg) is None:
            setattr(args, arg, model.get(arg))
    if args.batch_size is None:
        args.batch_size = train.get("batch_size")
    if args.lr is None:
        args.lr = train.get("learning_rate")
    if pairs and not args.lowercase:
        args.lowercase = bool(config.get("input_vocab", {}).get("lowercase"))


def run_train(args) -> int:
    from ..seq2seq import checkpoint
    from ..seq2seq.tasks import PRESETS, dates_task, pairs_task
    from ..seq2seq.train import TrainConfig, train_run
    from .checks import CLIError

    from ..lm.run import RunFolder, describe_run
    from ..utils import check_folder_path

    out = Path(args.out)
    check_folder_path(out)
    if args.tensorboard is not None:  # before anything in --out is replaced
        from ..training.tensorboard import check_log_dir

        check_log_dir(args.tensorboard)
    RunFolder(out).refuse_foreign()
    kind = describe_run(out)
    if kind is not None and kind != "a seq2seq run":
        if args.resume:
            raise CLIError(f"--resume: {out} holds {kind}, not a seq2seq run; continue it with the command that "
                           f"started it")
        if not args.overwrite:
            raise CLIError(f"{out} holds {kind}; pass --overwrite to replace it, or choose another --out")
    if args.resume and not checkpoint.exists(out):
        raise CLIError(f"--resume: {out} holds no seq2seq run to continue")
    if checkpoint.exists(out) and not (args.overwrite or args.resume):
        raise CLIError(f"{out} already holds a trained run; pass --resume to continue it or --overwrite to replace it")
    if args.resume:
        _take_the_runs_settings(args, checkpoint.read_config(out))
    if args.seed is None:
        args.seed = 0
    preset_name = args.preset or ("pairs" if args.pairs else "dates")
    preset = PRESETS[preset_name]
    model_kwargs, train_kwargs = _model_and_train_settings(args, preset)
    train_size = train_kwargs.pop("train_size", None)
    cfg = TrainConfig(**train_kwargs, seed=args.seed, threads=args.threads or None, epochs=args.epochs,
                      minutes=args.minutes if args.minutes is not None or args.epochs else DEFAULT_MINUTES)
    if args.pairs:
        if args.train_size is not None:
            raise CLIError("--train-size applies to generated tasks, not to --pairs")
        data = pairs_task(args.pairs, seed=args.seed, tx=args.tx, ty=args.ty, lowercase=args.lowercase)
    else:
        data = dates_task(train_size=train_size, seed=args.seed, tx=args.tx or 30, ty=args.ty or 10,
                          vocab=preset.get("vocab", "dates"))
    print(f"task: {data.spec['task']}, {len(data.train):,} training / {len(data.val):,} validation / "
          f"{len(data.test):,} held-out pairs; vocabularies {len(data.input_vocab)} in, {len(data.output_vocab)} out; "
          f"Tx={data.tx}, Ty={data.ty}", flush=True)
    try:
        model, record = train_run(out, data, model_kwargs, cfg, progress=not args.no_progress and sys.stderr.isatty(),
                                  extra={"preset": preset_name}, resume=args.resume, replace=args.overwrite,
                                  tensorboard=args.tensorboard)
    except (ValueError, FileNotFoundError) as exc:
        if not args.resume:
            raise
        raise CLIError(str(exc)) from None
    c = model.config
    val = record.get("val") or {}
    print(f"Seq2Seq ({preset_name}): {model.count_params():,} parameters (n_a={c.n_a}, n_s={c.n_s}, {c.cell}, "
          f"{c.attention} attention, {c.decoder_input} decoder); trained {record['seconds']:.0f} s, "
          f"{record['epochs']} epochs, {record['samples']:,} samples"
          + (f"; validation exact match {val['exact_match']:.2%}" if val else ""))
    print(f"run saved to {out} (model.safetensors, trainer.safetensors, config.json, heldout.tsv)")
    return 0


def _read_stdin_lines() -> list[str]:
    return [line.rstrip("\r\n") for line in sys.stdin]


def run_translate(args) -> int:
    from ..seq2seq.translate import Translator
    from .checks import CLIError

    translator = Translator.load(args.run)
    if args.beam < 1:
        raise CLIError(f"--beam must be >= 1, got {args.beam}")
    if args.plot and args.text is None:
        raise CLIError("--plot draws one translation: give the TEXT argument")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise CLIError(f"--plot writes a PNG file; got {args.plot!r} (use a .png name)")
    check_writable("--plot", args.plot)
    texts = [args.text] if args.text is not None else _read_stdin_lines()
    # Blank stdin lines give blank output lines, so output line i answers input line i.
    filled = [i for i, t in enumerate(texts) if t.strip() or args.text is not None]
    for i in filled:
        try:
            translator.check(texts[i])
        except ValueError as exc:
            raise CLIError(f"stdin line {i + 1}: {exc}" if args.text is None else str(exc)) from None
    unknown = translator.unknown(texts)
    if unknown:
        print(f"rnnkit: warning: characters outside the model's vocabulary were read as <unk>: {''.join(unknown)!r}",
              file=sys.stderr)
    if args.text is not None:
        result = translator.translate(texts, beam_width=args.beam)[0]
        print(result.output)
        if args.plot:
            from ..seq2seq.plot import plot_attention

            plot_attention(result, args.plot)
            print(f"attention map written to {args.plot}", file=sys.stderr)
        return 0
    outputs = translator.translate_texts([texts[i] for i in filled], beam_width=args.beam) if filled else []
    answers = [""] * len(texts)
    for i, o in zip(filled, outputs):
        answers[i] = o
    sys.stdout.write("".join(a + "\n" for a in answers))
    return 0


def run_evaluate(args) -> int:
    from ..seq2seq import checkpoint
    from ..seq2seq.tasks import read_pairs
    from ..seq2seq.translate import Translator, score
    from ..utils import atomic_write_text

    check_writable("--json", args.json)
    translator = Translator.load(args.run)
    config = translator.model.config
    # Pairs the model cannot read or write are reported with file and line, not scored.
    pairs = (read_pairs(args.pairs, max_source=config.tx, max_target=config.ty) if args.pairs
             else checkpoint.read_heldout(args.run))
    predictions = translator.translate_texts([s for s, _ in pairs], beam_width=args.beam)
    scores = score(predictions, [t for _, t in pairs])
    print(f"exact match {scores['exact_match']:.2%} ({round(scores['exact_match'] * scores['n'])}/{scores['n']}), "
          f"character accuracy {scores['char_accuracy']:.2%} on {scores['n']:,} "
          f"{'pairs from ' + args.pairs if args.pairs else 'held-out pairs'}")
    if args.json:
        atomic_write_text(args.json, json.dumps(scores, indent=2) + "\n")
    return 0
