"""numbarl collect: runs, prints its table, saves data loadable with weights_only, rejects bad flags."""
import subprocess
import sys

import pytest
import torch

from numbarl.torch_api.cli import main


def test_collect_saves_and_prints(tmp_path, capsys):
    path = tmp_path / "out.pt"
    assert main(["collect", "--steps", "300", "--chunk", "100", "--save", str(path)]) == 0
    text = capsys.readouterr().out
    assert "steps/s" in text and "next.reward" in text
    data = torch.load(path, weights_only=True)
    assert data["next"]["reward"].shape == (300, 1)
    # chunks of 100 continue the same episodes: root observation t+1 is next observation t,
    # except after Pendulum's 200-step truncation, where a new episode starts
    done = data["next"]["done"].squeeze(-1)
    assert done.nonzero().flatten().tolist() == [199]
    cont = [t for t in range(299) if not done[t]]
    assert torch.equal(data["observation"][[t + 1 for t in cont]], data["next"]["observation"][cont])
    assert not data["done"][200].any()


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "positive integer"),
    (["--steps", "ten"], "positive integer"),
    (["--transforms", "nope"], "unknown transform"),
])
def test_bad_flags_give_usage_errors(flags, message):
    proc = subprocess.run([sys.executable, "-m", "numbarl.torch_api.cli", "collect", *flags],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_env_is_a_clean_error():
    proc = subprocess.run([sys.executable, "-m", "numbarl.torch_api.cli", "collect", "--env", "Nope-v9", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Nope-v9" in proc.stderr and "Traceback" not in proc.stderr
