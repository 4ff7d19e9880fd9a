"""What the service is doing right now, for `nexusctl top` and the daemon's /metrics.

Every query is bounded and reads an index, so a live view refreshing every second costs the same on a
database of a thousand rows as on one of ten million: counts stop at a cap (shown as "cap+"), recent
attempts are a range of the (started_at) index (migration 0013), the queue is the partial
(next_attempt_at) index and the status index, syncs in progress the (status, created_at) index,
expiring tokens the partial (expires_at) WHERE is_active index, health the (health_rank, ...) index.
"""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlsplit

import peewee
from peewee import SQL, fn

from nexusctl.core import job_runs
from nexusctl.core.attempts import STOPPED
from nexusctl.db.database import database_proxy
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, IntegrationSyncLog, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus, SyncStatus

QUEUE_COUNT_CAP = 100_000  # a queue deeper than this shows as 100000 (the count stops there)
COUNT_CAP = 10_000  # integrations per health status, tokens expiring, syncs in progress
WINDOW_CAP = 50_000  # attempts read per window
RATE_WINDOW = dt.timedelta(seconds=10)  # deliveries per second: over the last 10 s
FAILING_WINDOW = dt.timedelta(minutes=5)  # the endpoints failing most: over the last 5 min
EXPIRING_WITHIN = dt.timedelta(hours=24)
LIST_LIMIT = 5
QUEUED = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
# The statuses as literals: SQLite uses the partial index on next_attempt_at only when the query names
# its condition's constants (as nexusctl.core.deliveries.claim does).
_QUEUED_SQL = SQL("(\"status\" IN ('PENDING', 'RETRYING'))")
HEALTH_RANKS = (("broken", 2), ("degraded", 1), ("healthy", 0))


def _capped_count(query: peewee.Select, cap: int) -> int:
    """COUNT(*) of at most ``cap`` rows of ``query`` (a bounded index range scan, not a count of the table)."""
    inner = query.limit(cap).alias("capped")
    return peewee.Select([inner], [fn.COUNT(SQL("*"))]).bind(database_proxy).scalar() or 0


def queue(now: dt.datetime | None = None) -> list[dict]:
    """Per queued status: how many deliveries wait (up to QUEUE_COUNT_CAP) and how long the longest-waiting
    due one that can be sent (its webhook active) has been due (None when none is due: the queue is empty, or
    all of it waits for later).

    The deliveries of a webhook switched off (by hand, or disabled after failing) stay queued for when it is
    on again, and the worker does not claim them: counted in the age, they made it grow without end, and an
    alert on it fire for as long as the webhook stayed off. They are still in ``depth``: they do wait."""
    now = now or utcnow()
    rows = []
    for status in QUEUED:
        depth = _capped_count(WebhookDelivery.select(SQL("1")).where(WebhookDelivery.status == status), QUEUE_COUNT_CAP)
        # As the worker's claim reads them: the partial (next_attempt_at) index in order, each row's webhook by
        # its key; a webhook that is off skips its deliveries.
        oldest = (
            WebhookDelivery.select(WebhookDelivery.next_attempt_at)
            .join(Webhook)
            .where(
                _QUEUED_SQL
                & (WebhookDelivery.status == status)
                & (WebhookDelivery.next_attempt_at <= now)
                & (Webhook.is_active == True)  # noqa: E712 - SQL
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(1)
            .scalar()
        )
        rows.append(
            {
                "status": status.value,
                "depth": depth,
                "capped": depth >= QUEUE_COUNT_CAP,
                "oldestDueSeconds": round((now - oldest).total_seconds(), 3) if oldest else None,
            }
        )
    return rows


def _attempt_outcome():
    code = WebhookAttempt.status_code
    return peewee.Case(None, [((code >= 200) & (code < 300), "ok"), (code.is_null(), "no_answer")], "http_error")


def deliveries_rate(now: dt.datetime | None = None) -> dict:
    """Attempts over the last RATE_WINDOW by outcome (ok: 2xx, http_error: another status, no_answer:
    timeout, refused, connection error) and per second."""
    now = now or utcnow()
    inner = (
        WebhookAttempt.select(_attempt_outcome().alias("outcome"))
        .where(WebhookAttempt.started_at > now - RATE_WINDOW)
        .limit(WINDOW_CAP)
        .alias("recent")
    )
    counts = dict(
        peewee.Select([inner], [inner.c.outcome, fn.COUNT(SQL("*"))])
        .group_by(inner.c.outcome)
        .bind(database_proxy)
        .tuples()
    )
    outcomes = {name: counts.get(name, 0) for name in ("ok", "http_error", "no_answer")}
    seconds = RATE_WINDOW.total_seconds()
    return {
        "windowSeconds": seconds,
        "outcomes": outcomes,
        "perSecond": round(sum(outcomes.values()) / seconds, 2),
        "okPerSecond": round(outcomes["ok"] / seconds, 2),
    }


def failing_endpoints(now: dt.datetime | None = None, limit: int = LIST_LIMIT) -> list[dict]:
    """The webhooks with the most failed attempts over the last FAILING_WINDOW, most first. Only the URL's
    host is shown: a receiver's path or query may carry a token."""
    now = now or utcnow()
    failed = (
        WebhookAttempt.select(WebhookDelivery.webhook.alias("webhook_id"))
        .join(WebhookDelivery, on=(WebhookAttempt.delivery == WebhookDelivery.id))
        .where(
            (WebhookAttempt.started_at > now - FAILING_WINDOW)
            & (
                # No answer: a timeout, a refused connection... but not a send this service's own stop cut.
                (
                    WebhookAttempt.status_code.is_null()
                    & (WebhookAttempt.error.is_null() | (WebhookAttempt.error != STOPPED))
                )
                | (WebhookAttempt.status_code < 200)
                | (WebhookAttempt.status_code >= 300)
            )
        )
        .limit(WINDOW_CAP)
        .alias("failed")
    )
    count = fn.COUNT(SQL("*"))
    # Raw tuples: the ids as the database spells them (32 hex digits on SQLite), made UUIDs here.
    top = [
        (uuid.UUID(str(w)), n)
        for w, n in peewee.Select([failed], [failed.c.webhook_id, count])
        .group_by(failed.c.webhook_id)
        .order_by(count.desc())
        .limit(limit)
        .bind(database_proxy)
        .tuples()
    ]
    if not top:
        return []
    hooks = {
        h.id: h
        for h in Webhook.select(
            Webhook.id, Webhook.url, Webhook.is_active, Webhook.failing_since, Webhook.integration
        ).where(Webhook.id.in_([w for w, _ in top]))
    }
    rows = []
    for webhook_id, failures in top:
        hook = hooks.get(webhook_id)
        if hook is None:  # deleted meanwhile
            continue
        rows.append(
            {
                "webhookId": str(hook.id),
                "integrationId": str(hook.integration_id),
                "host": urlsplit(hook.url).hostname or "?",
                "failures": failures,
                "active": hook.is_active,
                "failingSince": _iso(hook.failing_since),
            }
        )
    return rows


def health(now: dt.datetime | None = None) -> dict:
    """Integrations by health status (each count up to COUNT_CAP) and active tokens expiring within 24 h."""
    now = now or utcnow()
    by_status = {}
    for name, rank in HEALTH_RANKS:
        where = Integration.health_rank == rank
        if rank == 0:  # rank 0 holds the never-checked rows too (status NULL): told apart on the index's rows
            where &= Integration.health_status.is_null(False)
        by_status[name] = _capped_count(Integration.select(SQL("1")).where(where), COUNT_CAP)
    by_status["unknown"] = _capped_count(
        Integration.select(SQL("1")).where((Integration.health_rank == 0) & Integration.health_status.is_null()),
        COUNT_CAP,
    )
    # `is_active` bare, as the partial index's condition is written: SQLite then uses it.
    expiring = (
        Integration.is_active & (Integration.expires_at > now) & (Integration.expires_at <= now + EXPIRING_WITHIN)
    )
    soonest = (
        Integration.select(Integration.id, Integration.provider, Integration.name, Integration.expires_at)
        .where(expiring)
        .order_by(Integration.expires_at)
        .limit(LIST_LIMIT)
    )
    return {
        "byStatus": by_status,
        "countCap": COUNT_CAP,
        "expiringWithin24h": _capped_count(Integration.select(SQL("1")).where(expiring), COUNT_CAP),
        "expiringSoonest": [
            {"integrationId": str(r.id), "provider": r.provider.value, "name": r.name, "expiresAt": _iso(r.expires_at)}
            for r in soonest
        ],
    }


def syncs_in_progress(now: dt.datetime | None = None, limit: int = LIST_LIMIT) -> dict:
    """Sync runs IN_PROGRESS (up to COUNT_CAP), the longest-running first."""
    now = now or utcnow()
    running = IntegrationSyncLog.status == SyncStatus.IN_PROGRESS
    rows = (
        IntegrationSyncLog.select(
            IntegrationSyncLog.id,
            IntegrationSyncLog.integration,
            IntegrationSyncLog.action,
            IntegrationSyncLog.items_processed,
            IntegrationSyncLog.started_at,
            IntegrationSyncLog.created_at,
        )
        .where(running)
        .order_by(IntegrationSyncLog.created_at)
        .limit(limit)
    )
    return {
        "count": _capped_count(IntegrationSyncLog.select(SQL("1")).where(running), COUNT_CAP),
        "oldest": [
            {
                "id": str(r.id),
                "integrationId": str(r.integration_id),
                "action": r.action,
                "itemsProcessed": r.items_processed,
                "startedAt": _iso(r.started_at),
                "runningSeconds": round((now - (r.started_at or r.created_at)).total_seconds(), 1),
            }
            for r in rows
        ],
    }


def snapshot(settings, now: dt.datetime | None = None) -> dict:
    """One frame of `nexusctl top` (and `top --json`)."""
    now = now or utcnow()
    return {
        "at": _iso(now),
        "deliveries": deliveries_rate(now),
        "queue": queue(now),
        "failingEndpoints": failing_endpoints(now),
        "integrations": health(now),
        "syncs": syncs_in_progress(now),
        # One row per job (a handful): bounded by the number of jobs.
        "jobs": job_runs.listing(settings, now),
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
