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

# A bidirectional LSTM step whose activations and gradients (a few MB) are freed and
# allocated again every step: with glibc's default thresholds that pattern maps fresh
# pages each step (~7,500 page faults per step measured here). The median step counts:
# the kernel's own page scans (NUMA balancing, huge-page collapse) fault in bursts that
# can land on any step, a few hundred faults spread over a run.
SCRIPT = """
import resource, statistics, torch
torch.set_num_threads(1)
from rnnkit.allocator import keep_freed_memory
applied = keep_freed_memory()
torch.manual_seed(0)
lstm = torch.nn.LSTM(64, 128, batch_first=True, bidirectional=True)
x = torch.randn(32, 64, 64)
def step():
    out, _ = lstm(x)
    out.square().mean().backward()
for _ in range(3):
    step()
faults = []
for _ in range(15):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(applied, statistics.median(faults))
"""


def run(env_value):
    env = dict(os.environ)
    env.pop("RNNKIT_KEEP_FREED_MEMORY", None)
    if env_value is not None:
        env["RNNKIT_KEEP_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", float(faults)


def test_training_steps_reuse_freed_memory():
    applied, faults = run(None)
    assert applied
    assert faults < 200, f"{faults:.0f} page faults per step with freed memory kept"


def test_opt_out_leaves_malloc_alone():
    applied, _ = run("0")
    assert not applied
