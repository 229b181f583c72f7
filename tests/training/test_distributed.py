"""Data-parallel training over gloo on loopback, 2 CPU processes launched by torchrun:
N processes with per-rank batch B equal one process with batch N*B; a 2-process run
resumes exactly from its checkpoint; mismatched ranks are refused."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from tests.launch import torchrun_command

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(n, *args, check=True):
    done = subprocess.run(torchrun_command(n, WORKER, *args), capture_output=True, text=True, timeout=240)
    if check and done.returncode != 0:
        raise AssertionError(f"torchrun failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def plain(*args):
    done = subprocess.run([sys.executable, str(WORKER), *map(str, args)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(path):
    return rnnkit.load_model(path).get_weights()


def test_two_processes_equal_one_process_with_double_batch(tmp_path):
    torchrun(2, tmp_path / "ddp.safetensors", "--batch-size", 8, "--epochs", 3)
    plain(tmp_path / "single.safetensors", "--batch-size", 16, "--epochs", 3)
    plain(tmp_path / "other.safetensors", "--batch-size", 8, "--epochs", 3)
    ddp, single, other = (weights(tmp_path / f) for f in ("ddp.safetensors", "single.safetensors", "other.safetensors"))
    for a, b in zip(ddp, single):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # and the comparison has teeth: batch 8 on one process ends elsewhere
    assert max(np.abs(a - b).max() for a, b in zip(ddp, other)) > 1e-3


def test_two_process_run_resumes_exactly_from_its_checkpoint(tmp_path):
    torchrun(2, tmp_path / "full.safetensors", "--epochs", 4)
    torchrun(2, tmp_path / "half.safetensors", "--epochs", 2, "--checkpoint", tmp_path / "ckpt.safetensors")
    torchrun(2, tmp_path / "resumed.safetensors", "--epochs", 4, "--initial-epoch", 2,
             "--resume-from", tmp_path / "ckpt.safetensors")
    for a, b in zip(weights(tmp_path / "full.safetensors"), weights(tmp_path / "resumed.safetensors")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_more_processes_than_samples_is_refused(tmp_path):
    done = torchrun(2, tmp_path / "x.safetensors", "--samples", 1, check=False)
    assert done.returncode != 0 and "cannot shard 1 samples over 2 processes" in done.stderr


def test_ranks_with_different_models_are_refused(tmp_path):
    done = torchrun(2, tmp_path / "x.safetensors", "--rank1-units", 7, check=False)
    assert done.returncode != 0 and "rank 1 has a different training configuration than rank 0" in done.stderr


def test_a_dying_rank_stops_the_run_and_the_checkpoint_survives(tmp_path):
    ckpt = tmp_path / "ckpt.safetensors"
    done = torchrun(2, tmp_path / "x.safetensors", "--epochs", 4, "--checkpoint", ckpt, "--die-at-epoch", 2, check=False)
    assert done.returncode != 0
    assert not (tmp_path / "x.safetensors").exists()
    model = rnnkit.load_model(ckpt)  # written after epoch 2, intact and resumable
    assert model.optimizer.iterations == 2 * 96 // 16
