"""Run the CUDA twins' tests (tests/cuda) under the Numba CUDA simulator.

The simulator has to be switched on before numba.cuda is first imported, which
this pytest process may already have done, so the suite runs in a pytest
process of its own with ``NUMBA_ENABLE_CUDASIM=1``; this test passes when
that run does. The only tests it may skip are the real-GPU ones.
"""
import os
import re
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPU_ONLY = "runs on a real CUDA GPU, not under the simulator"


@pytest.mark.cudasim
def test_cuda_suite_passes_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/cuda"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    tail = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, tail
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) > 0, tail
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all(GPU_ONLY in line for line in skips), "\n".join(skips)
