"""A run directory: what ``train`` writes and ``translate``/``evaluate`` read.

    model.safetensors   the weights (``Seq2Seq.state_dict()``, PyTorch layout)
    trainer.safetensors what ``--resume`` needs: Adam's moments, torch's RNG state, and in
                        its metadata the shuffling RNG's state and the loop's counters
    config.json         format, model config, both vocabularies, task, training record,
                        and the SHA-256 of both safetensors files
    heldout.tsv         the held-out test pairs (source<TAB>target), for ``evaluate``

Each file is written atomically (temporary file, fsync, rename); config.json is
written last and names the weights it belongs to, so a crash between the
writes is detected on load instead of pairing new weights with an old config.
Nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..utils import atomic_write_bytes, atomic_write_text
from .model import Seq2Seq, Seq2SeqConfig
from .tasks import Pair, read_pairs
from .vocab import Vocab

FORMAT = "rnnkit-seq2seq/1"
WEIGHTS, CONFIG, HELDOUT, TRAINER = "model.safetensors", "config.json", "heldout.tsv", "trainer.safetensors"


def exists(run_dir: str | Path) -> bool:
    return (Path(run_dir) / CONFIG).exists()


def save(run_dir: str | Path, model: Seq2Seq, input_vocab: Vocab, output_vocab: Vocab, task: dict,
         training: dict, trainer: tuple[dict, dict] | None = None) -> None:
    """Write the weights (and ``trainer``: tensors and JSON-able metadata), then the config
    that names them."""
    run = Path(run_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = st_save(tensors, metadata={"format": FORMAT})
    atomic_write_bytes(run / WEIGHTS, data)
    trainer_sha = None
    if trainer is not None:
        trainer_tensors, trainer_meta = trainer
        trainer_data = st_save(trainer_tensors, metadata={"format": FORMAT, "state": json.dumps(trainer_meta)})
        atomic_write_bytes(run / TRAINER, trainer_data)
        trainer_sha = hashlib.sha256(trainer_data).hexdigest()
    config = {
        "format": FORMAT,
        "model": model.config.to_json(),
        "input_vocab": input_vocab.to_json(),
        "output_vocab": output_vocab.to_json(),
        "task": task,
        "training": training,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
        "trainer_sha256": trainer_sha,
    }
    atomic_write_text(run / CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def write_heldout(run_dir: str | Path, pairs: list[Pair]) -> None:
    atomic_write_text(Path(run_dir) / HELDOUT, "".join(f"{s}\t{t}\n" for s, t in pairs))


def read_heldout(run_dir: str | Path) -> list[Pair]:
    path = Path(run_dir) / HELDOUT
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; pass --pairs FILE to evaluate on other pairs")
    return read_pairs(path)


def read_config(run_dir: str | Path) -> dict:
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise ValueError(f"{run} is a file; expected a run directory written by rnnkit seq2seq train --out")
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {run} does not exist (make one with: rnnkit seq2seq train --out {run})")
    path = run / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run} holds no seq2seq run: {CONFIG} is missing")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path} is not an rnnkit seq2seq config (expected format {FORMAT!r})")
    return config


def load_trainer(run_dir: str | Path, config: dict) -> tuple[dict, dict]:
    """``(tensors, metadata)`` of a run's trainer state, checked against its config."""
    path = Path(run_dir) / TRAINER
    if not config.get("trainer_sha256"):
        raise ValueError(f"{Path(run_dir)} has no trainer state to resume from (saved by an older rnnkit)")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing, so the run cannot be resumed")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != config["trainer_sha256"]:
        raise ValueError(f"{path} does not match {Path(run_dir) / CONFIG} (interrupted save or edited file)")
    try:
        tensors = st_load(data)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        meta = json.loads(header["__metadata__"]["state"])
    except (SafetensorError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable trainer state ({exc})") from None
    return tensors, meta


def load(run_dir: str | Path) -> tuple[Seq2Seq, Vocab, Vocab, dict]:
    """``(model in eval mode, input vocab, output vocab, config)`` of a run directory."""
    run = Path(run_dir)
    config = read_config(run)
    weights = run / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing")
    data = weights.read_bytes()
    if hashlib.sha256(data).hexdigest() != config.get("weights_sha256"):
        raise ValueError(f"{weights} does not match {run / CONFIG} (interrupted save or edited file); "
                         f"retrain or restore both")
    try:
        tensors = st_load(data)
    except SafetensorError as exc:
        raise ValueError(f"{weights} is not a readable safetensors file ({exc})") from None
    input_vocab, output_vocab = Vocab.from_json(config["input_vocab"]), Vocab.from_json(config["output_vocab"])
    try:
        model = Seq2Seq(Seq2SeqConfig(**config["model"]))
    except TypeError as exc:
        raise ValueError(f"{run / CONFIG} has an invalid model config ({exc})") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        detail = str(exc).splitlines()[-1].strip()
        raise ValueError(f"{weights} does not fit the model described in {CONFIG}: {detail}") from None
    model.eval()
    return model, input_vocab, output_vocab, config

