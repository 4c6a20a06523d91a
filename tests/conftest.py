"""Shared test configuration.

The tests directory is put on ``sys.path`` so that reference implementations
(``naive_*.py``), comparison helpers (``compare.py``) and the leak checks
(``leaks.py``) can be imported by any test module. A session fixture checks
that the whole suite leaves no child process and no shared-memory block it
created behind.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import leaks  # noqa: E402  (needs the path above)


@pytest.fixture(scope="session", autouse=True)
def no_leftovers():
    """After the session: no child process started during it, and every block it created is unlinked."""
    with leaks.nothing_left("the test suite"):
        yield


@pytest.fixture
def torchrl():
    """The torchrl package, or a skip when the optional peer is missing."""
    return pytest.importorskip("torchrl", reason="torchrl 0.14.1 is an optional peer for differential tests")
