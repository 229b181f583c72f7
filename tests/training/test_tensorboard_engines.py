"""``--tensorboard DIR`` of ``rnnkit lm train`` and ``rnnkit seq2seq train``: the event files,
read back with the tensorboard package's reader, hold the figures of the run's own metrics
(metrics.jsonl; the seq2seq record's history) under the same names, and the learning rate."""
import json

import numpy as np
import pytest

pytest.importorskip("tensorboard", reason="TensorBoard logs need the tensorboard extra: pip install 'rnnkit[tensorboard]'")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from rnnkit.cli.main import main  # noqa: E402
from tests.tiny_runs import STREAM, corpus_text  # noqa: E402


def read(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def series(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def f32(x):
    return float(np.float32(x))


def test_streaming_lm_scalars_equal_metrics_jsonl_across_a_resume(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text())
    run, board = tmp_path / "run", tmp_path / "tb"
    base = ["lm", "train", "--corpus", str(corpus), "--out", str(run), "--tensorboard", str(board), *STREAM]
    assert main(base + ["--steps", "10"]) == 0
    assert main(["lm", "train", "--out", str(run), "--resume", "--steps", "20", "--progress", "none",
                 "--tensorboard", str(board)]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    acc = read(board)
    for key in ("train_loss", "val_loss", "val_bpc", "chars_per_s"):
        assert series(acc, key) == [(r["step"], f32(r[key])) for r in records if key in r], key
    lrs = series(acc, "lr")
    assert [s for s, _ in lrs] == [5, 10, 15, 20] and all(v > 0 for _, v in lrs)


def test_seq2seq_scalars_equal_the_training_history(tmp_path):
    out, board = tmp_path / "dates", tmp_path / "tb"
    assert main(["seq2seq", "train", "--task", "dates", "--out", str(out), "--train-size", "256", "--epochs", "2",
                 "--n-a", "8", "--n-s", "16", "--no-progress", "--tensorboard", str(board)]) == 0
    history = json.loads((out / "config.json").read_text())["training"]["history"]
    acc = read(board)
    for key in ("loss", "accuracy", "val_exact_match", "val_char_accuracy", "seconds"):
        assert series(acc, key) == [(h["epoch"], f32(h[key])) for h in history], key
    assert [s for s, _ in series(acc, "lr")] == [1, 2]
    assert all(v > 0 for _, v in series(acc, "samples_per_s"))


def test_a_tensorboard_path_under_a_file_is_refused_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    bad = str(tmp_path / "file" / "tb")
    assert main(["seq2seq", "train", "--task", "dates", "--out", str(tmp_path / "s"), "--epochs", "1",
                 "--tensorboard", bad]) == 2
    assert "--tensorboard" in capsys.readouterr().err and not (tmp_path / "s").exists()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text())
    assert main(["lm", "train", "--corpus", str(corpus), "--out", str(tmp_path / "lm"), "--steps", "2",
                 "--tensorboard", bad, *STREAM]) == 2
    err = capsys.readouterr().err
    assert "lies under" in err and "expected a folder for the event files" in err
    assert not (tmp_path / "lm").exists()
