"""Cost of recurrence: train matched models that differ only in their sequence layer, side by side.

>>> import rnnkit.bench
>>> result = rnnkit.bench.run(cells="dense,lstm,gru,mingru", seq_lens="32,512", threads=1)
>>> print(rnnkit.bench.verdict_table(result))

`run` returns a dict with ``results`` (one entry per candidate and length:
``cell, seq_len, samples_per_s, ms_per_step, params, peak_mem_mb,
time_vs_dense``) and ``verdicts`` on the reference notes' claims
("LSTM ≈ 2× GRU", "LSTM ≈ 10× Dense", "CNN ≈ Dense"). The CLI is ``rnnkit bench``.
"""
from .candidates import CELLS, TaskShape, build_candidate, parse_cells
from .claims import CLAIMS, TOLERANCE, verdicts
from .report import describe, plot, results_table, verdict_table
from .runner import QUICK, parse_seq_lens, run

__all__ = ["CELLS", "CLAIMS", "QUICK", "TOLERANCE", "TaskShape", "build_candidate", "describe", "parse_cells",
           "parse_seq_lens", "plot", "results_table", "run", "verdict_table", "verdicts"]
