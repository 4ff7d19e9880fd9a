"""Fixtures of the fault-injection suite.

The process-level tests (test_proc_*.py) kill daemons, restart private
PostgreSQL and Redis servers and point webhooks at misbehaving receivers; the
servers and receivers are tests/support's, as are ``emulators``,
``stack_launcher`` and ``receiver`` (registered by tests/conftest.py).
"""

from __future__ import annotations

import pytest
from support.receivers import BehavingReceiver
from support.servers import PrivatePostgres, PrivateRedis


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
