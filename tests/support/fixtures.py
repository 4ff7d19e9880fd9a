"""Pytest fixtures more than one suite uses, registered once (tests/conftest.py lists this plugin).

- ``stack_launcher``: ``support.stack.launch_stack``, for modules that need a daemon with settings of their own.
- ``receiver``: ``receiver(delay=...)`` makes a ``CountingReceiver``; all are stopped after the test.
"""

from __future__ import annotations

import pytest

from support.receivers import CountingReceiver
from support.stack import launch_stack


@pytest.fixture(scope="session")
def stack_launcher():
    """``launch_stack``: a migrated database and a real `nexusctl daemon` on it."""
    return launch_stack


@pytest.fixture
def receiver():
    """Webhook receivers counting requests by webhook-id, made with ``receiver(delay=...)``."""
    made: list[CountingReceiver] = []

    def make(delay: float = 0.0) -> CountingReceiver:
        made.append(CountingReceiver(delay))
        return made[-1]

    yield make
    for r in made:
        r.stop()
