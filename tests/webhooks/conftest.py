"""Real daemons delivering to a real receiver: the harness for the delivery proofs.

``receiver(delay=...)`` (tests/support/fixtures.py) makes a receiver counting
every request by ``webhook-id``; ``daemons`` starts `nexusctl daemon`
processes on one database and kills them (gracefully or with SIGKILL).
"""

from __future__ import annotations

import os

import pytest

# Old names, kept for tests that import them from here.
from support.daemons import NEXUSCTL, Daemons  # noqa: F401
from support.ports import free_port  # noqa: F401
from support.receivers import CountingReceiver as Receiver  # noqa: F401


@pytest.fixture
def daemons(tmp_path):
    """Daemons on the database the test's own fixture set DATABASE_URL to (request that fixture first)."""
    env = {k: v for k, v in os.environ.items()}
    env.update(WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32", WEBHOOK_TIMEOUT="1", LOG_FORMAT="text")
    runner = Daemons(env, tmp_path)
    yield runner
    runner.stop_all()
