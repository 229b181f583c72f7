"""rnnkit bench: the --quick --json run (every candidate, positive numbers, verdict rows),
the claim verdicts and their tolerance, alternation of candidates, memory measurement,
plots, and one-line errors for bad options."""
import json

import pytest
import torch

from rnnkit import bench
from rnnkit.bench.candidates import TaskShape
from rnnkit.bench.measure import Trainer, peak_step_memory_mb, split_steps, time_side_by_side
from rnnkit.bench.runner import make_batches
from rnnkit.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    code = main(["bench", "--quick", "--json", str(out / "r.json"), "--plot", str(out / "r.png")])
    return code, json.loads((out / "r.json").read_text()), (out / "r.png").read_bytes()


def test_quick_json_has_every_candidate_with_positive_numbers(quick):
    code, result, _ = quick
    assert code == 0
    rows = result["results"]
    assert [r["cell"] for r in rows] == list(bench.CELLS)
    for r in rows:
        assert r["seq_len"] == 64
        assert r["samples_per_s"] > 0 and r["ms_per_step"] > 0 and r["params"] > 0 and r["peak_mem_mb"] > 0
        assert r["samples_per_s"] == pytest.approx(32 * 1000 / r["ms_per_step"], rel=1e-3)
        assert len(r["round_ms_per_step"]) == 3
    dense = next(r for r in rows if r["cell"] == "dense")
    assert dense["time_vs_dense"] == 1.0
    # the same width everywhere: a bidirectional layer has twice the recurrent weights
    by = {r["cell"]: r for r in rows}
    assert by["bilstm"]["params"] > by["lstm"]["params"] > by["minlstm"]["params"]
    assert result["config"]["threads"] == 1 and result["config"]["device"] == "cpu"


def test_quick_json_has_one_verdict_per_claim(quick):
    _, result, png = quick
    verdicts = result["verdicts"]
    assert [v["claim"] for v in verdicts] == [c.text for c in bench.CLAIMS]
    for v in verdicts:
        assert v["verdict"] in ("confirmed", "refuted") and v["ratio"] > 0 and v["seq_len"] == 64
    times = {r["cell"]: r["ms_per_step"] for r in result["results"]}
    assert verdicts[0]["ratio"] == pytest.approx(times["lstm"] / times["gru"], rel=1e-2)
    assert png.startswith(PNG)


def test_verdicts_use_the_documented_tolerance():
    def results(lstm, gru, dense, conv):
        times = {"lstm": lstm, "gru": gru, "dense": dense, "conv1d": conv}
        return [{"cell": c, "seq_len": 32, "ms_per_step": t} for c, t in times.items()]

    rows, missing = bench.verdicts(results(lstm=20.0, gru=10.0, dense=2.0, conv=2.9))
    assert [r["verdict"] for r in rows] == ["confirmed", "confirmed", "confirmed"] and not missing
    assert [r["ratio"] for r in rows] == [2.0, 10.0, 1.45]
    rows, _ = bench.verdicts(results(lstm=10.0, gru=10.0, dense=0.5, conv=0.5 * 1.6))
    assert [r["verdict"] for r in rows] == ["refuted", "refuted", "refuted"]
    assert rows[0]["tolerance"] == [pytest.approx(2 / bench.TOLERANCE, abs=1e-3), 3.0]
    rows, missing = bench.verdicts([{"cell": "lstm", "seq_len": 8, "ms_per_step": 1.0}])
    assert rows == [] and len(missing) == 3 and "needs cells lstm and gru" in missing[0]


def test_rounds_alternate_the_order_of_candidates():
    order = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def run(self, steps):
            order.append((self.name, steps))
            return 0.001 * steps

    per_round = time_side_by_side({n: Fake(n) for n in "abc"}, steps=7, rounds=3)
    assert split_steps(7, 3) == [3, 2, 2] and split_steps(2, 5) == [1, 1]
    assert [n for n, _ in order] == list("abc" "bca" "cab")
    assert per_round["a"] == pytest.approx([1.0, 1.0, 1.0])


def test_peak_memory_grows_with_sequence_length():
    peaks = []
    for seq_len in (16, 128):
        shape = TaskShape(seq_len, batch_size=8, hidden=32)
        trainer = Trainer(bench.build_candidate("lstm", shape), make_batches(shape, torch.device("cpu"), 0), torch.device("cpu"))
        trainer.step()
        peaks.append(peak_step_memory_mb(trainer))
    assert 0 < peaks[0] and peaks[1] > 4 * peaks[0]


def test_sweep_plot_draws_lines(tmp_path):
    result = {
        "config": {"seq_lens": [32, 128], "cells": ["dense", "lstm"], "machine": "m", "device": "cpu", "threads": 1,
                   "batch_size": 4, "embedding": 2, "hidden": 3, "steps": 1, "warmup": 0, "rounds": 1, "torch": "x"},
        "results": [{"cell": c, "seq_len": n, "ms_per_step": t, "samples_per_s": 4000 / t}
                    for c, n, t in [("dense", 32, 1.0), ("dense", 128, 2.0), ("lstm", 32, 5.0), ("lstm", 128, 20.0)]],
    }
    path = bench.plot(result, tmp_path / "sweep.png")
    assert path.read_bytes().startswith(PNG)


@pytest.mark.parametrize("argv,message", [
    (["--cells", "lstm,tcn"], "unknown cell(s) tcn; expected names from dense, conv1d,"),
    (["--seq-len", "32,abc"], "seq_len must be comma-separated positive integers"),
    (["--seq-len", "0"], "seq_len must be a positive integer, got 0"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--steps", "0"], ""),
    (["--json", "/proc/bench.json"], "--json /proc/bench.json: cannot write there"),
    (["--plot", "plot.txt"], "--plot writes a PNG file; got 'plot.txt' (use a .png name)"),
])
def test_bad_options_fail_with_one_line(capsys, argv, message):
    assert main(["bench", "--quick", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and message in err[0]
