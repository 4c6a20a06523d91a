"""The import rewriting of scripts/torchrl_compat.py (the TorchRL-tests compatibility harness)."""
import importlib.util
import pathlib

_PATH = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "torchrl_compat.py"
_spec = importlib.util.spec_from_file_location("torchrl_compat", _PATH)
compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compat)

SOURCE = '''from torchrl.data import Composite, ReplayBuffer
from torchrl.envs import (
    StepCounter,
    TransformedEnv as TE,
)
from torchrl.envs.libs.gym import _has_gym
from torchrl.testing.mocking_classes import CountingEnv


def f():
    from torchrl.envs.utils import step_mdp
    return step_mdp
'''


def test_rewrite_splits_exported_and_torchrl_only_names():
    new, moved = compat.rewrite_imports(SOURCE, compat.NameResolver(), {"CountingEnv": "_mocks"})
    lines = new.splitlines()
    assert "from torchrl.data import (ReplayBuffer)" in lines[0]
    assert "from numbarl.torch_api import (Composite)" in lines[0]
    assert lines[1] == "from numbarl.torch_api import (StepCounter, TransformedEnv as TE)"
    assert "from torchrl.envs.libs.gym import _has_gym" in new  # private flag stays torchrl's
    assert "from _mocks import (CountingEnv)" in new
    assert "    from numbarl.torch_api.envs.utils import (step_mdp)" in lines
    assert moved == 5
    compile(new, "<rewritten>", "exec")


def test_cause_groups_by_first_line_without_addresses():
    assert compat.cause("KeyError: 'x'\nmore") == "KeyError: 'x'"
    assert compat.cause("at 0x7f00ab") == "at 0x.."
    assert compat.cause("worker 1 (pid 2071, sub-envs 1..1) raised") == "worker N (pid N, sub-envs N..M) raised"
    assert compat.cause("got Foo at position 3") == "got Foo at position N"


def test_read_xml_outcomes(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite>'
                   '<testcase classname="m.C" name="a"/>'
                   '<testcase classname="m.C" name="b"><failure message="ValueError: no"/></testcase>'
                   '<testcase classname="m.C" name="c"><skipped message="why"/></testcase>'
                   '</testsuite></testsuites>')
    res = compat.read_xml(xml)
    assert res == {"m.C::a": ("passed", ""), "m.C::b": ("failed", "ValueError: no"),
                   "m.C::c": ("skipped", "why")}
    xml.unlink()
    assert compat.read_xml(xml) is None
