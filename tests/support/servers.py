"""Database and Redis servers of a test's own, to stop, kill and start again without touching the shared ones.

- ``PrivatePostgres``: a PostgreSQL cluster (initdb into a temporary directory,
  ``pg_ctl`` on a free port).
- ``PrivateRedis``: a ``redis-server`` with an append-only file fsynced on
  every write, so a ``kill -9`` loses nothing Redis had answered.
- ``require``: skip (or, with NEXUSCTL_TEST_REQUIRE naming the service, fail)
  like tests/conftest.py does when a service is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from support.ports import free_port
from support.waiting import wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def require(service: str, reason: str) -> None:
    """Skip (or, with NEXUSCTL_TEST_REQUIRE naming the service, fail) like tests/conftest.py does."""
    if service in os.environ.get("NEXUSCTL_TEST_REQUIRE", ""):
        pytest.fail(f"{service} is required (NEXUSCTL_TEST_REQUIRE) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"{service} unavailable: {reason}")


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
        self.port = free_port()  # pg_ctl takes the port on its command line
        self._as_postgres(
            PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )

    def _as_postgres(self, *argv, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, argv)],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        # fsync off: a test cluster, and the point is the daemon's view of a restart, not the disk's.
        options = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        done = self._as_postgres(
            PG_BIN / "pg_ctl",
            "-D",
            self.data,
            "-o",
            options,
            "-l",
            self.root / "server.log",
            "-w",
            "-t",
            "30",
            "start",
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr + self.log()

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as far as clients can tell: every connection drops without goodbye."""
        done = self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop", check=False)
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


class PrivateRedis:
    """A redis-server on a free port that can be stopped or killed and started again on the same port and data."""

    def __init__(self, work: Path) -> None:
        if shutil.which("redis-server") is None:
            require("redis", "no redis-server binary to start a private one")
        # redis-server takes the port on its command line (its port 0 means "no TCP at all").
        self.work, self.port, self.process = work, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.work / "redis.log", "a")
        # appendfsync always: whatever Redis acknowledged is on disk, so a kill -9 loses none of it
        # (what the relay published must still be in the stream after the restart).
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.work),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
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
        """SIGTERM: Redis finishes the append-only file, as on a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True, socket_connect_timeout=1)
