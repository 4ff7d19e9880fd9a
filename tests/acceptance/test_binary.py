"""The installed `nexusctl` as a user runs it: fresh machine, bad config, the daemon's life."""

from __future__ import annotations

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
from pathlib import Path

import pytest

NEXUSCTL = Path(sys.executable).parent / "nexusctl"


def run(*args, env=None, timeout=60):
    return subprocess.run([str(NEXUSCTL), *map(str, args)], capture_output=True, text=True,
                          env=env if env is not None else dict(os.environ), timeout=timeout)


def fresh_env(data_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ENCRYPTION_KEY", "DATABASE_URL")}
    env.update({"NEXUS_DATA_DIR": str(data_dir), "NODE_ENV": "development", **extra})
    return env


def test_fresh_machine_migrates_with_a_generated_key(tmp_path):
    env = fresh_env(tmp_path / "data")
    first = run("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "ENCRYPTION_KEY is not set" in first.stderr
    key_file = tmp_path / "data" / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    listed = run("integrations", "list", "--json", env=env)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert "ENCRYPTION_KEY" not in listed.stderr and key_file.read_text() == key


def test_python_dash_m_runs_the_same_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nexusctl", "version", "--json"], capture_output=True, text=True)
    assert result.returncode == 0 and "version" in json.loads(result.stdout)


@pytest.mark.parametrize("variable, value", [
    ("NODE_ENV", "staging"), ("PORT", "abc"), ("DATABASE_URL", "mysql://x/y"),
    ("ENCRYPTION_KEY", "c2hvcnQ="), ("REDIS_URL", "http://nope"),
])
def test_bad_configuration_is_one_line_naming_the_variable(tmp_path, variable, value):
    result = run("integrations", "list", env=fresh_env(tmp_path, **{variable: value}))
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: CONFIG_ERROR: {variable}") and "Traceback" not in result.stderr


def test_production_without_a_key_refuses_to_start(tmp_path):
    result = run("daemon", env=fresh_env(tmp_path, NODE_ENV="production"))
    assert result.returncode == 3 and "ENCRYPTION_KEY: required when NODE_ENV=production" in result.stderr
    assert not (tmp_path / "encryption.key").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Daemon:
    def __init__(self, env, port):
        self.port = port
        self.proc = subprocess.Popen([str(NEXUSCTL), "daemon", "--port", str(port)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_until_serving(self, deadline_s=20):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                return _get(f"http://127.0.0.1:{self.port}/health")
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError("daemon did not answer /health in time")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        return code, self.proc.stderr.read()


@pytest.fixture
def daemon_for(db_url):
    started = []

    def start(**extra):
        env = dict(os.environ, **extra)
        daemon = Daemon(env, _free_port())
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


def test_daemon_serves_health_and_ready_then_stops_on_sigterm(daemon_for, db_url):
    daemon = daemon_for()
    assert daemon.wait_until_serving() == (200, {"success": True, "data": {"status": "ok"}})
    status, body = _get(f"http://127.0.0.1:{daemon.port}/ready")
    assert status == 200 and body["data"]["checks"]["database"] == "ok"
    code, stderr = daemon.stop()
    assert code == 0, stderr
    assert "listening on" in stderr and "stopped" in stderr


def test_daemon_is_not_ready_without_redis(daemon_for):
    daemon = daemon_for(REDIS_URL="redis://127.0.0.1:6390/0")
    daemon.wait_until_serving()
    status, body = _get(f"http://127.0.0.1:{daemon.port}/ready")
    assert status == 503 and body["error"]["code"] == "NOT_READY" and body["data"]["checks"]["redis"] == "failing"


@pytest.mark.redis
def test_daemon_is_ready_with_redis(daemon_for, redis_url):
    daemon = daemon_for(REDIS_URL=redis_url)
    daemon.wait_until_serving()
    status, body = _get(f"http://127.0.0.1:{daemon.port}/ready")
    assert status == 200 and body["data"]["checks"]["redis"] == "ok"


def test_daemon_refuses_a_database_that_is_behind(tmp_path):
    env = fresh_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    result = run("daemon", "--port", _free_port(), env=env, timeout=30)
    assert result.returncode == 5 and "SCHEMA_OUTDATED" in result.stderr and "nexusctl db migrate" in result.stderr
    assert "listening" not in result.stderr


def test_daemon_refuses_an_unreachable_database(tmp_path):
    env = fresh_env(tmp_path, DATABASE_URL="postgresql://postgres@127.0.0.1:5999/none")
    result = run("daemon", "--port", _free_port(), env=env, timeout=30)
    assert result.returncode == 4 and "DATABASE_UNAVAILABLE" in result.stderr and "5999" in result.stderr


def test_daemon_stops_cleanly_on_ctrl_c(daemon_for):
    daemon = daemon_for()
    daemon.wait_until_serving()
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.proc.wait(timeout=20) == 0
    assert "stopped" in daemon.proc.stderr.read()


def test_production_daemon_refuses_to_serve_without_a_jwt_secret(tmp_path, sqlite_url):
    env = fresh_env(tmp_path, NODE_ENV="production", ENCRYPTION_KEY=os.environ["ENCRYPTION_KEY"], DATABASE_URL=sqlite_url)
    result = run("daemon", "--port", _free_port(), env=env, timeout=30)
    assert result.returncode == 3 and "JWT_SECRET: required when NODE_ENV=production" in result.stderr
    assert "listening" not in result.stderr and not (tmp_path / "jwt.secret").exists()
