"""The daemon recovers by itself when PostgreSQL drops its connections."""

from __future__ import annotations

import psycopg2
import pytest

from nexusctl import config
from nexusctl.daemon.app import create_app


@pytest.mark.postgres
async def test_ready_recovers_after_the_server_kills_our_connections(postgres_url, monkeypatch, aiohttp_client):
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    client = await aiohttp_client(create_app(config.load()))
    assert (await client.get("/ready")).status == 200
    dbname = postgres_url.rsplit("/", 1)[1]
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        killed = cur.rowcount
    admin.close()
    assert killed >= 1
    statuses = [(await client.get("/ready")).status for _ in range(12)]
    # Each worker thread that held a connection may fail once (503, never a
    # 500), then reconnects: the daemon ends up ready again by itself.
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-3:] == [200, 200, 200], statuses
    # At most one failure per DB thread that held a connection (the delivery worker's claims use them too).
    assert statuses.count(503) <= config.load().database_pool_size, statuses
