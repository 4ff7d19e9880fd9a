"""A real `nexusctl daemon` wired to the provider emulators, on a fresh SQLite or PostgreSQL database.

``launch_stack(kind, work, emulators, pg_template)`` migrates a database
(a SQLite file, or a clone of the session's PostgreSQL template), starts a
daemon on it with every provider's endpoints pointed at the emulators
(tests/emulators) and yields a ``Stack``. ``stack.connect(provider, user)``
walks the whole browser journey: initiate (API) -> the provider's authorize
page (emulator, consents) -> our callback (daemon) -> the frontend redirect,
and returns the query the frontend receives.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from emulators.testkit import call

from support.daemons import NEXUSCTL, launch, start_on_free_port, stop
from support.tokens import JWT_SECRET, mint
from support.waiting import wait_for

FRONTEND = "http://app.nexus.test"
ENCRYPTION_KEY = base64.b64encode(bytes(range(32, 64))).decode()
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/15"
REFRESH_WAITS = "another refresh is under way; waiting for its result"  # nexusctl.core.refresh's log line


@dataclass
class Stack:
    base: str
    env: dict
    database_url: str
    log_path: Path
    emulators: object
    process: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)

    # --- the daemon's life -------------------------------------------------
    def restart(self, probe: str = "/ready", **env) -> None:
        """Stop the daemon(s) and start one on the same port (the URL providers return to) with ``env``
        merged into its environment (a None value removes that variable); ``probe`` as in ``launch``."""
        for process in [self.process, *self.extra.get("daemons", [])]:
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(20)
        self.env = {
            **{k: v for k, v in self.env.items() if k not in env},
            **{k: v for k, v in env.items() if v is not None},
        }
        self.process = launch(self.env, int(self.env["PORT"]), self.log_path, probe)
        self.extra.setdefault("daemons", []).append(self.process)

    # --- HTTP against the daemon ------------------------------------------
    def api(self, method: str, path: str, *, user=None, roles=(), body=None, headers=None, base=None):
        hdrs = dict(headers or {})
        if user is not None:
            hdrs["Authorization"] = f"Bearer {mint(user, *roles)}"
        return call(method, (base or self.base) + path, json_body=body, headers=hdrs)

    def ingest_content(self, user, title: str, media: list | None = None) -> tuple[str, dict]:
        """The platform's ``content.published`` for ``user`` through the ingest route (as the service role);
        (its content id, the answer's data: the publish logs queued)."""
        content_id = f"c-{uuid.uuid4().hex[:10]}"
        data = {
            "userId": str(user),
            "contentId": content_id,
            "title": title,
            "url": f"https://nexus.test/p/{content_id}",
        }
        if media is not None:
            data["media"] = media
        body = {"type": "content.published", "id": f"evt-{content_id}", "data": data}
        answer = self.api("POST", "/integrations/events/ingest", user=uuid.uuid4(), roles=("service",), body=body)
        assert answer.status == 200, answer.text
        return content_id, answer.json()["data"]

    def initiate(self, provider: str, user, **extra):
        body = {"userId": str(user), "provider": provider, "redirectUri": f"{FRONTEND}/connected", **extra}
        return self.api("POST", "/integrations/oauth/initiate", user=user, body=body)

    def connect(self, provider: str, user, **extra) -> dict:
        """The whole browser journey; returns the query our redirect gives the frontend."""
        started = self.initiate(provider, user, **extra)
        assert started.status == 200, started.text
        url = started.json()["data"]["authorizationUrl"]
        at_provider = call("GET", url)
        assert at_provider.status == 302, (provider, at_provider.status, at_provider.text[:300])
        back = at_provider.location
        assert back.startswith(self.base + "/integrations/oauth/callback/"), back
        final = call("GET", back)
        assert final.status == 302, (provider, final.status, final.text[:300])
        assert final.headers.get("Referrer-Policy") == "no-referrer"
        assert final.location.startswith(f"{FRONTEND}/connected?"), final.location
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final.location).query))
        if query.get("integrationId"):
            self.extra.setdefault("connected", {})[query["integrationId"]] = user
        return query

    def deactivate_earlier(self) -> None:
        """Deactivate, through the API as their owners, the connections ``connect`` made before: a test on reset
        emulators starts without them. Time only moves forward, so their tokens would come into the daemons'
        sweep with this test's, and the sweep, the health checks and the provider's counters would see them."""
        for integration, user in self.extra.pop("connected", {}).items():
            answer = self.api("PATCH", f"/integrations/{integration}", user=user, body={"isActive": False})
            assert answer.status in (200, 404), answer.text  # 404: the test deleted it

    # --- CLI against the same database --------------------------------------
    def cli(self, *args, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        """`nexusctl ARGS` on the stack's database; ``env`` adds settings for this run only."""
        return subprocess.run(
            [str(NEXUSCTL), *map(str, args)],
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def another_daemon(self, **env):
        """A second daemon on the same database (and Redis): the scale-out shape; ``env`` merged into its
        environment (a None value removes that variable). Stop it with .terminate() (the stack stops it at the
        end in any case)."""
        own = {**{k: v for k, v in self.env.items() if k not in env}, **{k: v for k, v in env.items() if v is not None}}
        port, process = start_on_free_port(
            lambda port: {**own, "PORT": str(port)}, lambda port: self.log_path.with_name(f"daemon-{port}.log")
        )
        self.extra.setdefault("daemons", []).append(process)
        return f"http://127.0.0.1:{port}", process

    def deactivate_others(self, *keep: str) -> None:
        """Deactivate every active integration but ``keep`` (the module's earlier tests' ones), as an operator
        does with the CLI: a sweep or a count then sees only the test's own."""
        import json

        listed = self.cli("integrations", "list", "--active", "--limit", "1000", "--json")
        assert listed.returncode == 0, listed.stderr
        for row in json.loads(listed.stdout):
            if row["id"] not in keep:
                done = self.cli("integrations", "update", row["id"], "--inactive")
                assert done.returncode == 0, done.stderr

    def waiting_refreshes(self, *integration_ids: str) -> int:
        """How many refreshes of these integrations, in every daemon of the stack, found another one under way
        and wait for its result (each says so once in its daemon's log)."""
        count = 0
        for path in [self.log_path, *sorted(self.log_path.parent.glob("daemon-*.log"))]:
            text = path.read_text(errors="replace") if path.exists() else ""
            count += sum(text.count(f" {i}: {REFRESH_WAITS}") for i in integration_ids)
        return count

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sql(self, query: str, *params):
        """Rows from the daemon's database (read-only checks)."""
        if self.database_url.startswith("sqlite"):
            import sqlite3

            def native(value):  # peewee keeps UUIDs as 32 hex digits on SQLite
                try:
                    return uuid.UUID(str(value)).hex
                except ValueError:
                    return value

            with sqlite3.connect(self.database_url.removeprefix("sqlite:///")) as conn:
                return conn.execute(query.replace("%s", "?"), [native(p) for p in params]).fetchall()
        import psycopg2

        conn = psycopg2.connect(self.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall()
        finally:
            conn.close()


@contextlib.contextmanager
def launch_stack(kind: str, work: Path, emulators, pg_template, extra_env: dict | None = None):
    """A migrated database (SQLite file or PostgreSQL clone) and a daemon on it; yields the Stack."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")}
    env.update(emulators.env())
    env.update(
        NODE_ENV="test",
        NEXUS_DATA_DIR=str(work / "data"),
        JWT_SECRET=JWT_SECRET,
        ENCRYPTION_KEY=ENCRYPTION_KEY,
        FRONTEND_URL=FRONTEND,
        REFRESH_SWEEP_INTERVAL="1",  # the daemons sweep every second (window 10 min)
        SYNC_POLL_INTERVAL="1",
    )
    with _database(kind, work, pg_template) as url:
        env["DATABASE_URL"] = url
        if kind == "postgres":  # the scale-out shape: OAuth states in Redis
            env["REDIS_URL"] = shared_redis_url()
        env.update(extra_env or {})
        for name in [k for k, v in env.items() if v is None]:  # a None in extra_env removes it (REDIS_URL)
            del env[name]
        subprocess.run([str(NEXUSCTL), "-q", "db", "migrate"], env=env, check=True, capture_output=True)
        log_path = work / "daemon.log"

        def env_for(port: int) -> dict:
            env["PORT"] = str(port)
            if "PUBLIC_URL" not in (extra_env or {}):  # it follows the port unless the module sets its own
                env["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            emulators.register_callback_base(env["PUBLIC_URL"])  # the operator's step in each app's settings
            return env

        port, process = start_on_free_port(env_for, lambda port: log_path)
        stack = Stack(f"http://127.0.0.1:{port}", env, url, log_path, emulators, process)
        try:
            yield stack
        finally:
            for proc in [process, *stack.extra.get("daemons", [])]:
                stop(proc)


def shared_redis_url() -> str:
    """The test Redis (NEXUSCTL_TEST_REDIS_URL), checked to answer; skipped or failed like tests/conftest.py."""
    import redis

    url = os.environ.get("NEXUSCTL_TEST_REDIS_URL", REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        if "redis" in os.environ.get("NEXUSCTL_TEST_REQUIRE", ""):
            pytest.fail(f"redis is required but unavailable: {exc}", pytrace=False)
        pytest.skip(f"redis unavailable ({exc}); set NEXUSCTL_TEST_REDIS_URL")
    return url


class _database:
    """A SQLite file, or a PostgreSQL clone of the session's migrated template."""

    def __init__(self, kind, work: Path, pg_template):
        self.kind, self.work, self.pg_template, self.name = kind, work, pg_template, None

    def _admin(self):
        import psycopg2

        conn = psycopg2.connect(os.environ.get("NEXUSCTL_TEST_POSTGRES_URL", POSTGRES_URL), connect_timeout=3)
        conn.autocommit = True
        return conn

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.work / 'oauth.db'}"
        if isinstance(self.pg_template, Exception):
            if "postgres" in os.environ.get("NEXUSCTL_TEST_REQUIRE", ""):
                pytest.fail(f"postgres is required but unavailable: {self.pg_template}", pytrace=False)
            pytest.skip(f"postgres unavailable ({self.pg_template}); set NEXUSCTL_TEST_POSTGRES_URL")
        self.name = f"nx_oauth_{uuid.uuid4().hex[:12]}"
        admin = self._admin()  # not `with admin`: that opens a transaction, where CREATE DATABASE fails
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.pg_template}"')
        admin.close()
        base = urllib.parse.urlsplit(os.environ.get("NEXUSCTL_TEST_POSTGRES_URL", POSTGRES_URL))
        return urllib.parse.urlunsplit(base._replace(path="/" + self.name))

    def __exit__(self, *exc):
        if self.name is not None:
            admin = self._admin()
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            admin.close()
        shutil.rmtree(self.work / "data", ignore_errors=True)


def run_sync(stack, integration, user, action, base=None) -> str:
    """Start ``action`` on the integration through the API (as its owner) and wait for its sync log to end;
    the status it ended with (COMPLETED or FAILED), or DEFERRED: back to PENDING until a time (run_after) set
    by the run, which the daemon's sync runner takes it again at."""
    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": action}, base=base)
    assert started.status == 202, started.text
    return sync_log_end(stack, started.json()["data"]["id"], action)


def sync_log_end(
    stack, log_id, what: str = "sync", timeout: float = 30, ends=("COMPLETED", "FAILED", "DEFERRED")
) -> str:
    """Wait for one sync log to end (COMPLETED, FAILED or DEFERRED, as in ``run_sync``; a deferred one's next
    end: ``ends`` without DEFERRED); that status."""

    def ended():
        status, run_after = stack.sql("SELECT status, run_after FROM integration_sync_logs WHERE id = %s", log_id)[0]
        return "DEFERRED" if status == "PENDING" and run_after is not None else status

    wait_for(lambda: ended() in ends, timeout, f"the {what} run")
    return ended()
