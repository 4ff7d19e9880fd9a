"""Housekeeping: expired OAuth states, ended rate-limit waits, and history older than RETENTION_DAYS; the parking
of queued deliveries mended (``deliveries.mend_parking``: their webhooks' switches).

Deletes go in batches of ``BATCH`` rows (select ids, delete those), so a first
run over years of history never holds one huge transaction or lock. Only
finished work is purged: deliveries that are DELIVERED or FAILED (their
attempts go with them), sync logs that COMPLETED, FAILED or were CANCELLED.
Pending and retrying deliveries are never touched, however old. Outbox events
go after RETENTION_DAYS too, but with a relay (Redis) only once published; the
record of consumed events (what makes handling idempotent) goes with them.
"""

from __future__ import annotations

import datetime as dt

import peewee

from nexusctl.core import deliveries, outbox
from nexusctl.db.database import database_proxy
from nexusctl.db.fields import utcnow
from nexusctl.db.models import ConsumedEvent, IntegrationSyncLog, OAuthState, RateWait, WebhookDelivery
from nexusctl.enums import DeliveryStatus, SyncStatus

BATCH = 1000


def _batched_delete(model: type[peewee.Model], where) -> int:
    """Rows matching ``where``, BATCH at a time by primary key (``id``, or rate_waits' ``integration_id``). The
    delete repeats the condition: a row changed since it was selected (a wait extended meanwhile) stays."""
    key = model._meta.primary_key
    total = 0
    while True:
        with database_proxy.atomic():
            ids = [row_id for (row_id,) in model.select(key).where(where).limit(BATCH).tuples()]
            if not ids:
                return total
            total += model.delete().where(key.in_(ids) & where).execute()


def purge_expired_states() -> int:
    return _batched_delete(OAuthState, OAuthState.expires_at <= utcnow())


def purge_ended_waits() -> int:
    """Rate-limit waits that have ended (rate_waits, without Redis): by the index on ``until``. The next wait
    written removes them too, but an integration no provider throttles again would otherwise keep its row."""
    return _batched_delete(RateWait, RateWait.until <= utcnow())


def purge_history(retention_days: int, *, keep_unpublished_events: bool = True) -> dict:
    cutoff = utcnow() - dt.timedelta(days=retention_days)
    delivery_rows = _batched_delete(
        WebhookDelivery,
        (WebhookDelivery.created_at < cutoff)
        & WebhookDelivery.status.in_([DeliveryStatus.DELIVERED, DeliveryStatus.FAILED]),
    )
    sync_logs = _batched_delete(
        IntegrationSyncLog,
        (IntegrationSyncLog.created_at < cutoff)
        & IntegrationSyncLog.status.in_([SyncStatus.COMPLETED, SyncStatus.FAILED, SyncStatus.CANCELLED]),
    )
    events = outbox.purge(cutoff, BATCH, keep_unpublished=keep_unpublished_events)
    _batched_delete(ConsumedEvent, ConsumedEvent.created_at < cutoff)
    return {"deliveries": delivery_rows, "syncLogs": sync_logs, "events": events}


def run(retention_days: int, *, keep_unpublished_events: bool = True) -> dict:
    """Everything housekeeping does, once: what the daemon runs hourly and `nexusctl jobs run` runs now.

    ``keep_unpublished_events``: True when a relay publishes the outbox (REDIS_URL set).
    """
    mended = deliveries.mend_parking()  # first: its deliveries wait, the purges' history does not
    return {
        "expiredStates": purge_expired_states(),
        "endedRateWaits": purge_ended_waits(),
        **purge_history(retention_days, keep_unpublished_events=keep_unpublished_events),
        "retentionDays": retention_days,
        **mended,
    }
