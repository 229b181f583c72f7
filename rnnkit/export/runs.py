"""Export a run folder of any rnnkit engine (what ``rnnkit export RUN --format onnx OUT`` does).

- streaming char/word LM runs (``rnnkit lm train``): the one-step graph (`lm_step`), vocabulary
  in the metadata;
- n-gram word runs (``rnnkit train --level word``): the Keras model on its fixed window of
  word ids (``window``, int64 ``(batch, W)``, pre-padded with 0) -> next-word probabilities,
  with the tokenizer's words by id;
- seq2seq runs (``rnnkit seq2seq train``): the greedy translation (`seq2seq`).
"""
from __future__ import annotations

import os
from pathlib import Path

from .onnx_file import ExportError

#: ``rnnkit export --format`` choices.
FORMATS = ("onnx",)


def export_run(run: str | os.PathLike, path: str | os.PathLike, format: str = "onnx", checkpoint: str = "best",
               opset_version: int | None = None) -> dict:
    """Export the run in folder ``run`` to ``path``; returns rnnkit's metadata written there.
    ``checkpoint`` (``"best"``/``"last"``) picks a streaming run's checkpoint; other runs have one model."""
    from ..lm.run import describe_run

    if format not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    kind = describe_run(run)
    if kind is None:
        raise ExportError(f"{run} is not an rnnkit run folder (no rnnkit config.json)")
    if "streaming" in kind:
        return _stream(run, path, checkpoint, opset_version)
    if checkpoint != "best":
        raise ExportError(f"checkpoint picks a streaming run's checkpoint; {run} is {kind}, with one model")
    if kind == "a seq2seq run":
        return _seq2seq(run, path, opset_version)
    return _ngram(run, path, opset_version)


def _stream(run, path, checkpoint, opset_version) -> dict:
    from ..lm.stream import StreamLM
    from .lm_step import export_lm_step

    from .onnx_file import read_metadata

    lm = StreamLM.load(run, checkpoint)
    extra = {"run": str(Path(run).name), "checkpoint": lm.source.name, "step": lm.step}
    export_lm_step(lm.model, lm.vocab.to_dict(), path, extra, opset_version)
    return read_metadata(path)


def _ngram(run, path, opset_version) -> dict:
    import torch

    from ..lm.word import WordRun
    from .keras_model import Spec, write_model_onnx
    from .onnx_file import read_metadata

    word = WordRun.load(run)
    tok = word.tokenizer
    with torch.no_grad():
        vocab_size = int(word.model.eval()(torch.zeros(1, word.window, dtype=torch.long)).shape[-1])
    words = [None] + [tok.index_word.get(i) for i in range(1, vocab_size)]
    extra = {"kind": "ngram-word", "run": str(Path(run).name), "window": word.window, "words": words,
             "padding_id": 0, "oov_token": tok.oov_token, "lower": tok.lower, "filters": tok.filters,
             "split": tok.split,
             "outputs": {"output_0": f"float32 (batch, {vocab_size}): next-word probabilities (id 0 is padding)"}}
    write_model_onnx(word.model, path, [Spec((None, word.window), torch.int64, "window")], opset_version, extra)
    return read_metadata(path)


def _seq2seq(run, path, opset_version) -> dict:
    from ..seq2seq import checkpoint
    from .onnx_file import read_metadata
    from .seq2seq import export_seq2seq

    model, inp, out, config = checkpoint.load(run)
    export_seq2seq(model, inp.to_json(), out.to_json(), path, {"run": str(Path(run).name)}, opset_version)
    return read_metadata(path)

