"""Housekeeping: expired states and finished history past retention go; nothing else does."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import types
import uuid

from support import clock as shared_clock

from nexusctl.core import events, housekeeping, rate_budget
from nexusctl.core.runtime import direct
from nexusctl.db.database import database_proxy
from nexusctl.db.fields import utcnow
from nexusctl.db.models import (
    IntegrationSyncLog,
    OAuthState,
    OutboxEvent,
    RateWait,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from nexusctl.enums import DeliveryStatus, Provider, SyncStatus


def _old(model, row, days):
    model.update(created_at=utcnow() - dt.timedelta(days=days)).where(model.id == row.id).execute()


def test_only_finished_history_past_retention_is_purged(database, make_integration, monkeypatch):
    monkeypatch.setattr(housekeeping, "BATCH", 2)  # several batches
    integration = make_integration()
    hook = Webhook.create(integration=integration, url="https://example.com/h")
    rows = {}
    for name, status, days in [
        ("old_delivered", DeliveryStatus.DELIVERED, 40),
        ("old_failed", DeliveryStatus.FAILED, 40),
        ("old_pending", DeliveryStatus.PENDING, 40),
        ("old_retrying", DeliveryStatus.RETRYING, 40),
        ("new_delivered", DeliveryStatus.DELIVERED, 5),
        ("old_delivered2", DeliveryStatus.DELIVERED, 31),
    ]:
        rows[name] = WebhookDelivery.create(webhook=hook, event="e", payload={}, status=status)
        _old(WebhookDelivery, rows[name], days)
    WebhookAttempt.create(delivery=rows["old_delivered"], number=1, started_at=utcnow(), status_code=200)
    logs = {}
    for name, status, days in [
        ("old_done", SyncStatus.COMPLETED, 40),
        ("old_running", SyncStatus.IN_PROGRESS, 40),
        ("new_done", SyncStatus.COMPLETED, 1),
    ]:
        logs[name] = IntegrationSyncLog.create(integration=integration, action="fetch", status=status)
        _old(IntegrationSyncLog, logs[name], days)
    counts = housekeeping.purge_history(30)
    assert counts == {"deliveries": 3, "syncLogs": 1, "events": 0}
    left = {d.id for d in WebhookDelivery.select()}
    assert left == {rows["old_pending"].id, rows["old_retrying"].id, rows["new_delivered"].id}
    assert WebhookAttempt.select().count() == 0  # went with its delivery
    assert {s.id for s in IntegrationSyncLog.select()} == {logs["old_running"].id, logs["new_done"].id}
    assert housekeeping.purge_history(30) == {"deliveries": 0, "syncLogs": 0, "events": 0}  # idempotent


def test_old_outbox_events_go_but_never_one_the_relay_has_not_published(database, make_integration, monkeypatch):
    monkeypatch.setattr(housekeeping, "BATCH", 2)
    integration = make_integration()
    made = {}
    for name, days, published in [
        ("old_sent", 40, True),
        ("old_sent2", 35, True),
        ("old_unsent", 40, False),
        ("new_sent", 3, True),
    ]:
        with database_proxy.atomic():
            made[name] = events.record("media.created", integration, name=name)
        OutboxEvent.update(
            created_at=utcnow() - dt.timedelta(days=days), published_at=utcnow() if published else None
        ).where(OutboxEvent.id == made[name].id).execute()
    # With a relay (Redis) an unpublished event is still on its way: kept however old.
    assert housekeeping.purge_history(30, keep_unpublished_events=True)["events"] == 2
    assert {e.id for e in OutboxEvent.select()} == {made["old_unsent"].id, made["new_sent"].id}
    # Without one the outbox is only a record, and old records go.
    assert housekeeping.purge_history(30, keep_unpublished_events=False)["events"] == 1
    assert {e.id for e in OutboxEvent.select()} == {made["new_sent"].id}


def test_expired_states_are_removed(database):
    now = utcnow()
    for minutes in (-5, -1, 5):
        OAuthState.create(
            state=uuid.uuid4().hex,
            provider=Provider.SLACK,
            user_id=uuid.uuid4(),
            redirect_uri="http://localhost:3000/x",
            expires_at=now + dt.timedelta(minutes=minutes),
        )
    assert housekeeping.purge_expired_states() == 2
    assert OAuthState.select().count() == 1


def test_jobs_run_from_the_cli(cli, make_integration):
    bad = cli("jobs", "run", "vacuum")
    assert bad.exit_code == 2 and "housekeeping" in bad.stderr
    done = cli("jobs", "run", "housekeeping", "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == {
        "expiredStates": 0,
        "endedRateWaits": 0,
        "deliveries": 0,
        "syncLogs": 0,
        "events": 0,
        "retentionDays": 30,
    }
    swept = cli("jobs", "run", "token-refresh", "--json")
    assert swept.exit_code == 0 and json.loads(swept.stdout) == {
        "refreshed": 0,
        "failed": 0,
        "skipped": 0,
        "notYet": 0,
        "warned": 0,
    }


def test_ended_rate_waits_go_in_batches_and_live_ones_stay(database, monkeypatch, tmp_path):
    """rate_waits (the budget without Redis) has no id column: batches go by its primary key, integration_id."""
    monkeypatch.setattr(housekeeping, "BATCH", 2)  # several batches
    svc = types.SimpleNamespace(redis=None, run=direct)
    ended, live = [uuid.uuid4() for _ in range(5)], [uuid.uuid4() for _ in range(2)]

    async def note_waits():
        for integration in ended:
            await rate_budget.note(svc, integration, 30)
        for integration in live:
            await rate_budget.note(svc, integration, 3600)

    asyncio.run(note_waits())
    offset = tmp_path / "clock"
    offset.write_text("60")  # the product's clock a minute on: the 30 s waits are over
    shared_clock.use_file(monkeypatch, offset)
    assert housekeeping.run(30)["endedRateWaits"] == 5
    assert {row.integration_id for row in RateWait.select()} == set(live)
    assert housekeeping.purge_ended_waits() == 0
