"""``examples/ppo_pendulum.py --smoke`` runs to the end (TorchRL's PPO setup with numbarl's collector)."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.torchrl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ppo_pendulum_smoke(torchrl):
    script = os.path.join(ROOT, "examples", "ppo_pendulum.py")
    proc = subprocess.run([sys.executable, script, "--smoke"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("batch")]
    assert len(lines) == 2, proc.stdout
    assert "frames     400" in lines[-1]
