"""Weight penalties added to the training loss, as ``keras.regularizers``."""
from __future__ import annotations

import torch


class Regularizer:
    """Maps a weight tensor to a scalar penalty."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w ** 2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = float(l1)
        self.l2 = float(l2)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        penalty = w.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * w.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * w.square().sum()
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1}, l2={self.l2})"


def l1(l1: float = 0.01) -> L1L2:
    return L1L2(l1=l1)


def l2(l2: float = 0.01) -> L1L2:
    return L1L2(l2=l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    return L1L2(l1=l1, l2=l2)


L1 = l1
L2 = l2


def get(identifier):
    """A regularizer from None, an instance, a name (``"l2"``) or a Keras config dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        table = {"l1": l1, "l2": l2, "l1_l2": l1_l2}
        if identifier not in table:
            raise ValueError(f"unknown regularizer {identifier!r}; expected one of l1, l2, l1_l2")
        return table[identifier]()
    if isinstance(identifier, dict):
        cfg = identifier.get("config", {})
        return L1L2(l1=cfg.get("l1", 0.0), l2=cfg.get("l2", 0.0))
    raise ValueError(f"cannot interpret {identifier!r} as a regularizer")


def serialize(reg) -> dict | None:
    if reg is None:
        return None
    return {"class_name": "L1L2", "config": reg.get_config()}
