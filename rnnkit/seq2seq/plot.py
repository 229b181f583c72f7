"""Attention heatmaps as PNG (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

from ..utils import atomic_write
from .translate import Translation


def _label(token: str) -> str:
    return "␣" if token == " " else token


def plot_attention(t: Translation, path: str | Path, dpi: int = 120) -> None:
    """Write a heatmap of ``t.weights``: input characters across, output symbols down."""
    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"attention plots are PNG files; got {str(path)!r} (use a .png name)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_out, n_in = t.weights.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * n_in + 2.0), max(3.0, 0.32 * n_out + 1.6)))
    try:
        im = ax.imshow(t.weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(n_in), [_label(c) for c in t.input_tokens])
        ax.set_yticks(range(n_out), [_label(c) for c in t.output_tokens])
        ax.set_xlabel("input")
        ax.set_ylabel("output")
        ax.set_title(f"{t.source!r} -> {t.output!r}", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
        fig.tight_layout()
        with atomic_write(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi)
    finally:
        plt.close(fig)
