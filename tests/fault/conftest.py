"""Fixtures of the fault-injection suite.

The process-level tests (test_proc_*.py) kill daemons, restart private
PostgreSQL and Redis servers and point webhooks at misbehaving receivers;
their helpers are in procs.py. The emulators and ``stack_launcher`` are the
ones tests/oauth uses (loaded from there, not copied).
"""

from __future__ import annotations

import pytest
from emulators.fixtures import emulators, fresh_emulators  # noqa: F401 - pytest fixtures
from procs import BehavingReceiver, PrivatePostgres, PrivateRedis, oauth_stack, webhook_rig


@pytest.fixture(scope="session")
def stack_launcher():
    """tests/oauth's ``launch_stack``: a migrated database and a real `nexusctl daemon` on it."""
    return oauth_stack.launch_stack


@pytest.fixture
def receiver():
    """tests/webhooks' receiver (counts requests by webhook-id), made with ``receiver(delay=...)``."""
    made = []

    def make(delay: float = 0.0):
        made.append(webhook_rig.Receiver(delay))
        return made[-1]

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def behaving_receiver():
    made = BehavingReceiver()
    yield made
    made.stop()


@pytest.fixture
def private_postgres():
    """A PostgreSQL cluster of this test's own, started; destroyed afterwards whatever state it is in."""
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
