"""Use a trained streaming LM: load a run, generate text, score text.

    >>> from rnnkit.lm.stream import StreamLM, train_stream
    >>> train_stream("runs/shakes", preset="shakespeare-10min")          # doctest: +SKIP
    >>> lm = StreamLM.load("runs/shakes")                                  # doctest: +SKIP
    >>> print(lm.sample("ROMEO:", length=300, temperature=0.8, seed=1))    # doctest: +SKIP
    >>> lm.evaluate(text)   # {'loss': ..., 'bpc': ..., 'perplexity': ...}   # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import torch

from . import checkpoint as ckpt
from .charlm import CharLM, CharLMConfig
from .stream_train import ENGINE, evaluate, loss_report
from .stream_train import train as train_stream
from .streams import Vocab

__all__ = ["StreamLM", "train_stream", "is_stream_run"]


def is_stream_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run folder written by the streaming engine (``config.json`` engine
    ``"stream"``) or one of its checkpoint files."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".safetensors"
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("engine") == ENGINE
    except (OSError, ValueError, AttributeError):
        return False


class StreamLM:
    """A trained model with its vocabulary, ready to generate and score text."""

    def __init__(self, model: CharLM, vocab: Vocab, meta: dict, source: Path):
        self.model, self.vocab, self.meta, self.source = model.eval(), vocab, meta, source

    @property
    def level(self) -> str:
        return self.vocab.level

    @property
    def step(self) -> int:
        return int(self.meta["progress"]["step"])

    @classmethod
    def load(cls, run: str | os.PathLike, checkpoint: str = "best", device: str = "cpu") -> "StreamLM":
        """From a run folder (``checkpoint`` = ``"best"`` or ``"last"``) or a checkpoint file.

        A missing ``best`` (a run stopped before its first evaluation) falls back to ``last``.
        A damaged file raises `CheckpointError` naming it, and the other checkpoint still loads.
        """
        run = Path(run)
        if run.is_file():
            path = run
        elif run.is_dir():
            if checkpoint not in ("best", "last"):
                raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
            path = run / f"{checkpoint}.safetensors"
            other = run / ("last" if checkpoint == "best" else "best")
            other = other.with_suffix(".safetensors")
            if not path.exists() and checkpoint == "best" and other.exists():
                path = other
            if not path.exists():
                raise FileNotFoundError(f"{run}: no checkpoint (expected {path.name}; is this a stream-LM run folder?)")
        else:
            raise FileNotFoundError(f"{run}: no such run folder or checkpoint file")
        try:
            tensors, meta = ckpt.load_checkpoint(path)
        except ckpt.CheckpointError as exc:
            alt = path.with_name("last.safetensors" if path.stem == "best" else "best.safetensors")
            hint = f"; try --checkpoint {alt.stem}" if run.is_dir() and alt.exists() else ""
            raise ckpt.CheckpointError(f"{exc}{hint}") from None
        model = CharLM(CharLMConfig.from_dict(meta["model"]))
        try:
            model.load_state_dict(ckpt.unpack("model", tensors))
        except RuntimeError as exc:
            raise ckpt.CheckpointError(f"{path}: weights do not fit the saved model config ({str(exc).splitlines()[0]})") from None
        return cls(model.to(device), Vocab.from_dict(meta["vocab"]), meta, path)

    # ------------------------------------------------------------ generation
    def encode_prime(self, prime: str | None) -> tuple[list[int], list[str]]:
        """Prime ids and notes on characters (or words) outside the vocabulary; an empty
        prime starts from a newline (see `Vocab.encode_prime`)."""
        ids, notes = self.vocab.encode_prime(prime or "")
        if not ids:
            if prime:
                notes.append("nothing of the prime is in the vocabulary; starting from a newline")
            ids = self.vocab.default_prime()
        return ids, notes

    def stream(self, prime: str | None, length: int, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, seed: int | None = None, precision: str = "fp32") -> Iterator[str]:
        """Yield the text of ``length`` generated tokens one at a time (prime not included).
        The same ``seed`` gives the same text. ``precision`` ``"fp16"``/``"int8"`` packs the
        weights for faster CPU steps (see `rnnkit.lm.charlm.PackedStep`)."""
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        ids, _ = self.encode_prime(prime)
        generator = torch.Generator(device=self.model.head.weight.device)
        generator.manual_seed(0 if seed is None else int(seed))
        prev = ids[-1] if prime else None
        for token in self.model.generate(ids, length, temperature, top_k, top_p, generator, precision):
            yield self.vocab.token_text(token, prev)
            prev = token

    def sample(self, prime: str | None, length: int, **kwargs) -> str:
        """The generated continuation as one string (see `stream`)."""
        return "".join(self.stream(prime, length, **kwargs))

    def complete(self, prime: str | None, length: int, beam_width: int = 5,
                 precision: str = "fp32") -> tuple[str, float]:
        """The most likely continuation by beam search: ``(text, log-probability in nats)``."""
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        ids, _ = self.encode_prime(prime)
        tokens, logp = self.model.beam_search(ids, length, beam_width, precision)
        return self.vocab.decode(tokens, ids[-1] if prime else None), logp

    # ------------------------------------------------------------- scoring
    def score(self, ids, batch_size: int = 32, seq_len: int = 256) -> dict:
        """Loss (nats per token), bits per token and perplexity of predicting ``ids[1:]``."""
        report = loss_report(evaluate(self.model, ids, batch_size, seq_len), self.level)
        report["tokens"] = int(len(ids) - 1)
        return report

    def evaluate(self, text: str, batch_size: int = 32, seq_len: int = 256) -> dict:
        """`score` of ``text``. Tokens outside the vocabulary: unknown characters are left
        out, unknown words score as ``<unk>``; their count is in ``"unknown_tokens"``."""
        ids, missing = self.vocab.encode(text)
        return {**self.score(ids, batch_size, seq_len), "unknown_tokens": int(sum(missing.values()))}
