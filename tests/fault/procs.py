"""Process-level fault injection: private database servers, receivers that misbehave, daemons to kill.

Shared by the tests/fault/test_proc_*.py modules (import it as ``procs``):

- ``PrivatePostgres``: a PostgreSQL cluster of the test's own (initdb into a
  temporary directory, ``pg_ctl`` on a free port), so it can be stopped and
  started without touching the shared server.
- ``PrivateRedis``: a ``redis-server`` of the test's own with an append-only
  file fsynced on every write, so a ``kill -9`` loses nothing Redis had answered.
- ``BehavingReceiver``: an aiohttp webhook receiver recording every request
  (``webhook-id``, arrival time) and answering per path: ``/ok``, ``/flap``
  (fails then succeeds, alternately, per ``webhook-id``) or ``/slow`` (slower
  than WEBHOOK_TIMEOUT for the first attempts of each id).
- ``oauth_stack`` and ``webhook_rig``: the tests/oauth and tests/webhooks
  conftests, loaded as modules, so ``launch_stack``, ``Receiver`` and
  ``Daemons`` are the same code those suites use.
- ``wait_for``: poll a condition with a deadline (never sleep and hope).
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiohttp import web

TESTS = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _load(relative: str, name: str):
    """A sibling suite's conftest as a plain module (pytest keeps its fixtures to its own directory)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TESTS / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


oauth_stack = _load("oauth/conftest.py", "nexus_fault_oauth_stack")
webhook_rig = _load("webhooks/conftest.py", "nexus_fault_webhook_rig")
free_port = webhook_rig.free_port


def wait_for(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll ``condition`` until it returns something truthy (returned); fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)  # polling a condition the daemon brings about on its own


def require(service: str, reason: str) -> None:
    """Skip (or, with NEXUSCTL_TEST_REQUIRE naming the service, fail) like tests/conftest.py does."""
    import pytest

    if service in os.environ.get("NEXUSCTL_TEST_REQUIRE", ""):
        pytest.fail(f"{service} is required (NEXUSCTL_TEST_REQUIRE) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"{service} unavailable: {reason}")


# --- PostgreSQL of our own -------------------------------------------------------------------


class PrivatePostgres:
    """A throwaway PostgreSQL 15 cluster owned by the ``postgres`` system user, on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
            require("postgres", f"no {PG_BIN}/initdb or runuser to start a private cluster")
        if os.geteuid() != 0:
            require("postgres", "a private cluster needs root (runuser -u postgres)")
        # Not under pytest's tmp_path: its directories are 0700 root, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="nexus-fault-pg-", dir="/tmp"))
        shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync",
                          "-E", "UTF8")

    def _as_postgres(self, *argv, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)], capture_output=True, text=True,
                              timeout=60, check=check)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        # fsync off: a test cluster, and the point is the daemon's view of a restart, not the disk's.
        options = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        done = self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "server.log",
                                 "-w", "-t", "30", "start", check=False)
        assert done.returncode == 0, done.stdout + done.stderr + self.log()

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as far as clients can tell: every connection drops without goodbye."""
        done = self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop",
                                 check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    def running(self) -> bool:
        return self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "status", check=False).returncode == 0

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(self.url(), connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# --- Redis of our own ------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server on a free port that can be killed and started again on the same port and data."""

    def __init__(self, work: Path) -> None:
        if shutil.which("redis-server") is None:
            require("redis", "no redis-server binary to start a private one")
        self.work, self.port, self.process = work, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.work / "redis.log", "a")
        # appendfsync always: whatever Redis acknowledged is on disk, so a kill -9 loses none of it
        # (what the relay published must still be in the stream after the restart).
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.work)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._up, 15, "the private redis-server to answer")

    def _up(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True, socket_connect_timeout=1)


# --- a receiver with behaviours --------------------------------------------------------------


class BehavingReceiver:
    """Records (webhook-id, arrival time) of every request; answers by path.

    - ``/ok``: 200 at once.
    - ``/flap``: per webhook-id, odd-numbered requests get a 500 and even ones a 200.
    - ``/slow``: per webhook-id, the first ``slow_times`` requests wait ``slow_seconds`` before answering
      (longer than the daemon's WEBHOOK_TIMEOUT), later ones answer 200 at once.
    """

    def __init__(self, slow_seconds: float = 3.0, slow_times: int = 2) -> None:
        self.slow_seconds, self.slow_times = slow_seconds, slow_times
        self.seen: dict[str, list[tuple[str, float]]] = collections.defaultdict(list)  # id -> [(path, time)]
        self.lock = threading.Lock()
        self.port = None  # bound to port 0 by _run, then read back: no port found free and taken meanwhile
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), "receiver did not start"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/{behaviour}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        self.port = self.runner.addresses[0][1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        behaviour, message_id = request.match_info["behaviour"], request.headers.get("webhook-id", "")
        with self.lock:
            self.seen[message_id].append((behaviour, time.time()))
            count = len(self.seen[message_id])
        if behaviour == "flap" and count % 2 == 1:
            return web.Response(status=500, text="flapping: down this time")
        if behaviour == "slow" and count <= self.slow_times:
            await asyncio.sleep(self.slow_seconds)
        return web.Response(text="ok")

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.port}/{behaviour}"

    def arrivals(self, message_id: str) -> list[float]:
        with self.lock:
            return [t for _, t in self.seen.get(message_id, [])]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def closed_port() -> int:
    """A port nothing listens on (bound then released: connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_env(**extra: str) -> dict:
    """The environment the test set up (clean_env: data dir, ENCRYPTION_KEY, NODE_ENV=test) plus ``extra``,
    with the JWT secret tests/oauth mints tokens with."""
    env = dict(os.environ)
    env.update(JWT_SECRET=oauth_stack.JWT_SECRET, WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32", LOG_FORMAT="text",
               WEBHOOK_TIMEOUT="1")
    env.update(extra)
    return env


def start_daemon(env: dict, work: Path) -> tuple[str, subprocess.Popen, Path]:
    """A `nexusctl daemon` on a free port, ready (GET /ready 200): (base URL, process, log path)."""
    port, process = oauth_stack.start_on_free_port(lambda port: {**env, "PORT": str(port)},
                                                   lambda port: work / f"daemon-{port}.log")
    return f"http://127.0.0.1:{port}", process, work / f"daemon-{port}.log"


def stop_daemon(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def api(base: str, method: str, path: str, *, user=None, roles=(), body=None):
    """One HTTP call to a daemon (never raises on an HTTP error status), with a bearer token for ``user``."""
    headers = {"Authorization": f"Bearer {oauth_stack.token_for(user, *roles)}"} if user is not None else {}
    return oauth_stack.call(method, base + path, json_body=body, headers=headers)


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
