"""Shared test configuration.

The tests directory is put on ``sys.path`` so that reference implementations
(``naive_*.py``) and comparison helpers (``compare.py``) can be imported by
any test module. A session fixture checks that the whole suite leaves no
child process and no shared-memory block of ours behind.
"""
import multiprocessing
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

_SHM = "/dev/shm"


def _blocks() -> set:
    try:
        return {n for n in os.listdir(_SHM) if n.startswith("numbarl_")}
    except FileNotFoundError:
        return set()


@pytest.fixture(scope="session", autouse=True)
def no_leftovers():
    """After the session: no live child process, and every numbarl_ block made during it is unlinked."""
    before = _blocks()
    yield
    deadline = time.monotonic() + 10.0
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    children = multiprocessing.active_children()
    left = _blocks() - before
    assert not children, f"child processes left after the test suite: {children}"
    assert not left, f"shared-memory blocks left in {_SHM} after the test suite: {sorted(left)}"


@pytest.fixture
def torchrl():
    """The torchrl package, or a skip when the optional peer is missing."""
    return pytest.importorskip("torchrl", reason="torchrl 0.14.1 is an optional peer for differential tests")
