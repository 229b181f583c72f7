"""keep_freed_memory: training steps stop faulting in fresh pages (glibc only).

Each case runs in a fresh interpreter: malloc's settings are per process and
cannot be undone once changed."""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc malloc settings"
)

# Counts the page faults of a training-like step (`step`, defined by the case) after warm-up.
# The median step counts: the kernel's own page scans (NUMA balancing, huge-page collapse)
# fault in bursts that can land on any step, a few hundred faults spread over a run.
SCRIPT = """
import resource, statistics, torch
torch.set_num_threads(1)
from rnnkit.allocator import keep_freed_memory
applied = keep_freed_memory()
torch.manual_seed(0)
{step}
for _ in range(3):
    step()
faults = []
for _ in range(15):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(applied, statistics.median(faults))
"""


# A bidirectional LSTM step whose activations and gradients (a few MB) are freed and
# allocated again every step: with glibc's default thresholds that pattern maps fresh
# pages each step (~7,500 page faults per step measured here).
LSTM_STEP = """
lstm = torch.nn.LSTM(64, 128, batch_first=True, bidirectional=True)
x = torch.randn(32, 64, 64)
def step():
    out, _ = lstm(x)
    out.square().mean().backward()
"""
# A 48 MB block freed and allocated again every step (an LSTM's oneDNN workspace at long
# sequences is this large): above glibc's largest mmap threshold, so mapped fresh each time
# (~11,700 page faults) unless mapping is off.
LARGE_STEP = """
def step():
    torch.empty(12_000_000).fill_(1.0)
"""


def run(env_value, step=LSTM_STEP):
    script = SCRIPT.format(step=step)
    env = dict(os.environ)
    env.pop("RNNKIT_KEEP_FREED_MEMORY", None)
    if env_value is not None:
        env["RNNKIT_KEEP_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", float(faults)


def test_training_steps_reuse_freed_memory():
    applied, faults = run(None)
    assert applied
    assert faults < 200, f"{faults:.0f} page faults per step with freed memory kept"


def test_opt_out_leaves_malloc_alone():
    applied, _ = run("0")
    assert not applied


def test_blocks_above_the_largest_mmap_threshold_are_reused_too():
    applied, faults = run(None, LARGE_STEP)
    assert applied
    assert faults < 200, f"{faults:.0f} page faults per step for a 48 MB block with freed memory kept"
    _, faults = run("0", LARGE_STEP)
    assert faults > 5000, f"only {faults:.0f} page faults per step for a fresh 48 MB block without the setting"
