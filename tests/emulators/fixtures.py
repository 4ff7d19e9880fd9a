"""Pytest fixtures for the provider emulators.

tests/conftest.py registers them once for every suite (``pytest_plugins``):
request them by name, do not import them.

- ``emulators``: one server for the whole session (started once, stopped at the end), with a clock file
  shared with the product (``env()`` carries NEXUSCTL_CLOCK_FILE; ``advance_clock`` moves both).
- ``fresh_emulators``: the same server, reset before the test (clock, tokens,
  counters, faults, accounts; credentials and URLs stay the same).
"""

from __future__ import annotations

import pytest

from .server import Emulators


@pytest.fixture(scope="session")
def emulators(tmp_path_factory):
    # One clock for the product and the emulators: emu.advance_clock moves both (nexusctl.clock).
    emu = Emulators(clock_file=tmp_path_factory.mktemp("clock") / "offset")
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
