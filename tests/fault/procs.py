"""Process-level fault injection for the tests/fault/test_proc_*.py modules (import it as ``procs``).

The servers, receivers, daemons and waiting are tests/support's (``PrivatePostgres``,
``PrivateRedis``, ``BehavingReceiver``, ``wait_for``...); this module adds what
only this suite does with them: the environment its daemons run with, a daemon
on a free port, API calls and SQL against a private cluster.
"""

from __future__ import annotations

import os
import subprocess
import types
from pathlib import Path

from emulators.testkit import call
from support import daemons

# Old names, kept for tests that import them from here (the code lives in tests/support).
from support.daemons import stop as stop_daemon  # noqa: F401
from support.ports import (
    closed_port,  # noqa: F401
    free_port,
)
from support.receivers import (
    BehavingReceiver,  # noqa: F401
    CountingReceiver,
)
from support.servers import PG_BIN, PrivatePostgres, PrivateRedis, require  # noqa: F401
from support.stack import launch_stack
from support.tokens import JWT_SECRET, mint
from support.waiting import wait_for  # noqa: F401


def daemon_env(**extra: str) -> dict:
    """The environment the test set up (clean_env: data dir, ENCRYPTION_KEY, NODE_ENV=test) plus ``extra``,
    with the JWT secret tests/oauth mints tokens with."""
    env = dict(os.environ)
    env.update(JWT_SECRET=JWT_SECRET, WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32", LOG_FORMAT="text", WEBHOOK_TIMEOUT="1")
    env.update(extra)
    return env


def start_daemon(env: dict, work: Path) -> tuple[str, subprocess.Popen, Path]:
    """A `nexusctl daemon` on a free port, ready (GET /ready 200): (base URL, process, log path)."""
    port, process = daemons.start_on_free_port(
        lambda port: {**env, "PORT": str(port)}, lambda port: work / f"daemon-{port}.log"
    )
    return f"http://127.0.0.1:{port}", process, work / f"daemon-{port}.log"


def api(base: str, method: str, path: str, *, user=None, roles=(), body=None):
    """One HTTP call to a daemon (never raises on an HTTP error status), with a bearer token for ``user``."""
    headers = {"Authorization": f"Bearer {mint(user, *roles)}"} if user is not None else {}
    return call(method, base + path, json_body=body, headers=headers)


def sql(url: str, query: str, *params) -> list:
    """Rows from a PostgreSQL database, on a connection of its own (closed at once)."""
    import psycopg2

    conn = psycopg2.connect(url, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


# The sibling suites' conftests this module used to load by path, kept as names for tests written against
# them: the same attributes, now tests/support's code.
oauth_stack = types.SimpleNamespace(
    NEXUSCTL=daemons.NEXUSCTL,
    JWT_SECRET=JWT_SECRET,
    _start=daemons.launch,
    start_on_free_port=daemons.start_on_free_port,
    PortTaken=daemons.PortTaken,
    call=call,
    launch_stack=launch_stack,
    token_for=mint,
)
webhook_rig = types.SimpleNamespace(
    Receiver=CountingReceiver, Daemons=daemons.Daemons, free_port=free_port, NEXUSCTL=daemons.NEXUSCTL
)
