"""Memory of n-gram next-word training sets: one-hot labels vs sparse arrays.

    RNNKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/text_memory.py [--max-len 32]

1. Sonnets (the course corpus): what the course recipe's one-hot labels take
   (N * num_classes * 4 bytes, float32), measured with tracemalloc for the
   list-based recipe + `to_categorical`, against `ngram_training_set`
   (int32 inputs, sparse int32 labels).
2. WikiText-2 train (2M words): load, fit a Tokenizer and build the sparse
   arrays with a `--max-len` window, in a fresh subprocess; reports wall
   time, resident-set growth (peak RSS minus RSS after imports; importing
   rnnkit also imports torch) and, in a second run, the tracemalloc peak.

Prints a Markdown table for benchmarks/README.md. Needs no network and no GPU.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

MiB = 2**20


def rss_bytes(field: str) -> int:
    """VmRSS / VmHWM of this process from /proc (Linux), in bytes; 0 elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def traced_peak(fn):
    """(result, tracemalloc peak in bytes) of calling `fn()`."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def sonnets() -> dict:
    from rnnkit.data import load_corpus
    from rnnkit.text import Tokenizer, ngram_sequences, ngram_training_set, pad_sequences, split_xy
    from rnnkit.utils import to_categorical

    corpus = load_corpus("sonnets").lower().split("\n")
    tok = Tokenizer()
    tok.fit_on_texts(corpus)

    def one_hot_path():
        xs, labels = split_xy(pad_sequences(ngram_sequences(tok.texts_to_sequences(corpus)), padding="pre"))
        return xs, to_categorical(labels, num_classes=tok.vocab_size)

    def sparse_path():
        return ngram_training_set(tok, corpus)

    (xs, ys), one_hot_peak = traced_peak(one_hot_path)
    (xs2, labels), sparse_peak = traced_peak(sparse_path)
    n = len(labels)
    return {
        "samples": n,
        "num_classes": tok.vocab_size,
        "maxlen": xs2.shape[1] + 1,
        "one_hot_formula_bytes": n * tok.vocab_size * 4,
        "one_hot_labels_bytes": ys.nbytes,
        "one_hot_path_peak_bytes": one_hot_peak,
        "sparse_arrays_bytes": xs2.nbytes + labels.nbytes,
        "sparse_path_peak_bytes": sparse_peak,
    }


def wikitext_worker(max_len: int, trace: bool) -> dict:
    """One WikiText-2 train run (meant for a fresh process)."""
    from rnnkit.data import load_corpus
    from rnnkit.text import Tokenizer, ngram_training_set

    baseline = rss_bytes("VmRSS")
    reset = reset_peak_rss()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    lines = load_corpus("wikitext-2", split="train").split("\n")
    t1 = time.perf_counter()
    tok = Tokenizer()
    tok.fit_on_texts(lines)
    t2 = time.perf_counter()
    xs, labels = ngram_training_set(tok, lines, max_len=max_len)
    t3 = time.perf_counter()
    out = {
        "lines": len(lines),
        "samples": len(labels),
        "num_classes": tok.vocab_size,
        "max_len": max_len,
        "arrays_bytes": xs.nbytes + labels.nbytes,
        "load_s": t1 - t0,
        "fit_s": t2 - t1,
        "build_s": t3 - t2,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": rss_bytes("VmHWM"),
        "peak_rss_reset": reset,
    }
    if trace:
        out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out


def run_worker(max_len: int, trace: bool) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--max-len", str(max_len)] + (["--trace"] if trace else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(son: dict, wiki: dict, traced: dict) -> str:
    one_hot_wiki = wiki["samples"] * wiki["num_classes"] * 4
    rows = [
        "| corpus | samples N | classes | one-hot labels N*C*4 | one-hot path, measured peak | "
        "sparse arrays | sparse path, measured peak |",
        "|---|---|---|---|---|---|---|",
        f"| sonnets (maxlen {son['maxlen']}) | {son['samples']:,} | {son['num_classes']:,} | "
        f"{son['one_hot_formula_bytes'] / MiB:.1f} MiB | {son['one_hot_path_peak_bytes'] / MiB:.1f} MiB | "
        f"{son['sparse_arrays_bytes'] / MiB:.2f} MiB | {son['sparse_path_peak_bytes'] / MiB:.2f} MiB |",
        f"| WikiText-2 train (max_len {wiki['max_len']}) | {wiki['samples']:,} | {wiki['num_classes']:,} | "
        f"{one_hot_wiki / 2**30:,.0f} GiB (not built) | n/a | {wiki['arrays_bytes'] / MiB:.0f} MiB | "
        f"{traced['tracemalloc_peak_bytes'] / MiB:.0f} MiB |",
        "",
        f"WikiText-2 train, {wiki['lines']:,} lines: load {wiki['load_s']:.2f} s, Tokenizer.fit_on_texts "
        f"{wiki['fit_s']:.2f} s, ngram_training_set {wiki['build_s']:.2f} s "
        f"(total {wiki['load_s'] + wiki['fit_s'] + wiki['build_s']:.1f} s); resident set "
        f"{wiki['baseline_rss_bytes'] / MiB:.0f} MiB after imports (rnnkit imports torch), peak "
        f"{wiki['peak_rss_bytes'] / MiB:.0f} MiB, growth "
        f"{(wiki['peak_rss_bytes'] - wiki['baseline_rss_bytes']) / MiB:.0f} MiB; tracemalloc peak "
        f"{traced['tracemalloc_peak_bytes'] / MiB:.0f} MiB (separate run).",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-len", type=int, default=32, help="WikiText-2 window incl. label (default 32)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(wikitext_worker(args.max_len, args.trace)))
        return
    son = sonnets()
    wiki = run_worker(args.max_len, trace=False)
    traced = run_worker(args.max_len, trace=True)
    print(json.dumps({"sonnets": son, "wikitext2": wiki, "wikitext2_traced": traced}, indent=1))
    print()
    print(report(son, wiki, traced))


if __name__ == "__main__":
    main()
