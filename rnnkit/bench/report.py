"""Text tables and the PNG plot of a bench result (the dict `rnnkit.bench.run` returns)."""
from __future__ import annotations

from pathlib import Path

from ..utils import atomic_write_bytes


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def results_table(result: dict) -> str:
    """One row per candidate and length: parameters, time per step, samples/s, time vs Dense, peak memory."""
    rows = []
    for r in result["results"]:
        mem = "n/a" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.1f}"
        vs = "n/a" if r["time_vs_dense"] is None else f"{r['time_vs_dense']:.2f}x"
        rows.append([r["cell"], str(r["seq_len"]), f"{r['params']:,}", f"{r['ms_per_step']:.2f}",
                     f"{r['samples_per_s']:,.0f}", vs, mem])
    return _table(["cell", "seq_len", "params", "ms/step", "samples/s", "time vs dense", "peak MiB"], rows)


def verdict_table(result: dict) -> str:
    """The notes' claims against this run: measured ratio, confirmed or refuted."""
    rows = [[v["claim"], str(v["seq_len"]), f"{v['ratio']:.2f}", f"{v['tolerance'][0]:.2f}-{v['tolerance'][1]:.2f}",
             v["verdict"]] for v in result["verdicts"]]
    text = _table(["claim (time per step)", "seq_len", "measured", "confirms if in", "verdict"], rows)
    return "\n".join([text] + [f"({note})" for note in result.get("unjudged", [])])


def describe(result: dict) -> str:
    c = result["config"]
    return (f"{c['machine']}; device {c['device']}, {c['threads']} thread(s); batch {c['batch_size']}, "
            f"embedding {c['embedding']}, hidden {c['hidden']}; {c['steps']} timed steps after {c['warmup']} "
            f"warm-up, median of {c['rounds']} alternating rounds; torch {c['torch']}")


def _style(cell: str) -> dict:
    """One colour per layer family; the bidirectional form hatched or dashed."""
    bi = cell.startswith("bi")
    base = cell[2:] if bi else cell
    families = ["dense", "conv1d", "simplernn", "gru", "lstm", "mingru", "minlstm"]
    color = f"C{families.index(base)}" if base in families else "C9"
    return {"color": color, "bi": bi}


def plot(result: dict, path) -> Path:
    """Write a PNG: samples/s per candidate (bars) for one length, time per step against length (lines) for a sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    lens = result["config"]["seq_lens"]
    cells = result["config"]["cells"]
    by = {(r["cell"], r["seq_len"]): r for r in result["results"]}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    if len(lens) == 1:
        rates = [by[(c, lens[0])]["samples_per_s"] for c in cells]
        styles = [_style(c) for c in cells[::-1]]
        bars = ax.barh(cells[::-1], rates[::-1], color=[st["color"] for st in styles])
        for bar, st in zip(bars, styles):
            bar.set_hatch("//" if st["bi"] else "")
        for y, v in enumerate(rates[::-1]):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("training samples/s (log scale; higher is faster)")
        ax.set_title(f"Training throughput at sequence length {lens[0]}")
    else:
        for c in cells:
            st = _style(c)
            ax.plot(lens, [by[(c, n)]["ms_per_step"] for n in lens], marker="o", label=c, color=st["color"],
                    linestyle="--" if st["bi"] else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(lens, [str(n) for n in lens])
        ax.set_xlabel("sequence length")
        ax.set_ylabel("ms per training step (log scale; lower is faster)")
        ax.set_title("Training cost against sequence length")
        ax.legend(fontsize=8, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.text(0.01, 0.01, describe(result), fontsize=6.5, wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
