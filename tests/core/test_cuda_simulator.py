"""Run the CUDA twins' tests (tests/cuda) under the Numba CUDA simulator, reported test by test.

The simulator has to be switched on before numba.cuda is first imported, which
this pytest process may already have done, so the suite runs in a pytest
process of its own with ``NUMBA_ENABLE_CUDASIM=1``. At collection that
process lists the simulator tests (``--collect-only``), and each becomes one
test here, ``test_under_simulator[<its node id>]``; the first of them runs
the whole suite once (with a JUnit XML report) and each then reports its own
outcome: passed, failed (with the failure's text) or skipped. The only tests
that may be skipped are the real-GPU ones.
"""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPU_ONLY = "runs on a real CUDA GPU, not under the simulator"
_SIM_ENV = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
# each simulator test has its own limit, so one that runs away fails alone instead of the whole run
_PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--timeout=300"]
_COLLECT_FAILED = "collection of tests/cuda under the simulator"


def _simulator_node_ids() -> list:
    result = subprocess.run(_PYTEST + ["--collect-only", "-q", "tests/cuda"], cwd=REPO_ROOT, env=_SIM_ENV,
                            capture_output=True, text=True, timeout=900)
    ids = [line.strip() for line in result.stdout.splitlines() if line.startswith("tests/cuda/") and "::" in line]
    if result.returncode != 0 or not ids:
        return [_COLLECT_FAILED]
    return ids


def pytest_generate_tests(metafunc):
    if "sim_node_id" in metafunc.fixturenames:
        metafunc.parametrize("sim_node_id", _simulator_node_ids())


def _node_id(testcase) -> str:
    module = testcase.get("classname", "")
    path = module.replace(".", "/") + ".py"
    return f"{path}::{testcase.get('name', '')}"


@pytest.fixture(scope="module")
def simulator_run():
    """``{node id: (outcome, text)}`` of one run of tests/cuda under the simulator, and the run's output."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "cudasim.xml")
        result = subprocess.run(_PYTEST + ["-q", "-rs", f"--junitxml={report}", "tests/cuda"], cwd=REPO_ROOT,
                                env=_SIM_ENV, capture_output=True, text=True, timeout=1800)
        outcomes = {}
        if os.path.exists(report):
            for case in ET.parse(report).getroot().iter("testcase"):
                outcome, text = "passed", ""
                for tag in ("failure", "error", "skipped"):
                    node = case.find(tag)
                    if node is not None:
                        outcome = "skipped" if tag == "skipped" else "failed"
                        text = (node.get("message") or "") + "\n" + (node.text or "")
                        break
                outcomes[_node_id(case)] = (outcome, text)
    return outcomes, result.stdout[-6000:] + result.stderr[-3000:]


@pytest.mark.cudasim
@pytest.mark.timeout(2400)  # the first test's setup runs the whole simulator suite (its own limit: 1800 s)
def test_under_simulator(sim_node_id, simulator_run):
    outcomes, tail = simulator_run
    assert sim_node_id != _COLLECT_FAILED, tail
    # the JUnit report names a test by module and name; find ours by its path suffix
    hit = outcomes.get(sim_node_id)
    if hit is None:
        path, _, name = sim_node_id.partition("::")
        hit = next((v for k, v in outcomes.items() if k.endswith(f"{path}::{name}") or path.endswith(
            k.partition("::")[0]) and k.partition("::")[2] == name), None)
    assert hit is not None, f"{sim_node_id} did not run under the simulator\n{tail}"
    outcome, text = hit
    if outcome == "skipped":
        assert GPU_ONLY in text, f"{sim_node_id} was skipped under the simulator: {text}"
        pytest.skip(text.strip().splitlines()[0] if text.strip() else GPU_ONLY)
    assert outcome == "passed", f"{sim_node_id} failed under the simulator:\n{text[-6000:]}"
