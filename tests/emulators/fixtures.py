"""Pytest fixtures for the provider emulators.

tests/conftest.py registers them once for every suite (``pytest_plugins``):
request them by name, do not import them.

- ``emulators``: one server for the whole session (started once, stopped at the end), with a clock file
  shared with the product (``env()`` carries NEXUSCTL_CLOCK_FILE; ``advance_clock`` moves both).
- ``fresh_emulators``: the same server, reset before the test (tokens, counters, faults, accounts; credentials,
  URLs and the clock stay: the shared clock only moves forward, so a test reads "now" from ``support.clock.now``).

``NEXUSCTL_TEST_CLOCK_START=<seconds>`` starts the session's clock that far ahead of the system clock, as it is
late in a full run after many tests moved it: a test that reads the system clock where it means the shared one
fails at once instead of only after some other test moved time.
"""

from __future__ import annotations

import os

import pytest

from .server import Emulators


@pytest.fixture(scope="session")
def emulators(tmp_path_factory):
    # One clock for the product and the emulators: emu.advance_clock moves both (nexusctl.clock).
    emu = Emulators(clock_file=tmp_path_factory.mktemp("clock") / "offset")
    emu.advance_clock(float(os.environ.get("NEXUSCTL_TEST_CLOCK_START") or 0))
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
