"""Opening the runs a server serves: every kind rnnkit makes, through the loaders its CLI uses.

==============  ===========================================  ===============================
kind            made by                                      opened with
==============  ===========================================  ===============================
``char-stream`` ``rnnkit lm train`` (``--level char``)       `rnnkit.lm.stream.StreamLM.load`
``word-stream`` ``rnnkit lm train --level word``             `rnnkit.lm.stream.StreamLM.load`
``ngram-word``  ``rnnkit train --level word``                `rnnkit.lm.word.WordRun.load`
``seq2seq``     ``rnnkit seq2seq train``                     `rnnkit.seq2seq.translate.Translator.load`
==============  ===========================================  ===============================
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lm.run import RunFolderError, describe_run

KINDS = ("char-stream", "word-stream", "ngram-word", "seq2seq")


@dataclass
class ServedModel:
    """One run as the server holds it. ``engine`` is the loaded object (`StreamLM`, `WordRun`
    or `Translator`); ``generator`` the `rnnkit.serve.scheduler` object completions go through
    (None for seq2seq)."""

    id: str
    kind: str
    path: Path
    engine: Any
    parameters: int
    vocab_size: int | dict
    generator: Any = None
    checkpoint: str | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def is_lm(self) -> bool:
        return self.kind != "seq2seq"

    def training(self) -> dict:
        """The run's headline training figures (read from its files now)."""
        if self.kind in ("char-stream", "word-stream"):
            progress = self.engine.meta.get("progress", {})
            last = next((r for r in reversed(self.curves()["points"]) if "val_loss" in r), {})
            return {"steps": int(progress.get("step", 0)), "elapsed_s": progress.get("elapsed_s"),
                    "best_val_loss": progress.get("best_val"),
                    **{k: v for k, v in last.items() if k.startswith("val_")}}
        if self.kind == "ngram-word":
            epochs = self.curves()["points"]
            return {"epochs": len(epochs), **(epochs[-1] if epochs else {})}
        config = _read_json(self.path / "config.json").get("training", {})
        return {k: config.get(k) for k in ("epochs", "steps", "samples", "seconds", "val")}

    def describe(self) -> dict:
        """This model's entry of ``GET /v1/models``."""
        return {"id": self.id, "object": "model", "owned_by": "rnnkit", "kind": self.kind, "path": str(self.path),
                "checkpoint": self.checkpoint, "parameters": self.parameters, "vocab_size": self.vocab_size,
                "training": self.training()}

    def curves(self) -> dict:
        """The training curves: ``{"source": file name, "points": [record, ...]}``, one record
        per logged step (streaming runs, metrics.jsonl), epoch (n-gram runs, metrics.json) or
        epoch (seq2seq runs, the history in config.json)."""
        if self.kind in ("char-stream", "word-stream"):
            path = self.path / "metrics.jsonl"
            return {"source": path.name, "points": _read_jsonl(path)}
        if self.kind == "ngram-word":
            path = self.path / "metrics.json"
            epochs = _read_json(path).get("epochs", []) if path.is_file() else []
            return {"source": path.name, "points": epochs if isinstance(epochs, list) else []}
        history = _read_json(self.path / "config.json").get("training", {}).get("history", [])
        return {"source": "config.json", "points": history if isinstance(history, list) else []}

    def close(self) -> None:
        if self.generator is not None and not self._closed:
            self.generator.close()
        self._closed = True


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: unreadable ({exc})") from None
    return data if isinstance(data, dict) else {}


def _read_jsonl(path: Path) -> list[dict]:
    """The records of a metrics.jsonl; a line being written by a training still running (the
    last, without its newline yet) is not read."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    for line in lines[:-1]:
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line from a crash mid-write; the training engine skips it too
            if isinstance(record, dict):
                out.append(record)
    return out


def _count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def load_run(path, name: str | None = None, checkpoint: str = "best", max_streams: int = 256) -> ServedModel:
    """Open the run folder ``path`` (any kind rnnkit makes) as a `ServedModel` named ``name``
    (default: the folder's name). Streaming LSTM runs get a `BatchScheduler` of
    ``max_streams`` rows; other language models a `SoloGenerator`. Raises `RunFolderError`,
    `FileNotFoundError` or `ValueError` with one line naming the folder."""
    from .scheduler import make_generator

    path = Path(path)
    what = describe_run(path)
    if what is None:
        raise RunFolderError(f"{path}: not an rnnkit run folder (expected the --out folder of rnnkit train, "
                             f"rnnkit lm train or rnnkit seq2seq train)")
    name = name or path.resolve().name
    if what == "a seq2seq run":
        from ..seq2seq.translate import Translator

        tr = Translator.load(path)
        return ServedModel(name, "seq2seq", path, tr, _count(tr.model),
                           {"input": len(tr.input_vocab), "output": len(tr.output_vocab)})
    if "streaming" in what:
        from ..lm.stream import StreamLM

        lm = StreamLM.load(path, checkpoint)
        model = ServedModel(name, f"{lm.level}-stream", path, lm, _count(lm.model), len(lm.vocab.tokens),
                            checkpoint=lm.source.name)
    else:
        from ..lm.word import WordRun

        run = WordRun.load(path)
        model = ServedModel(name, "ngram-word", path, run, int(run.model.count_params()),
                            int(run.model.layers[-1].units) if hasattr(run.model.layers[-1], "units")
                            else len(run.tokenizer.word_index) + 1)
    model.generator = make_generator(model, max_streams)
    return model
