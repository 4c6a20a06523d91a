"""numbarl collect: runs, prints its summary, saves data loadable with weights_only, rejects bad flags.

User mistakes go through a subprocess: exit status 2, one line on stderr, no traceback.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from numbarl.torch_api.cli import INTERRUPTED_EXIT, _build_transform, main, parse_transforms

CLI = [sys.executable, "-m", "numbarl.torch_api.cli"]


def _run(*flags, timeout=120):
    return subprocess.run([*CLI, *flags], capture_output=True, text=True, timeout=timeout)


def _assert_usage_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_collect_saves_and_prints(tmp_path, capsys):
    path = tmp_path / "out.pt"
    assert main(["collect", "--steps", "300", "--chunk", "100", "--save", str(path)]) == 0
    text = capsys.readouterr().out
    assert "frames/s" in text and "next.reward" in text
    data = torch.load(path, weights_only=True)
    assert data["next"]["reward"].shape == (300, 1)
    # chunks of 100 continue the same episodes: root observation t+1 is next observation t,
    # except after Pendulum's 200-step truncation, where a new episode starts
    done = data["next"]["done"].squeeze(-1)
    assert done.nonzero().flatten().tolist() == [199]
    cont = [t for t in range(299) if not done[t]]
    assert torch.equal(data["observation"][[t + 1 for t in cont]], data["next"]["observation"][cont])
    assert not data["done"][200].any()


def test_atari_preset_saves_uint8_frame_stacks(tmp_path):
    pytest.importorskip("ale_py", reason="the Atari preset needs the ale-py package")
    path = tmp_path / "f.pt"
    proc = _run("collect", "--preset", "atari", "--steps", "20", "--save", str(path), "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = torch.load(path, weights_only=True)
    pixels, nxt = data["pixels"], data["next"]["pixels"]
    assert pixels.dtype == nxt.dtype == torch.uint8  # 4x smaller than float32 stacks
    assert pixels.shape == nxt.shape == (20, 4, 84, 84)
    assert int(nxt.max()) > 0
    done = data["next"]["done"].squeeze(-1)
    for t in range(19):
        if not done[t]:
            assert torch.equal(pixels[t + 1], nxt[t])  # the root stack of step t + 1 is the next stack of step t
            assert torch.equal(nxt[t + 1][:3], nxt[t][1:])  # the stack shifts by one frame per step


def test_summary_counts_episodes_and_lists_root_keys_first(tmp_path, capsys):
    path = tmp_path / "out.pt"
    assert main(["collect", "--steps", "450", "--chunk", "70", "--save", str(path)]) == 0
    text = capsys.readouterr().out
    reward = torch.load(path, weights_only=True)["next"]["reward"].double().squeeze(-1)
    expected = (reward[:200].sum().item() + reward[200:400].sum().item()) / 2  # Pendulum truncates at 200
    assert re.search(r"episodes finished\s+2\n", text)
    mean = float(re.search(r"mean episode return\s+(\S+)", text).group(1))
    assert mean == pytest.approx(expected, rel=1e-4)
    lines = [ln.split()[0] for ln in text.splitlines() if ln.strip()]
    assert lines.index("observation") < lines.index("next.observation")
    assert max(i for i, k in enumerate(lines) if k in ("action", "done", "observation")) < min(
        i for i, k in enumerate(lines) if k.startswith("next."))


def test_num_envs_progress_and_table_count_frames(capsys):
    assert main(["collect", "--num-envs", "3", "--steps", "40", "--chunk", "20"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"frames \(steps x envs\)\s+120\n", out)
    assert re.search(r"env steps \(per env\)\s+40\n", out)
    assert "120/120" in err  # the progress bar counts frames too
    assert re.search(r"observation\s+\(3, 40, 3\)", out)


@pytest.mark.parametrize("flags, words", [
    (["--steps", "0"], ["--steps", "positive integer"]),
    (["--steps", "ten"], ["--steps", "positive integer"]),
    (["--chunk", "-5"], ["--chunk", "positive integer"]),
    (["--num-envs", "0"], ["--num-envs"]),
    (["--seed", "-1"], ["--seed", "-1"]),
    (["--seed", "1.5"], ["--seed", "1.5"]),
    (["--preset", "doom"], ["--preset", "doom"]),
    (["--transforms", "nope"], ["unknown transform", "nope"]),
    (["--transforms", "vecnorm(foo=1)"], ["vecnorm", "foo", "decay"]),
    (["--transforms", "vecnorm(decay=2.0)"], ["vecnorm", "decay"]),
    (["--transforms", "catframes(4)"], ["catframes", "keyword"]),
    (["--transforms", "vecnorm(decay=__import__('os'))"], ["vecnorm", "literal"]),
    (["--transforms", "vecnorm("], ["cannot parse"]),
    (["--env", "Nope-v9"], ["Nope-v9"]),
    (["--preset", "atari", "--env", "Pendulum-v1"], ["--preset atari", "observation"]),
    (["--frobnicate"], ["--frobnicate"]),
])
def test_bad_flags_give_one_line_usage_errors(flags, words):
    _assert_usage_error(_run("collect", "--quiet", *flags), *words)


def test_missing_command_is_one_line():
    _assert_usage_error(_run(), "command")


@pytest.mark.parametrize("where", ["missing_dir", "directory"])
def test_save_path_is_checked_before_collecting(tmp_path, where):
    target = tmp_path / "nope" / "out.pt" if where == "missing_dir" else tmp_path
    # so many steps that the test times out if the path were checked only after collecting
    proc = _run("collect", "--quiet", "--steps", "100000000", "--save", str(target), timeout=90)
    _assert_usage_error(proc, "--save", str(target))
    assert os.listdir(tmp_path) == []


def test_ctrl_c_prints_the_summary_and_saves(tmp_path):
    path = tmp_path / "out.pt"
    proc = subprocess.Popen([*CLI, "collect", "--steps", "100000000", "--chunk", "50", "--save", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 120
    while not re.search(rb"[1-9]\d*/100000000", seen):  # the progress bar shows frames collected
        assert proc.poll() is None and time.monotonic() < deadline, seen
        seen += os.read(proc.stderr.fileno(), 4096)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    out, err = out.decode(), (seen + err).decode()
    assert proc.returncode == INTERRUPTED_EXIT, err
    assert "Traceback" not in err and "interrupted after" in err
    steps = int(re.search(r"env steps \(per env\)\s+(\d+)", out).group(1))
    assert steps > 0 and steps % 50 == 0
    assert "episodes finished" in out and "next.reward" in out
    assert path.stat().st_size < 10_000_000  # the collected steps, not the buffers sized for --steps
    data = torch.load(path, weights_only=True)
    assert data["next"]["reward"].shape == (steps, 1)
    done = data["next"]["done"].squeeze(-1)
    cont = [t for t in range(steps - 1) if not done[t]]
    assert torch.equal(data["observation"][[t + 1 for t in cont]], data["next"]["observation"][cont])
    assert not any(name.endswith(".partial") for name in os.listdir(tmp_path))


def test_transforms_take_keyword_arguments():
    assert parse_transforms("vecnorm(decay=0.99), catframes(N=4, dim=-1),obsnorm") == [
        ("vecnorm", {"decay": 0.99}), ("cat_frames", {"N": 4, "dim": -1}), ("obsnorm", {})]
    assert _build_transform("vecnorm", {"decay": 0.99}, "observation").decay == 0.99
    frames = _build_transform("cat_frames", {"N": 3}, "observation")
    assert frames.N == 3 and frames.in_keys == ["observation"]


@pytest.mark.parametrize("num_envs", ["1", "2"])
def test_obsnorm_initialises_its_statistics(tmp_path, num_envs):
    path = tmp_path / "out.pt"
    assert main(["collect", "--transforms", "obsnorm", "--steps", "2000", "--num-envs", num_envs,
                 "--quiet", "--save", str(path)]) == 0
    obs = torch.load(path, weights_only=True)["observation"].reshape(-1, 3).double()
    # Pendulum's angular velocity has a std of several units: normalized, every feature is near N(0, 1)
    assert obs.mean(0).abs().max() < 0.5
    assert ((obs.std(0) > 0.5) & (obs.std(0) < 2.0)).all(), obs.std(0)


@pytest.mark.parametrize("argv", [["--help"], ["collect", "--help"]])
def test_help_does_not_import_torch(argv):
    code = ("import sys\nfrom numbarl.torch_api.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'numba' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--steps" in proc.stdout or "collect" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "False False"


def test_the_stepping_source_can_be_swapped(capsys):
    from numbarl.torch_api.cli import _parser, collect, rollout_chunks

    seen = []

    def source(env, steps, chunk):
        for part in rollout_chunks(env, steps, chunk):
            seen.append(part.batch_size[-1])
            yield part

    assert collect(_parser().parse_args(["collect", "--steps", "25", "--chunk", "10"]), source=source) == 0
    assert seen == [10, 10, 5]
    assert re.search(r"frames \(steps x envs\)\s+25\n", capsys.readouterr().out)


def test_default_source_is_the_collector(monkeypatch, capsys):
    from numbarl.torch_api import cli
    from numbarl.torch_api.collectors import Collector

    made, sizes = [], []
    real_init = Collector.__init__

    def init(self, *args, **kwargs):
        made.append(kwargs["frames_per_batch"])
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Collector, "__init__", init)
    real = cli.collector_chunks

    def spy(env, steps, chunk):
        for part in real(env, steps, chunk):
            sizes.append(tuple(part.batch_size))
            assert "collector" not in part.keys()
            yield part

    monkeypatch.setattr(cli, "collector_chunks", spy)
    assert cli.main(["collect", "--num-envs", "2", "--steps", "25", "--chunk", "10"]) == 0
    assert made == [20]  # chunk x envs frames per batch
    assert sizes == [(2, 10), (2, 10), (2, 5)]
    out, err = capsys.readouterr()
    assert "50/50" in err and re.search(r"frames \(steps x envs\)\s+50\n", out)


def test_summary_episodes_on_hand_made_chunks(capsys):
    from tensordict import TensorDict

    from numbarl.torch_api.cli import _parser, collect

    def chunk(rewards, dones):
        r = torch.tensor(rewards, dtype=torch.float32).unsqueeze(-1)
        d = torch.tensor(dones).unsqueeze(-1)
        return TensorDict({"next": {"reward": r, "done": d}}, batch_size=r.shape[:2])

    def source(env, steps, n):
        yield chunk([[1, 2, 3], [1, 1, 1]], [[False, True, False], [False, False, True]])
        yield chunk([[4, 5], [2, 2]], [[True, False], [False, True]])

    args = _parser().parse_args(["collect", "--num-envs", "2", "--steps", "5", "--chunk", "3"])
    assert collect(args, source=source) == 0
    out = capsys.readouterr().out
    # env 0 finishes 1+2=3 and 3+4=7, env 1 finishes 1+1+1=3 and 2+2=4
    assert re.search(r"episodes finished\s+4\n", out)
    assert re.search(r"mean episode return\s+4\.25\n", out)


def test_summary_of_uint8_and_bool_entries(capsys):
    """Frames and flags are summarised from their values' counts: exact mean and std, dtype kept."""
    from tensordict import TensorDict

    from numbarl.torch_api.cli import _parser, collect

    def source(env, steps, n):
        yield TensorDict({"pixels": torch.tensor([[0, 10], [20, 30]], dtype=torch.uint8),
                          "flag": torch.tensor([True, False])}, batch_size=[2])  # one env: time is dim 0
        yield TensorDict({"pixels": torch.tensor([[40, 50]], dtype=torch.uint8),
                          "flag": torch.tensor([True])}, batch_size=[1])

    assert collect(_parser().parse_args(["collect", "--steps", "3", "--chunk", "2"]), source=source) == 0
    out = capsys.readouterr().out
    # pixels 0..50 by 10: mean 25, sample variance 1750 / 5 = 350; flags 1, 0, 1: mean 2/3, variance (2/3) / 2
    assert re.search(r"pixels\s+\(3, 2\)\s+uint8\s+25\s+18\.708\n", out), out
    assert re.search(r"flag\s+\(3,\)\s+bool\s+0\.66667\s+0\.57735\n", out), out
