"""Housekeeping: expired states and finished history past retention go; nothing else does."""

from __future__ import annotations

import asyncio
import json
import types
import uuid

from support import clock as shared_clock

from nexusctl.core import events, housekeeping, outbox, rate_budget
from nexusctl.core.oauth_states import Flow, TableStates, new_state
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

DAY = 86400.0


def _aged(advance, made: dict) -> dict:
    """Make each ``name: (days, make)`` so that it is ``days`` old at the end: the oldest first, the shared clock
    moving forward in between (a row's created_at is the product's "now" when it is made). {name: row}."""
    rows, age = {}, max(days for days, _ in made.values())
    for name, (days, make) in sorted(made.items(), key=lambda item: -item[1][0]):
        advance((age - days) * DAY)
        age = days
        rows[name] = make()
    advance(age * DAY)
    return rows


def test_only_finished_history_past_retention_is_purged(database, make_integration, monkeypatch, tmp_path):
    monkeypatch.setattr(housekeeping, "BATCH", 2)  # several batches
    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock")
    integration = make_integration()
    hook = Webhook.create(integration=integration, url="https://example.com/h")

    def delivery(status):
        return lambda: WebhookDelivery.create(webhook=hook, event="e", payload={}, status=status)

    def log(status):
        return lambda: IntegrationSyncLog.create(integration=integration, action="fetch", status=status)

    made = _aged(
        advance,
        {
            "old_delivered": (40, delivery(DeliveryStatus.DELIVERED)),
            "old_failed": (40, delivery(DeliveryStatus.FAILED)),
            "old_pending": (40, delivery(DeliveryStatus.PENDING)),
            "old_retrying": (40, delivery(DeliveryStatus.RETRYING)),
            "new_delivered": (5, delivery(DeliveryStatus.DELIVERED)),
            "old_delivered2": (31, delivery(DeliveryStatus.DELIVERED)),
            "old_done": (40, log(SyncStatus.COMPLETED)),
            "old_running": (40, log(SyncStatus.IN_PROGRESS)),
            "new_done": (1, log(SyncStatus.COMPLETED)),
        },
    )
    rows = {name: row for name, row in made.items() if isinstance(row, WebhookDelivery)}
    logs = {name: row for name, row in made.items() if isinstance(row, IntegrationSyncLog)}
    WebhookAttempt.create(delivery=rows["old_delivered"], number=1, started_at=utcnow(), status_code=200)
    counts = housekeeping.purge_history(30)
    assert counts == {"deliveries": 3, "syncLogs": 1, "events": 0}
    left = {d.id for d in WebhookDelivery.select()}
    assert left == {rows["old_pending"].id, rows["old_retrying"].id, rows["new_delivered"].id}
    assert WebhookAttempt.select().count() == 0  # went with its delivery
    assert {s.id for s in IntegrationSyncLog.select()} == {logs["old_running"].id, logs["new_done"].id}
    assert housekeeping.purge_history(30) == {"deliveries": 0, "syncLogs": 0, "events": 0}  # idempotent


def test_old_outbox_events_go_but_never_one_the_relay_has_not_published(
    database, make_integration, monkeypatch, tmp_path
):
    monkeypatch.setattr(housekeeping, "BATCH", 2)
    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock")
    integration = make_integration()

    def event(name, published):
        def make():
            with database_proxy.atomic():
                row = events.record("media.created", integration, name=name)
            if published:
                outbox.mark_published([row.id])  # what the relay does once the stream has it
            return row

        return make

    made = _aged(
        advance,
        {
            "old_sent": (40, event("old_sent", True)),
            "old_sent2": (35, event("old_sent2", True)),
            "old_unsent": (40, event("old_unsent", False)),
            "new_sent": (3, event("new_sent", True)),
        },
    )
    # With a relay (Redis) an unpublished event is still on its way: kept however old.
    assert housekeeping.purge_history(30, keep_unpublished_events=True)["events"] == 2
    assert {e.id for e in OutboxEvent.select()} == {made["old_unsent"].id, made["new_sent"].id}
    # Without one the outbox is only a record, and old records go.
    assert housekeeping.purge_history(30, keep_unpublished_events=False)["events"] == 1
    assert {e.id for e in OutboxEvent.select()} == {made["new_sent"].id}


def test_expired_states_are_removed(database, keyring, monkeypatch, tmp_path):
    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock")
    states = TableStates(keyring)
    for minutes_before_the_next in (4, 6, 5):  # each lasts 10 minutes: expired 5 and 1 minute ago, one left 5
        states.save(new_state(), Flow(Provider.SLACK, uuid.uuid4(), "http://localhost:3000/x", {}, None, {}))
        advance(minutes_before_the_next * 60)
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
        "unparked": 0,
        "parked": 0,
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
