"""The installed `nexusctl` console script, run as a user runs it (a subprocess).

- A fresh machine: no ENCRYPTION_KEY in development makes a 0600 key file
  once, says so once, and keeps using it.
- A bad configuration is exit 3 and one stderr line naming the variable.
- The daemon answers /health and /ready on SQLite and PostgreSQL, reports
  Redis, refuses a database that is behind or unreachable, a busy port, and a
  production setup without JWT_SECRET, and stops cleanly on SIGTERM and SIGINT.
- `python -m nexusctl` is the same CLI.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from support.ports import closed_port, free_port

NEXUSCTL = Path(sys.executable).parent / "nexusctl"
DEADLINE_S = 15


def run(*args, env, timeout=60):
    return subprocess.run([str(NEXUSCTL), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def env_with(**changes) -> dict:
    """The test's environment (clean_env already applied) with changes; None removes a variable."""
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def one_error_line(proc) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_installed_script_is_the_one_under_test():
    assert NEXUSCTL.is_file() and os.access(NEXUSCTL, os.X_OK)


# --- a fresh machine ----------------------------------------------------------


def test_fresh_development_machine_makes_one_key_and_keeps_it(tmp_path):
    data = tmp_path / "fresh-data"
    env = env_with(NEXUS_DATA_DIR=data, NODE_ENV="development", ENCRYPTION_KEY=None, DATABASE_URL=None)
    first = run("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "warning:" in first.stderr and "ENCRYPTION_KEY" in first.stderr
    key_file = data / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert len(base64.b64decode(key.strip(), validate=True)) == 32
    assert key.strip() not in first.stderr + first.stdout
    assert (data / "nexusctl.db").is_file()  # the default database lives in the data directory

    listed = run("integrations", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "[]\n" and "warning" not in listed.stderr and "ENCRYPTION_KEY" not in listed.stderr
    again = run("db", "migrate", env=env)
    assert again.returncode == 0 and "Nothing to apply" in again.stderr and "warning" not in again.stderr
    assert key_file.read_text() == key

    # "The same key": a secret sealed with the key file's key is already current for the CLI.
    from nexusctl.crypto import Keyring
    from nexusctl.db.database import open_database
    from nexusctl.db.models import Integration
    from nexusctl.db.secrets import seal

    db = open_database(f"sqlite:///{data / 'nexusctl.db'}")
    with db.bind_ctx([Integration]):
        row = Integration(user_id=uuid.uuid4(), provider="SLACK", name="n")
        seal(Keyring(base64.b64decode(key)), row, "access_token", "tok")
        row.save(force_insert=True)
    db.close()
    report = run("keys", "rotate", "--dry-run", "--json", env=env)
    assert report.returncode == 0, report.stderr
    assert (json.loads(report.stdout)["rewritten"], json.loads(report.stdout)["failed"]) == (0, 0)
    assert len(json.loads(run("integrations", "list", "--json", env=env).stdout)) == 1


def test_production_without_a_key_is_exit_3_and_creates_nothing(tmp_path):
    data = tmp_path / "prod-data"
    env = env_with(
        NEXUS_DATA_DIR=data, NODE_ENV="production", ENCRYPTION_KEY=None, DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}"
    )
    for args in (["integrations", "list"], ["db", "migrate"], ["daemon", "--port", free_port()]):
        proc = run(*args, env=env, timeout=30)
        assert proc.returncode == 3, proc.stderr
        line = one_error_line(proc)
        assert line.startswith("error: CONFIG_ERROR: ENCRYPTION_KEY") and proc.stdout == ""
    assert not (data / "encryption.key").exists()


@pytest.mark.parametrize(
    "variable, value",
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "sqlite://"),
        ("ENCRYPTION_KEY", "short"),
        ("ENCRYPTION_KEY", "c2VjcmV0LXZhbHVlLTEyMw=="),
        ("NODE_ENV", "staging"),
        ("ENCRYPTION_OLD_KEYS", "b2xkLXNlY3JldC12YWx1ZQ=="),
        ("DATABASE_POOL_SIZE", "0"),
    ],
)
@pytest.mark.parametrize("command", [["integrations", "list"], ["daemon"]], ids=["list", "daemon"])
def test_bad_configuration_is_exit_3_naming_the_variable(tmp_path, variable, value, command):
    env = env_with(**{"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", variable: value})
    proc = run(*command, env=env, timeout=30)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert line.startswith(f"error: CONFIG_ERROR: {variable}") and proc.stdout == ""
    if "KEY" in variable:  # a key's value is never echoed back
        assert value not in proc.stderr


def test_a_database_password_is_never_echoed(tmp_path):
    env = env_with(DATABASE_URL="postgresql://u:hunter2-pw@127.0.0.1:notaport/db")
    proc = run("integrations", "list", env=env)
    assert proc.returncode == 3 and "DATABASE_URL" in one_error_line(proc) and "hunter2-pw" not in proc.stderr


# --- the daemon -------------------------------------------------------------------


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Daemon:
    def __init__(self, env, *extra):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(NEXUSCTL), "daemon", "--port", str(self.port), *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def poll(self, path):
        """GET path as soon as the daemon answers; fails at the deadline or if the daemon dies."""
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                return _get(self.base + path)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise AssertionError(f"daemon did not answer {path} within {DEADLINE_S}s")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon still running {DEADLINE_S}s after {sig.name}") from None
        return code, self.proc.stdout.read(), self.proc.stderr.read()


@pytest.fixture
def daemons():
    started = []

    def start(env, *extra):
        started.append(Daemon(env, *extra))
        return started[-1]

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        for stream in (daemon.proc.stdout, daemon.proc.stderr):
            stream.close()


def _refused(port) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_daemon_serves_probes_then_stops_cleanly(daemons, db_url, sig):
    daemon = daemons(env_with())
    assert daemon.poll("/health") == (200, {"success": True, "data": {"status": "ok"}})
    status, body = daemon.poll("/ready")
    assert status == 200, body
    assert body == {
        "success": True,
        "data": {
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok", "encryption": "ok", "redis": "not configured"},
        },
    }
    code, stdout, stderr = daemon.stop(sig)
    assert code == 0, stderr
    assert f"listening on http://127.0.0.1:{daemon.port}" in stderr and "stopped" in stderr
    assert "Traceback" not in stderr and os.environ["ENCRYPTION_KEY"] not in stdout + stderr
    assert _refused(daemon.port)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'unmigrated.db'}"
    return request.getfixturevalue("empty_postgres_url")


def test_daemon_refuses_an_unmigrated_database_without_listening(unmigrated_url):
    port = free_port()
    proc = run("daemon", "--port", port, env=env_with(DATABASE_URL=unmigrated_url), timeout=DEADLINE_S + 15)
    assert proc.returncode == 5, proc.stderr
    line = one_error_line(proc)
    assert line.startswith("error: SCHEMA_OUTDATED: ") and "`nexusctl db migrate`" in line
    assert "listening" not in proc.stderr and _refused(port)


def test_ready_is_503_when_redis_is_unreachable(daemons, db_url):
    daemon = daemons(env_with(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"))
    assert daemon.poll("/health")[0] == 200  # alive, just not ready
    status, body = daemon.poll("/ready")
    assert status == 503
    assert body["success"] is False and body["error"]["code"] == "NOT_READY" and "redis" in body["error"]["message"]
    assert body["data"]["checks"] == {"database": "ok", "migrations": "ok", "encryption": "ok", "redis": "failing"}
    assert daemon.stop()[0] == 0


@pytest.mark.redis
def test_ready_is_200_with_redis(daemons, db_url, redis_url):
    daemon = daemons(env_with(REDIS_URL=redis_url))
    status, body = daemon.poll("/ready")
    assert status == 200 and body["success"] is True
    assert body["data"]["checks"] == {"database": "ok", "migrations": "ok", "encryption": "ok", "redis": "ok"}
    assert daemon.stop()[0] == 0


def test_a_port_in_use_is_a_clear_error(sqlite_url):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run(
            "daemon",
            "--port",
            port,
            env=env_with(DATABASE_URL=sqlite_url, JWT_SECRET="s" * 40),
            timeout=DEADLINE_S + 15,
        )
    assert proc.returncode not in (0, 1)
    line = one_error_line(proc)
    assert str(port) in line and "INTERNAL_ERROR" not in line and "listening on" not in proc.stderr
    # It says what happened to which port and how to choose another, not only that listening failed.
    assert line.startswith(f"error: LISTEN_FAILED: port {port} ") and "already in use" in line
    assert "--port" in line and "PORT=" in line


def test_python_dash_m_runs_the_same_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "nexusctl", "version", "--json"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["version"]


def test_daemon_refuses_an_unreachable_database(tmp_path):
    port = closed_port()
    proc = run(
        "daemon",
        "--port",
        free_port(),
        timeout=DEADLINE_S + 15,
        env=env_with(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/none"),
    )
    assert proc.returncode == 4
    line = one_error_line(proc)
    assert line.startswith("error: DATABASE_UNAVAILABLE: ") and str(port) in line


def test_production_daemon_refuses_to_serve_without_a_jwt_secret(tmp_path, sqlite_url):
    env = env_with(
        NODE_ENV="production",
        DATABASE_URL=sqlite_url,
        NEXUS_DATA_DIR=tmp_path / "prod",
        FRONTEND_URL="https://app.example.com",
    )
    port = free_port()
    proc = run("daemon", "--port", port, env=env, timeout=DEADLINE_S + 15)
    assert proc.returncode == 3
    assert one_error_line(proc).startswith("error: CONFIG_ERROR: JWT_SECRET: required when NODE_ENV=production")
    assert _refused(port) and not (tmp_path / "prod" / "jwt.secret").exists()


@pytest.mark.parametrize("unset", [("DATABASE_URL", "FRONTEND_URL"), ("DATABASE_URL",), ("FRONTEND_URL",)])
def test_production_daemon_refuses_development_defaults(tmp_path, sqlite_url, unset):
    """The spec requires DATABASE_URL and FRONTEND_URL: no SQLite in the data directory, no localhost:3000."""
    data = tmp_path / "prod"
    values = dict(DATABASE_URL=sqlite_url, FRONTEND_URL="https://app.example.com") | {name: None for name in unset}
    env = env_with(NODE_ENV="production", JWT_SECRET="s" * 40, NEXUS_DATA_DIR=data, **values)
    port = free_port()
    proc = run("daemon", "--port", port, env=env, timeout=DEADLINE_S + 15)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert line.startswith(f"error: CONFIG_ERROR: {', '.join(unset)}: required when NODE_ENV=production")
    assert _refused(port) and not (data / "nexusctl.db").exists()  # no SQLite file made in the data directory


def test_production_daemon_without_redis_warns_in_its_log(daemons, sqlite_url):
    env = env_with(
        NODE_ENV="production",
        JWT_SECRET="s" * 40,
        DATABASE_URL=sqlite_url,
        FRONTEND_URL="https://app.example.com",
        REDIS_URL=None,
    )
    daemon = daemons(env)
    assert daemon.poll("/health")[0] == 200  # it runs: Redis is a warning, not a refusal
    code, _, stderr = daemon.stop()
    assert code == 0, stderr
    assert "warning: REDIS_URL is not set in production" in stderr and "Traceback" not in stderr
