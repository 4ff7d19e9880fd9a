"""Queueing a delivery on PostgreSQL wakes every listening daemon at commit (NOTIFY).

A regression test: ``is_postgres(database_proxy)`` once answered False (a proxy is
not a PostgresqlDatabase), so no NOTIFY was ever sent and other processes' emits
waited for the worker's 1 s poll; the claim also skipped FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

import select
import uuid

import psycopg2
import pytest

from nexusctl.core import deliveries, webhooks
from nexusctl.db.database import database_proxy, is_postgres
from nexusctl.db.models import Integration
from nexusctl.enums import Provider


def test_is_postgres_answers_for_the_database_behind_the_proxy(database):
    assert is_postgres(database_proxy) == is_postgres(database) == is_postgres()
    assert is_postgres(database_proxy) == (database.__class__.__name__ == "NexusPostgresDatabase")


@pytest.mark.postgres
def test_a_queued_delivery_notifies_other_connections_at_commit(pg_database, postgres_url, keyring):
    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    webhooks.create(keyring, integration_id=integration.id, url="https://example.com/hook", events=["*"])
    listener = psycopg2.connect(postgres_url)
    try:
        listener.autocommit = True
        listener.cursor().execute(f"LISTEN {deliveries.NOTIFY_CHANNEL}")
        with database_proxy.atomic():
            assert deliveries.fan_out(integration, "media.created", {"i": 1}) == 1
        assert select.select([listener], [], [], 5) != ([], [], []), "no NOTIFY within 5 s"
        listener.poll()
        assert [n.channel for n in listener.notifies] == [deliveries.NOTIFY_CHANNEL]
    finally:
        listener.close()
