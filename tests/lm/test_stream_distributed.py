"""Data-parallel streaming LM training: 2 CPU processes over gloo on loopback.

2 processes x batch B train exactly what 1 process x batch 2B trains (``torchrun -m rnnkit
train --level char``); only rank 0 writes; a 2-process run (with dropout) stopped, resumed,
losing a process and resumed again equals the uninterrupted one; a text too short for 2 x B
streams and processes launched with different options are refused with one-line errors;
a run continues under another number of processes (2 then 1, 1 then 2 by torchrun's
elastic mode) from its weights, optimizer and schedule.

Apart from the torchrun run, the processes are started the way torchrun starts them
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``... in the environment) without its agent
process, which costs a torch import (seconds) per launch on this 2-core machine."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.lm.charlm import CharLM, CharLMConfig
from rnnkit.lm.checkpoint import load_checkpoint, load_optimizer, unpack
from rnnkit.lm.stream_train import TrainConfig, _score_streams, learning_rate, load_stream_data, train
from rnnkit.lm.streams import StreamBatcher, Vocab
from tests import launch
from tests.launch import torchrun_command

WORKER = Path(__file__).with_name("stream_ddp_worker.py")
# A tiny model; no dropout (each process draws its own masks); 30 steps of 22 an epoch for 8 streams.
OPTIONS = dict(hidden=16, embedding=8, layers=2, seq_len=32, lr=1e-2, warmup_steps=3, steps=30, eval_every=10,
               log_every=2, seed=3)
CLI = ["--hidden", "16", "--embedding", "8", "--layers", "2", "--seq-len", "32", "--lr", "1e-2", "--warmup", "3",
       "--steps", "30", "--eval-every", "10", "--log-every", "2", "--seed", "3", "--progress", "lines"]
B = 4  # streams per process
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RNNKIT_DIST_TIMEOUT": "30"}


def torchrun(*args):
    """``torchrun --nproc_per_node=2 ARGS`` on loopback; must succeed."""
    done = subprocess.run(torchrun_command(2, *args), capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 0, f"torchrun failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def spawn(*args, world=2):
    """``world`` processes of ``python ARGS`` with torchrun's environment; ``(return codes, stdout, stderr)``."""
    codes, outs = launch.spawn([sys.executable, *args], world, ENV)
    return codes, "".join(o for o, _ in outs), "".join(e for _, e in outs)


def worker(out, *flags, check=True, **options):
    """The worker (rank r writes to ``out/rank<r>``) with `OPTIONS`, batch `B` and ``options``."""
    codes, stdout, stderr = spawn(WORKER, out, json.dumps({**OPTIONS, "batch_size": B, **options}), *flags)
    if check:
        assert codes == [0, 0], stderr[-3000:]
    return codes, stdout, stderr


def metrics(run):
    return {r["step"]: r for r in map(json.loads, (Path(run) / "metrics.jsonl").read_text().splitlines())}


def assert_same_run(a, b):
    """Same logged losses (train and validation) and the same weights, optimizer and carried state."""
    ma, mb = metrics(a), metrics(b)
    assert sorted(ma) == sorted(mb) == list(range(2, 31, 2))
    for step in ma:
        assert ma[step]["train_loss"] == pytest.approx(mb[step]["train_loss"], abs=1e-5), step
    for step in (10, 20, 30):  # (a stopped run also evaluated where it stopped)
        assert ma[step]["val_loss"] == pytest.approx(mb[step]["val_loss"], abs=1e-5), step
    ta, tb = load_checkpoint(Path(a) / "last.safetensors")[0], load_checkpoint(Path(b) / "last.safetensors")[0]
    for name in ta:
        if name.startswith(("model/", "optim/", "state/")):
            torch.testing.assert_close(ta[name], tb[name], atol=1e-5, rtol=0, msg=name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The first 6,000 characters of tiny-shakespeare: 5,400 to train on."""
    d = os.environ.get("RNNKIT_DATA_DIR")
    if not d or not (Path(d) / "tiny-shakespeare.txt").is_file():
        pytest.skip("RNNKIT_DATA_DIR is not set to the shared corpora folder (../shared/data)")
    path = tmp_path_factory.mktemp("corpus") / "slice.txt"
    path.write_text((Path(d) / "tiny-shakespeare.txt").read_text()[:6000])
    return path


@pytest.fixture(scope="module")
def two_process_run(corpus, tmp_path_factory):
    """``torchrun --nproc_per_node=2 -m rnnkit train --level char ...``, uninterrupted, batch 4 per process."""
    run = tmp_path_factory.mktemp("ddp") / "run"
    done = torchrun("-m", "rnnkit", "train", "--level", "char", "--corpus", corpus, "--out", run, "--batch-size", B, *CLI)
    return run, done.stderr


def test_two_processes_equal_one_process_with_double_batch(corpus, two_process_run, tmp_path):
    run, stderr = two_process_run
    single = tmp_path / "single"
    summary = train(single, corpus=str(corpus), batch_size=2 * B, progress="none", **OPTIONS)
    assert summary["epoch"] == 1  # crossed an epoch end, where every stream restarts from zeros
    assert_same_run(run, single)
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2 and config["train"]["batch_size"] == B
    assert stderr.count("step 10/30 |") == 1 and stderr.count("done: step 30") == 1  # rank 0 alone prints


def test_stopped_resumed_and_killed_two_process_runs_end_like_the_uninterrupted_one(corpus, tmp_path):
    # With dropout: each process's own random state must be saved and restored too.
    options = dict(corpus=str(corpus), dropout=0.2)
    _, stdout, _ = worker(tmp_path, "--stop-at", 14, "--reference", tmp_path / "whole", **options)
    assert '"stopped": "interrupted"' in stdout and '"step": 14' in stdout
    assert {p.name for p in (tmp_path / "rank0").iterdir()} == {"config.json", "last.safetensors",
                                                                "best.safetensors", "metrics.jsonl"}
    # Rank 1 writes nothing, and resumes from rank 0's checkpoint without a copy of it.
    # This time it dies on its 10th step (step 24): rank 0 says so; the step-20 checkpoint is intact.
    codes, _, stderr = worker(tmp_path, "--resume", "--die-at", 10, check=False, **options)
    assert codes[1] == 3 and codes[0] != 0
    assert ("RuntimeError: rank 0: lost contact with the other processes at step 24; the last checkpoint "
            "(step 20) is intact: run the same command with --resume to continue") in stderr
    assert load_checkpoint(tmp_path / "rank0" / "last.safetensors")[1]["progress"]["step"] == 20
    worker(tmp_path, "--resume", **options)
    assert not (tmp_path / "rank1").exists() and not (tmp_path / "whole" / "rank1").exists()
    assert_same_run(tmp_path / "whole" / "rank0", tmp_path / "rank0")


def test_a_two_process_run_continues_under_one_process_from_its_weights_optimizer_and_schedule(
        two_process_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_process_run[0], run)  # the fixture's run stays as it was, for the other tests
    saved_tensors, saved = load_checkpoint(run / "last.safetensors")
    train(run, resume=True, steps=31, log_every=1, progress="lines")  # one step under 1 process
    err = capsys.readouterr().err
    assert err.count("note: the run was trained by 2 processes and continues under 1 process: its 8 streams are "
                     "re-cut into 4 at 38.0% of the epoch (position 512 of 1,349), with the carried state reset to "
                     "zeros; weights, optimizer and schedule carry over (an exact resume needs 2 processes)\n") == 1
    assert json.loads((run / "config.json").read_text())["world_size"] == 1
    assert sorted(metrics(run)) == list(range(2, 31, 2)) + [31]

    # That step, by hand: from the saved weights and AdamW moments, at the step-30 schedule,
    # on the 4 one-process streams from position 512 (256 of 674 before) with zero state.
    config = TrainConfig(**{**saved["train"], "steps": 31})
    vocab, train_ids, _, _ = load_stream_data(config, Vocab.from_dict(saved["vocab"]))
    assert saved["progress"]["pos"] == 256 and (len(train_ids) - 1) // 8 == 674
    model = CharLM(CharLMConfig.from_dict(saved["model"]))
    model.load_state_dict(unpack("model", saved_tensors))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.99), weight_decay=config.weight_decay,
                                  fused=True)
    load_optimizer(optimizer, unpack("optim", saved_tensors), saved["optimizer"])
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, 30, (30 - 3) / (31 - 3), 1.0)
    x, y = StreamBatcher(train_ids, B, 32).batch(512)
    logits, _ = model(x, model.initial_state(B))
    F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
    torch.nn.utils.clip_grad_norm_(params, config.clip)
    optimizer.step()
    resumed, meta = load_checkpoint(run / "last.safetensors")
    assert meta["progress"]["step"] == 31
    for name, value in model.state_dict().items():
        torch.testing.assert_close(resumed[f"model/{name}"], value, atol=1e-6, rtol=0, msg=name)

    # ... and the run goes on (an exact resume now: it was saved under 1 process), learning.
    train(run, resume=True, steps=40, progress="none")
    m = metrics(run)
    assert sorted(m)[-10:] == list(range(31, 41)) and m[40]["val_loss"] < m[30]["val_loss"]  # (log_every 1 kept)


def test_a_one_process_run_continues_under_two_launched_by_torchrun_in_elastic_mode(corpus, tmp_path):
    run = tmp_path / "run"
    train(run, corpus=str(corpus), batch_size=B, progress="none", **{**OPTIONS, "steps": 10})
    done = subprocess.run(torchrun_command(2, "-m", "rnnkit", "train", "--level", "char", "--out", run, "--resume",
                                           "--steps", 20, "--progress", "lines", nnodes="1:4"),
                          capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("note: the run was trained by 1 process and continues under 2 processes: its 4 streams "
                             "are re-cut into 8 at ") == 1  # rank 0 alone prints
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    tensors, meta = load_checkpoint(run / "last.safetensors")
    assert meta["progress"]["step"] == 20 and meta["data"]["world_size"] == 2
    assert {float(t) for k, t in tensors.items() if k.startswith("optim/") and k.endswith("/step")} == {20.0}
    m = metrics(run)
    assert sorted(m) == list(range(2, 21, 2)) and m[20]["val_loss"] < m[10]["val_loss"]


def test_a_text_too_short_for_all_streams_is_refused(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be, that is the question. " * 12)  # 504 chars: 454 to train on
    codes, _, stderr = spawn("-m", "rnnkit", "train", "--level", "char", "--corpus", short, "--out", tmp_path / "run",
                             "--batch-size", 8, *CLI)
    assert codes == [2, 2], stderr[-3000:]
    assert stderr.count("rnnkit: error: training text too short: 454 tokens, need at least 513 for one batch of "
                        "2 processes x 8 streams x 32 steps; use fewer processes, lower --batch-size or --seq-len, "
                        "or use a longer corpus\n") == 2
    assert not (tmp_path / "run").exists()


def test_processes_launched_with_different_options_are_refused(corpus, tmp_path):
    codes, _, stderr = worker(tmp_path, "--rank1", json.dumps({"hidden": 24}), corpus=str(corpus), check=False)
    assert codes[0] != 0 and codes[1] != 0
    assert "rank 1 has a different training configuration than rank 0 (differs in: model)" in stderr
    assert not (tmp_path / "rank0").exists()


@pytest.mark.parametrize("world, batch", [(2, 3), (3, 2), (4, 1)])
def test_each_process_reads_its_own_block_of_the_global_streams(world, batch):
    tokens = np.arange(1000, dtype=np.int64)
    whole = StreamBatcher(tokens, world * batch, 16)
    parts = [StreamBatcher(tokens, batch, 16, world, r) for r in range(world)]
    assert {p.stream_len for p in parts} == {whole.stream_len}
    for pos in (0, 16, whole.stream_len - whole.stream_len % 16):
        x, y = whole.batch(pos)
        assert torch.equal(torch.cat([p.batch(pos)[0] for p in parts]), x)
        assert torch.equal(torch.cat([p.batch(pos)[1] for p in parts]), y)
    with pytest.raises(ValueError, match=rf"too short: 1,000 tokens, need at least {world * batch * 999 + 1:,} "
                                         rf"for one batch of {world} processes x {batch} streams x 999 steps"):
        StreamBatcher(tokens, batch, 999, world, 0)


@pytest.mark.parametrize("world", [2, 3, 5])
def test_validation_shared_out_among_processes_sums_to_the_one_process_loss(world):
    torch.manual_seed(0)
    model = CharLM(CharLMConfig(vocab_size=11, hidden=8, embedding=4))
    ids = np.random.default_rng(0).integers(0, 11, 733)
    total, count = _score_streams(model, ids, 4, 32, 0, 1)  # 4 streams, a tail, fewer streams than 5 processes
    parts = [_score_streams(model, ids, 4, 32, r, world) for r in range(world)]
    assert sum(c for _, c in parts) == count == 732
    assert sum(t for t, _ in parts) == pytest.approx(total, rel=1e-6)
