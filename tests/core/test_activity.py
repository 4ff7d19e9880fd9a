"""`nexusctl top`'s and /metrics' queries (nexusctl.core.activity): right figures, bounded, on indexes."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid

import pytest

from nexusctl import config
from nexusctl.core import activity
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, IntegrationSyncLog, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus, Provider, SyncStatus

# Tables a full scan of is fine: one row per scheduled job.
SMALL = {"job_runs"}


def _world():
    """Rows of every kind the snapshot reads (EXPLAIN needs tables with something in them)."""
    now = utcnow()
    row = Integration.create(
        user_id=uuid.uuid4(),
        provider=Provider.SLACK,
        name="acme",
        health_status="degraded",
        health_rank=1,
        expires_at=now + dt.timedelta(hours=2),
    )
    Integration.create(user_id=uuid.uuid4(), provider=Provider.DISCORD, name="never checked")
    hook = Webhook.create(
        integration=row,
        url="https://hooks.example.com/secret-path?token=tok-in-the-query",
        secret=None,
        failing_since=now - dt.timedelta(minutes=3),
    )
    due = WebhookDelivery.create(
        webhook=hook,
        event="media.created",
        payload={},
        status=DeliveryStatus.RETRYING,
        attempts=1,
        next_attempt_at=now - dt.timedelta(seconds=30),
    )
    WebhookDelivery.create(
        webhook=hook,
        event="media.created",
        payload={},
        status=DeliveryStatus.PENDING,
        next_attempt_at=now + dt.timedelta(minutes=1),
    )
    WebhookAttempt.create(delivery=due, number=1, started_at=now - dt.timedelta(seconds=2), status_code=500)
    WebhookAttempt.create(
        delivery=due, number=2, started_at=now - dt.timedelta(seconds=1), status_code=None, error="timed out"
    )
    WebhookAttempt.create(delivery=due, number=3, started_at=now - dt.timedelta(hours=1), status_code=200)
    IntegrationSyncLog.create(
        integration=row,
        action="fetch_channels",
        status=SyncStatus.IN_PROGRESS,
        started_at=now - dt.timedelta(seconds=90),
        items_processed=40,
    )
    return row, hook, now


def test_a_snapshot_shows_what_the_rows_say(database):
    row, hook, now = _world()
    snap = activity.snapshot(config.load(), now)
    assert snap["deliveries"]["outcomes"] == {"ok": 0, "http_error": 1, "no_answer": 1}  # the 200 is an hour old
    assert snap["deliveries"]["perSecond"] == 0.2
    queue = {q["status"]: q for q in snap["queue"]}
    assert queue["RETRYING"]["depth"] == 1 and 29 <= queue["RETRYING"]["oldestDueSeconds"] <= 31
    assert queue["PENDING"]["depth"] == 1 and queue["PENDING"]["oldestDueSeconds"] is None  # not due yet
    [failing] = snap["failingEndpoints"]
    assert failing["failures"] == 2 and failing["webhookId"] == str(hook.id)
    assert (
        failing["host"] == "hooks.example.com"
        and "secret-path" not in repr(snap)
        and "tok-in-the-query" not in repr(snap)
    )
    assert snap["integrations"]["byStatus"] == {"broken": 0, "degraded": 1, "healthy": 0, "unknown": 1}
    assert snap["integrations"]["expiringWithin24h"] == 1
    assert snap["integrations"]["expiringSoonest"][0]["integrationId"] == str(row.id)
    assert snap["syncs"]["count"] == 1 and snap["syncs"]["oldest"][0]["itemsProcessed"] == 40
    assert [j["name"] for j in snap["jobs"]] == ["token-refresh", "housekeeping", "integration-health"]


def test_counts_stop_at_their_cap(database, monkeypatch):
    _world()
    hook = Webhook.get()
    for _ in range(3):
        WebhookDelivery.create(
            webhook=hook, event="e.x", payload={}, status=DeliveryStatus.PENDING, next_attempt_at=utcnow()
        )
    monkeypatch.setattr(activity, "QUEUE_COUNT_CAP", 2)
    pending = next(q for q in activity.queue() if q["status"] == "PENDING")
    assert (pending["depth"], pending["capped"]) == (2, True)


class _Statements(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.seen = []

    def emit(self, record):
        if isinstance(record.msg, tuple) and record.msg[0].lstrip().upper().startswith("SELECT"):
            self.seen.append(record.msg)


def _plan(database, sql, params, postgres: bool) -> str:
    if not postgres:
        return "\n".join(r[-1] for r in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    with database.atomic():  # SET LOCAL: this transaction only. With scans off, a plan that still scans has no index
        database.execute_sql("SET LOCAL enable_seqscan = off")
        return "\n".join(r[0] for r in database.execute_sql("EXPLAIN " + sql, params).fetchall())


def test_every_query_of_a_snapshot_reads_an_index(database, db_url):
    """On SQLite no plan line is a bare SCAN of a table; on PostgreSQL, with sequential scans discouraged, no plan
    still needs one (so an index serves it however large the table grows)."""
    _world()
    postgres = db_url.startswith("postgres")
    statements = _Statements()
    logger = logging.getLogger("peewee")
    logger.addHandler(statements)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        activity.snapshot(config.load())
    finally:
        logger.removeHandler(statements)
        logger.setLevel(old_level)
    assert len(statements.seen) >= 10
    for sql, params in statements.seen:
        plan = _plan(database, sql, params, postgres)
        aliases = dict((alias, table) for table, alias in re.findall(r'"(\w+)" AS "(t\d+)"', sql))
        if postgres:
            scanned = set(re.findall(r"Seq Scan on (\w+)", plan))
        else:  # "SCAN capped" is the bounded subquery; "SCAN t USING ... INDEX" is an index scan
            scanned = {aliases.get(m, m) for m in re.findall(r"^SCAN (\w+)$", plan, re.M)} - {
                "capped",
                "recent",
                "failed",
            }
        assert not scanned - SMALL, f"{sql}\n{plan}"


@pytest.mark.postgres
def test_the_recent_attempts_range_is_an_index_range_on_a_large_table(pg_database):
    """100,000 attempts over a day: the last 10 seconds' count reads the (started_at) index (migration 0013)."""
    row = Integration.create(user_id=uuid.uuid4(), provider=Provider.SLACK, name="x")
    hook = Webhook.create(integration=row, url="https://example.com/h", secret=None)
    delivery = WebhookDelivery.create(webhook=hook, event="e.x", payload={})
    now = utcnow()
    pg_database.execute_sql(
        "INSERT INTO webhook_attempts (id, created_at, updated_at, delivery_id, number, started_at, status_code) "
        "SELECT gen_random_uuid(), now(), now(), %s, g, %s - (g * interval '1 second'), 200 "
        "FROM generate_series(1, 100000) g",
        (str(delivery.id), now),
    )
    pg_database.execute_sql("ANALYZE webhook_attempts")
    statements = _Statements()
    logger = logging.getLogger("peewee")
    logger.addHandler(statements)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        rate = activity.deliveries_rate(now)
    finally:
        logger.removeHandler(statements)
        logger.setLevel(old_level)
    assert rate["outcomes"]["ok"] == 9  # 1 to 9 seconds before now (the window is open at its start)
    [(sql, params)] = statements.seen
    plan = "\n".join(r[0] for r in pg_database.execute_sql("EXPLAIN " + sql, params).fetchall())
    assert "webhook_attempts_started_at" in plan and "Seq Scan" not in plan, plan
