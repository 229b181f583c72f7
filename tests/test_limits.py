"""Numeric options are range-checked before anything is created, in the Python API as in the
CLI, and generation that would allocate more than the memory limit is refused up front with
its estimate (instead of a MemoryError, or gigabytes later)."""
import math

import pytest
import torch

from rnnkit import limits
from rnnkit.lm.charlm import CharLM, CharLMConfig
from rnnkit.lm.stream_train import TrainConfig


@pytest.mark.parametrize("options, message", [
    (dict(clip=math.nan), "clip must be a finite number >= 0, got nan"),
    (dict(clip=-1.0), "clip must be a finite number >= 0, got -1.0"),
    (dict(lr=math.inf), "lr (the learning rate) must be a finite number > 0, got inf"),
    (dict(lr=0.0), "lr (the learning rate) must be a finite number > 0, got 0.0"),
    (dict(weight_decay=math.nan), "weight_decay must be a finite number >= 0, got nan"),
    (dict(seed=10**21), f"seed must be an integer from 0 to {2**32 - 1}, got {10**21}"),
    (dict(minutes=math.inf), "minutes must be a finite number > 0, got inf"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 1, got 2.5"),
])
def test_train_config_refuses_values_out_of_range(options, message):
    with pytest.raises(ValueError) as refused:
        TrainConfig(steps=10, **options)
    assert str(refused.value) == message


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    return CharLM(CharLMConfig(vocab_size=65, hidden=16, embedding=8, layers=2)).eval()


def test_many_samples_are_refused_with_the_estimate_before_anything_is_allocated(tiny_lm):
    need = tiny_lm.samples_bytes(100_000_000, 500)
    assert need == 100_000_000 * (500 * 24 + 65 * 20 + 2 * 2 * 2 * 16 * 4)
    with pytest.raises(ValueError, match=rf"^100,000,000 samples of 500 tokens would need about "
                                         rf"{need / 2**30:,.1f} GB of memory, over the limit of 8.0 GB "
                                         r"\(RNNKIT_MEMORY_LIMIT_GB\); generate fewer samples"):
        tiny_lm.generate_many([1, 2], 500, 100_000_000)
    assert len(tiny_lm.generate_many([1, 2], 5, 3)) == 3  # a sane request still runs


def test_a_wide_beam_is_refused_with_the_estimate_and_the_limit_can_be_raised(tiny_lm, monkeypatch):
    with pytest.raises(ValueError, match=r"^beam search of width 1,000,000 over 500 tokens would need about "
                                         r"9.9 GB of memory, over the limit of 8.0 GB .*narrower beam"):
        tiny_lm.beam_search([1, 2], 500, 1_000_000)
    monkeypatch.setenv("RNNKIT_MEMORY_LIMIT_GB", "0.001")
    with pytest.raises(ValueError, match="over the limit of 0.0 GB"):
        tiny_lm.beam_search([1, 2], 50, 1000)
    monkeypatch.setenv("RNNKIT_MEMORY_LIMIT_GB", "nan")
    with pytest.raises(ValueError, match=r"^RNNKIT_MEMORY_LIMIT_GB must be a finite number > 0 \(gigabytes\), "
                                         r"got 'nan'$"):
        limits.memory_limit()


@pytest.mark.parametrize("check, value, message", [
    (limits.positive, True, "x must be a finite number > 0, got True"),
    (limits.non_negative, "1", "x must be a finite number >= 0, got '1'"),
    (limits.seed, -1, f"x must be an integer from 0 to {limits.SEED_MAX}, got -1"),
    (limits.seed, 1.0, f"x must be an integer from 0 to {limits.SEED_MAX}, got 1.0"),
])
def test_the_checks_refuse_other_types_and_non_finite_values(check, value, message):
    with pytest.raises(ValueError) as refused:
        check("x", value)
    assert str(refused.value) == message
