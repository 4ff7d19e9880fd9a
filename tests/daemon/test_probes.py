"""GET /health and GET /ready of the daemon's app, on both databases."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from support.ports import closed_port

from nexusctl import config
from nexusctl.daemon.app import create_app
from nexusctl.db import migrate


class _GoneRedis:
    """A "Redis" that takes each connection and closes it at once (a server going down): bound here on port 0
    (no port found free and bound later by someone else)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        self.sock.close()


async def _get(aiohttp_client, path="/ready"):
    client = await aiohttp_client(create_app(config.load()))
    response = await client.get(path)
    return response.status, await response.json()


async def test_health_answers(db_url, aiohttp_client):
    assert await _get(aiohttp_client, "/health") == (200, {"success": True, "data": {"status": "ok"}})


async def test_ready_on_a_migrated_database(db_url, aiohttp_client):
    status, body = await _get(aiohttp_client)
    assert status == 200 and body["success"] is True
    assert body["data"]["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "encryption": "ok",
        "redis": "not configured",
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_url(request, tmp_path, monkeypatch):
    url = (
        f"sqlite:///{tmp_path / 'empty.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("empty_postgres_url")
    )
    monkeypatch.setenv("DATABASE_URL", url)
    return url


async def test_ready_fails_while_migrations_are_pending(unmigrated_url, aiohttp_client):
    status, body = await _get(aiohttp_client)
    assert status == 503
    assert body["error"]["code"] == "NOT_READY" and "nexusctl db migrate" in body["error"]["message"]
    shipped = list(migrate.MIGRATIONS_DIR.glob("[0-9]*.py"))  # an empty database lacks every one
    assert body["data"]["checks"]["migrations"] == f"{len(shipped)} pending"


@pytest.mark.postgres
async def test_ready_fails_cleanly_when_the_database_is_unreachable(monkeypatch, pg_template, aiohttp_client):
    port = closed_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/nowhere?connect_timeout=1")
    status, body = await _get(aiohttp_client)
    assert status == 503 and body["data"]["checks"]["database"] == "failing"
    assert str(port) in body["error"]["message"]


async def test_ready_fails_when_redis_is_down(db_url, monkeypatch, aiohttp_client):
    gone = _GoneRedis()
    try:
        monkeypatch.setenv("REDIS_URL", gone.url)
        # An answer, not a hang (a guard far above the probe's 2 s timeouts, not a latency figure).
        status, body = await asyncio.wait_for(_get(aiohttp_client), 60)
    finally:
        gone.close()
    assert status == 503 and body["data"]["checks"]["redis"] == "failing"
    assert body["error"]["message"].startswith("redis: unreachable")


@pytest.mark.redis
async def test_ready_with_redis(db_url, redis_url, monkeypatch, aiohttp_client):
    monkeypatch.setenv("REDIS_URL", redis_url)
    status, body = await _get(aiohttp_client)
    assert status == 200 and body["data"]["checks"]["redis"] == "ok"


async def test_unknown_routes_and_methods_use_the_envelope(db_url, aiohttp_client):
    client = await aiohttp_client(create_app(config.load()))
    missing = await client.get("/nope")
    assert missing.status == 404
    assert await missing.json() == {"success": False, "error": {"code": "NOT_FOUND", "message": "Not Found"}}
    wrong = await client.post("/health")
    assert wrong.status == 405 and (await wrong.json())["error"]["code"] == "METHOD_NOT_ALLOWED"
