"""Pytest fixtures for the provider emulators.

tests/conftest.py registers them once for every suite (``pytest_plugins``):
request them by name, do not import them.

- ``emulators``: one server for the whole session (started once, stopped at the end).
- ``fresh_emulators``: the same server, reset before the test (clock, tokens,
  counters, faults, accounts; credentials and URLs stay the same).
"""

from __future__ import annotations

import pytest

from .server import Emulators


@pytest.fixture(scope="session")
def emulators():
    emu = Emulators()
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def fresh_emulators(emulators):
    emulators.reset()
    yield emulators
    assert not emulators.errors, "an emulator crashed:\n" + "\n".join(emulators.errors)
