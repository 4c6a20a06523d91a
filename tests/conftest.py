"""Shared test configuration.

The tests directory is put on ``sys.path`` so that reference implementations
(``naive_*.py``) and comparison helpers (``compare.py``) can be imported by
any test module.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def torchrl():
    """The torchrl package, or a skip when the optional peer is missing."""
    return pytest.importorskip("torchrl", reason="torchrl 0.14.1 is an optional peer for differential tests")
