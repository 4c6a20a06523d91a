"""Fixtures for the core tests.

Every block made by ``SharedArrays.create`` during the session is recorded,
and at the end none of them may remain in /dev/shm. Only blocks made here are
checked, so blocks of other processes on the machine cannot fail the session.
"""
import gc
import os

import pytest

from numbarl.core.shared import SharedArrays

SHM_DIR = "/dev/shm"


@pytest.fixture(scope="session", autouse=True)
def no_shared_block_left():
    created = []
    create = SharedArrays.create.__func__

    def recording_create(cls, layout):
        shared = create(cls, layout)
        created.append(shared.name)
        return shared

    patch = pytest.MonkeyPatch()
    patch.setattr(SharedArrays, "create", classmethod(recording_create))
    yield created
    patch.undo()
    gc.collect()
    if os.path.isdir(SHM_DIR):
        left = [name for name in created if os.path.exists(os.path.join(SHM_DIR, name))]
        assert not left, f"shared-memory blocks left behind in {SHM_DIR}: {left}"
