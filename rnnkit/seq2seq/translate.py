"""Inference: text in, text (and attention weights) out, and the held-out scores.

Inputs longer than the model's ``Tx`` are refused with an error, not truncated:
cutting "Wednesday, 30th of September 2015" to 30 characters drops the year,
and a confident wrong date is worse than no answer. Characters outside the
input vocabulary are read as ``<unk>`` (``Translator.unknown`` lists them so a
caller can warn). Empty inputs are errors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .model import Seq2Seq
from .vocab import Vocab


@dataclass
class Translation:
    """One translated input with its attention map.

    ``weights[i, j]`` is how much output symbol ``output_tokens[i]`` attended to
    input symbol ``input_tokens[j]`` (rows sum to 1 when the model masks padding)."""

    source: str
    output: str
    input_tokens: list[str]
    output_tokens: list[str]
    weights: np.ndarray


def score(predictions: list[str], targets: list[str]) -> dict:
    """``exact_match``: fraction of predictions equal to their target; ``char_accuracy``:
    fraction of character positions that match, counted over the longer of the two
    strings of each pair (so missing and extra characters both count as errors)."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    if not targets:
        raise ValueError("nothing to score: no pairs")
    exact = sum(p == t for p, t in zip(predictions, targets))
    right = sum(sum(a == b for a, b in zip(p, t)) for p, t in zip(predictions, targets))
    total = sum(max(len(p), len(t)) for p, t in zip(predictions, targets))
    return {"exact_match": exact / len(targets), "char_accuracy": right / max(total, 1), "n": len(targets)}


class Translator:
    """A trained model with its vocabularies. ``Translator.load(run_dir)`` reads a checkpoint."""

    def __init__(self, model: Seq2Seq, input_vocab: Vocab, output_vocab: Vocab):
        self.model = model
        self.input_vocab = input_vocab
        self.output_vocab = output_vocab

    @classmethod
    def load(cls, run_dir: str | Path) -> "Translator":
        from . import checkpoint

        model, inp, out, _ = checkpoint.load(run_dir)
        return cls(model, inp, out)

    @property
    def tx(self) -> int:
        return self.model.config.tx

    def unknown(self, texts: list[str]) -> list[str]:
        """Characters of ``texts`` that the input vocabulary lacks (read as ``<unk>``)."""
        return list(dict.fromkeys(c for t in texts for c in self.input_vocab.unknown(t)))

    def check(self, text: str) -> None:
        """Raise ``ValueError`` for an input this model cannot translate (empty, or longer than Tx)."""
        if not text.strip():
            raise ValueError("empty input: give the text to translate")
        n = len(self.input_vocab.normalize(text))
        if n > self.tx:
            raise ValueError(f"input {text!r} has {n} characters; this model reads at most Tx={self.tx} "
                             f"and refuses longer inputs rather than truncating them")

    def encode(self, texts: list[str]) -> torch.Tensor:
        for text in texts:
            self.check(text)
        return torch.from_numpy(self.input_vocab.encode(texts, self.tx, "input"))

    def _generate(self, x: torch.Tensor, beam_width: int):
        was_training = self.model.training
        self.model.eval()
        try:
            c = self.model.config
            if c.mask_padding and c.pad_id is not None:
                # Masked steps get zero weight and leave the encoder untouched: cut them.
                x = x[:, : max(1, int((x != c.pad_id).sum(1).max()))]
            return self.model.generate(x, beam_width=beam_width)
        finally:
            self.model.train(was_training)

    def translate_texts(self, texts: list[str], beam_width: int = 1, batch_size: int = 512) -> list[str]:
        """The output text of each input, in order."""
        x = self.encode(texts)
        out = []
        for i in range(0, len(texts), batch_size):
            ids, _ = self._generate(x[i : i + batch_size], beam_width)
            out.extend(self.output_vocab.decode(row) for row in ids.numpy())
        return out

    def translate(self, texts: list[str], beam_width: int = 1) -> list[Translation]:
        """Outputs with their attention maps (rows: output symbols up to the end; columns:
        the normalised input characters)."""
        x = self.encode(texts)
        ids, weights = self._generate(x, beam_width)
        results = []
        for text, row, w in zip(texts, ids.numpy(), weights.numpy()):
            output = self.output_vocab.decode(row)
            chars = list(self.input_vocab.normalize(text))
            n_out = len(output) + (1 if len(output) < len(row) else 0)  # include the end symbol
            results.append(Translation(text, output, chars, self.output_vocab.tokens(row[:n_out]),
                                       w[:n_out, : len(chars)]))
        return results
