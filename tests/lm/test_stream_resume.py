"""Checkpoints of streaming runs: exact resume, budgets, refusals, damaged files, a full disk."""
import errno
import json
import os

import numpy as np
import pytest
import torch

import rnnkit.lm.checkpoint
import rnnkit.utils
from rnnkit.lm.checkpoint import CheckpointError, load_checkpoint
from rnnkit.lm.stream import StreamLM
from rnnkit.lm.stream_train import train

SMALL = dict(hidden=16, layers=2, embedding=8, dropout=0.1, batch_size=8, seq_len=32, warmup_steps=3,
             eval_every=8, log_every=2, progress="none")


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "king", "and", "queen", "of", "rome", "speak", "to", "me", "now"]
    text = "\n".join(" ".join(rng.choice(words, 8)) for _ in range(60)) + "\n"  # ~2,400 chars: 3 epochs in 24 steps
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    return str(path)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_curve(a, b):
    a, b = {r["step"]: r for r in _metrics(a)}, {r["step"]: r for r in _metrics(b)}
    assert sorted(a) == sorted(b)
    for step in a:
        assert a[step]["train_loss"] == pytest.approx(b[step]["train_loss"], abs=1e-5), step
        if "val_loss" in a[step] and "val_loss" in b[step]:
            assert a[step]["val_loss"] == pytest.approx(b[step]["val_loss"], abs=1e-5), step


def _weights(run):
    return load_checkpoint(run / "last.safetensors")[0]


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path, corpus):
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(whole, corpus=corpus, steps=24, **SMALL)
    first = train(split, corpus=corpus, steps=24, on_log=lambda rec: rec["step"] == 10, **SMALL)
    assert first["stopped"] == "interrupted" and first["step"] == 10
    second = train(split, resume=True, progress="none")
    assert second["step"] == 24 and second["epoch"] == 2  # crossed two epoch boundaries
    _assert_same_curve(whole, split)
    wa, wb = _weights(whole), _weights(split)
    for name in wa:
        if name.startswith(("model/", "optim/", "state/")):
            torch.testing.assert_close(wa[name], wb[name], atol=1e-6, rtol=0)


def test_a_killed_run_resumes_from_its_last_checkpoint_and_still_matches(tmp_path, corpus):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(whole, corpus=corpus, steps=24, **SMALL)

    def kill(rec):
        if rec["step"] == 14:
            raise SystemExit("killed")  # no checkpoint after step 8; metrics already logged 10..14

    with pytest.raises(SystemExit):
        train(killed, corpus=corpus, steps=24, on_log=kill, **SMALL)
    assert _metrics(killed)[-1]["step"] == 14
    train(killed, resume=True, progress="none")
    _assert_same_curve(whole, killed)  # steps 9..14 were redone, their old lines dropped


def test_steps_count_from_the_start_of_the_run(tmp_path, corpus):
    run = tmp_path / "run"
    train(run, corpus=corpus, steps=20, **SMALL)
    summary = train(run, resume=True, steps=40, progress="none")
    steps = [r["step"] for r in _metrics(run)]
    assert summary["step"] == 40 and steps == list(range(2, 41, 2))
    keys = {"step", "elapsed_s", "train_loss", "chars_per_s"}
    assert all(set(r) in (keys, keys | {"val_loss", "val_bpc"}) for r in _metrics(run))
    assert [r["step"] for r in _metrics(run) if "val_loss" in r] == [8, 16, 20, 24, 32, 40]
    assert train(run, resume=True, steps=40, progress="none")["step"] == 40  # nothing left to do


def test_resume_refuses_a_different_model_or_data_config(tmp_path, corpus):
    run = tmp_path / "run"
    train(run, corpus=corpus, steps=4, **SMALL)
    with pytest.raises(ValueError, match=r"different config \(hidden: run has 16, got 32\)"):
        train(run, resume=True, hidden=32, steps=8, progress="none")
    with pytest.raises(ValueError, match=r"cell: run has 'lstm', got 'gru'.*batch_size: run has 8, got 4"):
        train(run, resume=True, cell="gru", batch_size=4, progress="none")
    with pytest.raises(FileExistsError, match="already holds a run; pass --resume"):
        train(run, corpus=corpus, steps=4, **SMALL)


def test_a_corrupt_checkpoint_is_refused_and_best_still_loads(tmp_path, corpus):
    run = tmp_path / "run"
    train(run, corpus=corpus, steps=8, **SMALL)
    last = run / "last.safetensors"
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the tensor data
    last.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupt checkpoint .*SHA-256\); try --checkpoint best"):
        StreamLM.load(run, "last")
    assert StreamLM.load(run, "best").step == 8
    with pytest.raises(CheckpointError, match="corrupt.*resume from it with --resume best"):
        train(run, resume=True, progress="none")
    last.write_bytes(bytes(data[:100]))  # truncated
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        StreamLM.load(run, "last")
    last.write_bytes(b"")
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_checkpoint(last)
    assert train(run, resume="best", steps=12, progress="none")["step"] == 12


def test_a_full_disk_while_saving_leaves_the_previous_checkpoint(tmp_path, corpus, monkeypatch):
    run = tmp_path / "run"
    train(run, corpus=corpus, steps=8, **SMALL)
    before = (run / "last.safetensors").read_bytes()

    def full_disk(path, data):  # the real atomic write, with the disk filling up half-way
        with rnnkit.utils.atomic_write(path) as fh:
            fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(rnnkit.lm.checkpoint, "atomic_write_bytes", full_disk)
    with pytest.raises(RuntimeError, match=r"could not save .*last.safetensors: No space left on device; "
                                           r"the previous checkpoint is intact"):
        train(run, resume=True, steps=16, progress="none")
    monkeypatch.undo()
    assert (run / "last.safetensors").read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == ["best.safetensors", "config.json", "last.safetensors",
                                                      "metrics.jsonl"]  # no temporary files left behind
    assert train(run, resume=True, steps=16, progress="none")["step"] == 16


def test_time_budget_includes_evaluation(tmp_path, corpus):
    run = tmp_path / "run"
    summary = train(run, corpus=corpus, minutes=0.05, **{**SMALL, "eval_every": 1000})
    assert summary["step"] > 0 and summary["val_loss"] is not None
    assert summary["elapsed_s"] <= 0.05 * 60 + 1.5  # stops early enough to evaluate and save in time


def test_resume_takes_defaults_for_model_keys_added_since_the_run_started():
    from dataclasses import asdict

    from rnnkit.lm.stream_train import resolve_config

    model, train, _ = resolve_config({"preset": "shakespeare-10min"})
    saved = {"model": {k: v for k, v in model.items() if k != "residual"}, "train": asdict(train)}
    resumed, _, _ = resolve_config({"residual": False, "steps": 5}, saved)
    assert resumed["residual"] is False
    with pytest.raises(ValueError, match="cannot resume: .*residual: run has False, got True"):
        resolve_config({"residual": True, "steps": 5}, saved)


def test_mingru_preset_is_the_benchmarked_configuration():
    """shakespeare-10min-mingru = shakespeare-10min with benchmarks/README.md's MinGRU row."""
    from rnnkit.lm.stream_train import resolve_config

    lstm_model, lstm_train, _ = resolve_config({"preset": "shakespeare-10min"})
    model, train, _ = resolve_config({"preset": "shakespeare-10min-mingru"})
    assert {k: v for k, v in model.items() if v != lstm_model.get(k)} == dict(
        cell="mingru", layers=4, hidden=256, residual=True, feed_forward=2, dropout=0.1)
    assert {k for k, v in vars(train).items() if v != vars(lstm_train)[k]} == {"seq_len"} and train.seq_len == 128
