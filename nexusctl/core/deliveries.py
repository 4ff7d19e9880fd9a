"""Deliveries: fan-out on emit, claiming with leases, recording each attempt.

Emit writes one ``webhook_deliveries`` row per matching active webhook in the
caller's transaction (on PostgreSQL it also NOTIFYs, which is delivered at
commit, so workers wake at once). Workers claim due rows in batches under a
lease: one UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) on
PostgreSQL, so several daemons never claim the same row; an expired lease
(a crashed worker) makes the row due again, and the retry keeps its
``webhook-id``. Every write after a send is fenced by the lease token.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from dataclasses import dataclass
from typing import Callable

from peewee import Tuple, Value

from db.database import database_proxy, is_postgres
from db.fields import utcnow
from db.models import Integration, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.core.ids import parse_uuid
from nexusctl.core.paging import Bulky, Page, bounded_page
from nexusctl.enums import DeliveryStatus
from nexusctl.errors import DeliveryNotFound, KeyNotConfigured, UsageProblem

NOTIFY_CHANNEL = "nexus_deliveries"
JITTER = 0.2
DISABLE_AFTER = dt.timedelta(days=5)
RESPONSE_MAX = 4096
DUE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
# Called after rows are queued in this process (the daemon's worker wakes on it).
LISTENERS: list = []


def payload_of(integration: Integration, event_type: str, data: dict, now: dt.datetime | None = None) -> dict:
    envelope = {**(data or {}), "integrationId": str(integration.id),  # data cannot rename the subject
                "provider": integration.provider.value if integration.provider else None}
    return {"type": event_type, "timestamp": (now or utcnow()).isoformat().replace("+00:00", "Z"), "data": envelope}


def fan_out(integration: Integration, event_type: str, data: dict) -> int:
    """Queue one delivery per matching active webhook; run inside the caller's transaction."""
    from nexusctl.core.webhooks import matches

    hooks = [h for h in Webhook.select(Webhook.id, Webhook.events).where(
        (Webhook.integration == integration.id) & (Webhook.is_active == True))  # noqa: E712
        if matches(h.events, event_type)]
    return len(queue(integration, event_type, data, hooks))


def queue(integration: Integration, event_type: str, data: dict, hooks) -> list[uuid.UUID]:
    """One PENDING delivery of the event to each of ``hooks``; their ids. Inside the caller's transaction."""
    if not hooks:
        return []
    now = utcnow()
    payload = payload_of(integration, event_type, data, now)
    rows = [{"id": uuid.uuid4(), "webhook": h.id, "event": event_type, "payload": payload, "next_attempt_at": now,
             "status": DeliveryStatus.PENDING, "created_at": now, "updated_at": now} for h in hooks]
    WebhookDelivery.insert_many(rows).execute()
    _notify()
    return [row["id"] for row in rows]


# --- reading --------------------------------------------------------------

def get(delivery_id, *, owner_id=None) -> WebhookDelivery:
    row_id = parse_uuid(delivery_id, "deliveryId")
    row = (WebhookDelivery.select(WebhookDelivery, Webhook.id, Integration.id, Integration.user_id)
           .join(Webhook).join(Integration)
           .where(WebhookDelivery.id == row_id).first())
    if row is None or (owner_id is not None and row.webhook.integration.user_id != owner_id):
        raise DeliveryNotFound(f"delivery {row_id} not found", id=str(row_id))
    return row


def page_with_attempts(webhook_id, *, status=None, limit=None, cursor=None, owner_id=None) -> tuple[Page, list]:
    """A page of a webhook's deliveries as dicts, each with its attempt log, bounded in bytes
    (paging.bounded_page: a payload over FIELD_BYTES is left out; ``get`` shows it)."""
    from nexusctl.core import webhooks
    from nexusctl.core.serializers import delivery_to_dict

    hook = webhooks.get(webhook_id, owner_id=owner_id)
    query = WebhookDelivery.select().where(WebhookDelivery.webhook == hook.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == _status(status))

    def serialize(rows):
        log = attempts_of(rows)
        return [delivery_to_dict(d, log[d.id]) for d in rows]

    page = bounded_page(query, WebhookDelivery, limit, cursor, bulky=Bulky(WebhookDelivery.payload, "payload"),
                        serialize=serialize)
    return page, page.items


def get_with_attempts(delivery_id, *, owner_id=None) -> dict:
    """One delivery as a dict with its whole payload and attempt log (the list may leave the payload out)."""
    from nexusctl.core.serializers import delivery_to_dict

    row = get(delivery_id, owner_id=owner_id)
    return delivery_to_dict(row, attempts_of([row])[row.id])


def attempts_of(deliveries) -> dict:
    """Each delivery's attempts, oldest first, in one query for the page."""
    ids = [d.id for d in deliveries]
    found: dict = {i: [] for i in ids}
    if ids:
        for attempt in WebhookAttempt.select().where(WebhookAttempt.delivery.in_(ids)).order_by(
                WebhookAttempt.number):
            found[attempt.delivery_id].append(attempt)
    return found


def _status(value) -> DeliveryStatus:
    try:
        return DeliveryStatus(str(value).upper())
    except ValueError:
        raise UsageProblem(f"status must be one of: {', '.join(s.value for s in DeliveryStatus)}",
                           field="status") from None


# --- operator actions ---------------------------------------------------------

def redeliver(delivery_id, *, owner_id=None) -> WebhookDelivery:
    """Send again now, with the same webhook-id (receivers that saw it may skip it)."""
    row = get(delivery_id, owner_id=owner_id)
    WebhookDelivery.update(status=DeliveryStatus.PENDING, next_attempt_at=utcnow(), lease_until=None,
                           lease_token=None, updated_at=utcnow()).where(WebhookDelivery.id == row.id).execute()
    _notify()
    return get(row.id)


def replay(webhook_id, *, since: dt.datetime, status=None, owner_id=None, dry_run: bool = False,
           batch_size: int | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Queue again every delivery of a webhook created since ``since``; returns how many.

    One set-based UPDATE by default. With ``batch_size`` it goes in pages along the
    (webhook, created_at, id) index, one short transaction each, calling ``progress(n)``
    after each, so the daemon starts sending the first ones while the rest are queued.
    ``dry_run`` only counts.
    """
    from nexusctl.core import webhooks

    hook = webhooks.get(webhook_id, owner_id=owner_id)
    where = (WebhookDelivery.webhook == hook.id) & (WebhookDelivery.created_at >= since)
    if status is not None:
        where &= WebhookDelivery.status == _status(status)
    if dry_run:
        return WebhookDelivery.select().where(where).count()
    if batch_size is None:
        count = _requeue(where)
        _notify()
        return count
    count, after = 0, None
    while True:
        page = (WebhookDelivery.select(WebhookDelivery.created_at, WebhookDelivery.id).where(where)
                .order_by(WebhookDelivery.created_at, WebhookDelivery.id).limit(batch_size))
        if after is not None:
            page = page.where(Tuple(WebhookDelivery.created_at, WebhookDelivery.id) > Tuple(
                Value(after[0], converter=WebhookDelivery.created_at.db_value),
                Value(after[1], converter=WebhookDelivery.id.db_value)))
        keys = list(page.tuples())
        if not keys:
            return count
        done = _requeue(where & WebhookDelivery.id.in_([key[1] for key in keys]))
        _notify()
        count += done
        after = keys[-1]
        if progress:
            progress(done)


def _requeue(where) -> int:
    return WebhookDelivery.update(status=DeliveryStatus.PENDING, next_attempt_at=utcnow(), lease_until=None,
                                  lease_token=None, updated_at=utcnow()).where(where).execute()


def _notify() -> None:
    if is_postgres(database_proxy):  # delivered at commit, to every listening daemon
        database_proxy.execute_sql("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
    for listener in LISTENERS:
        listener()


# --- the worker's side --------------------------------------------------------

@dataclass
class Claimed:
    id: uuid.UUID
    webhook_id: uuid.UUID
    event: str
    payload: dict
    attempts: int
    lease: uuid.UUID
    created_at: dt.datetime | None = None  # when the event queued it: /metrics' emit-to-attempt latency


_PG_CLAIM = """UPDATE "webhook_deliveries" SET "lease_until" = %(until)s, "lease_token" = %(lease)s
WHERE "id" IN (
    SELECT d."id" FROM "webhook_deliveries" AS d JOIN "webhooks" AS w ON w."id" = d."webhook_id"
    WHERE d."status" IN ('PENDING', 'RETRYING') AND d."next_attempt_at" <= %(now)s
      AND (d."lease_until" IS NULL OR d."lease_until" < %(now)s) AND w."is_active"
      AND NOT (d."webhook_id" = ANY(%(exclude)s::uuid[]))
    ORDER BY d."next_attempt_at" LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED)
  AND "status" IN ('PENDING', 'RETRYING') AND "next_attempt_at" <= %(now)s
  AND ("lease_until" IS NULL OR "lease_until" < %(now)s)
RETURNING id, webhook_id, event, payload, attempts, created_at"""


def claim(limit: int, lease_seconds: float, exclude=()) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of active webhooks (not of the ``exclude`` ones)."""
    now, lease = utcnow(), uuid.uuid4()
    if is_postgres(database_proxy):
        # The portable query below, written out (building it with peewee on every claim cost
        # more of the daemon's CPU than running it). It locks the delivery rows themselves (not
        # the joined webhook): PostgreSQL then re-checks the lease condition on a row another
        # worker just claimed, and skips rows being claimed. The status list is literal so the
        # partial index on next_attempt_at always matches.
        until = now + dt.timedelta(seconds=lease_seconds)
        with database_proxy.atomic():
            rows = database_proxy.execute_sql(_PG_CLAIM, {
                "until": until, "lease": str(lease), "now": now, "limit": int(limit),
                "exclude": [str(w) for w in exclude]}).fetchall()
        return [Claimed(_uuid(r[0]), _uuid(r[1]), r[2], r[3] if isinstance(r[3], dict) else json.loads(r[3]), r[4],
                        lease, WebhookDelivery.created_at.python_value(r[5])) for r in rows]
    # The statuses as literals, not parameters: SQLite uses a partial index only when the query's
    # WHERE names its condition's constants, and without it the claim sorted every due row
    # (1.1 s per claim with 100,000 due of 1,000,000; bench/growth.py).
    from peewee import SQL

    statuses = [SQL(f"'{status.value}'") for status in DUE]
    claimable = (WebhookDelivery.status.in_(statuses) & (WebhookDelivery.next_attempt_at <= now)
                 & (WebhookDelivery.lease_until.is_null() | (WebhookDelivery.lease_until < now)))
    if exclude:  # endpoints this worker already sends to at their cap
        claimable &= WebhookDelivery.webhook.not_in(list(exclude))
    due = (WebhookDelivery.select(WebhookDelivery.id).join(Webhook)
           .where(claimable & (Webhook.is_active == True))  # noqa: E712
           .order_by(WebhookDelivery.next_attempt_at).limit(limit))
    if not due.exists():
        return []  # SQLite: don't take the write lock every poll when nothing is due
    until = now + dt.timedelta(seconds=lease_seconds)
    with database_proxy.atomic():
        query = (WebhookDelivery.update(lease_until=until, lease_token=lease)
                 .where(WebhookDelivery.id.in_(due) & claimable)  # and again on the row as updated
                 .returning(WebhookDelivery.id, WebhookDelivery.webhook, WebhookDelivery.event,
                            WebhookDelivery.payload, WebhookDelivery.attempts, WebhookDelivery.created_at))
        rows = list(query.tuples().execute())
    return [Claimed(_uuid(r[0]), _uuid(r[1]), r[2], WebhookDelivery.payload.python_value(r[3]), r[4], lease,
                    WebhookDelivery.created_at.python_value(r[5])) for r in rows]


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def retry_delay(schedule: tuple[int, ...], attempts: int) -> float | None:
    """Seconds until the next try after ``attempts`` tries (±20% jitter), or None when exhausted."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    return max(0.0, base * random.uniform(1 - JITTER, 1 + JITTER))


def signing_for(keyring, webhook_ids) -> tuple[dict, dict]:
    """(url and signing secrets of each webhook, {webhook id: key id} of those whose secret is under a key
    ``keyring`` lacks), in one query (once per claimed batch)."""
    from nexusctl.core.webhooks import signing_secrets

    signing, locked = {}, {}
    for row in Webhook.select().where(Webhook.id.in_(list(set(webhook_ids)))):
        try:
            signing[row.id] = (row.url, signing_secrets(keyring, row))
        except KeyNotConfigured as exc:  # a rotation this process was not restarted for
            locked[row.id] = exc.details["keyId"]
    return signing, locked


def release(items: list[Claimed]) -> None:
    """Give claimed deliveries back untouched (more than their endpoint may take at once)."""
    for lease in {c.lease for c in items}:
        WebhookDelivery.update(lease_until=None, lease_token=None).where(
            WebhookDelivery.id.in_([c.id for c in items if c.lease == lease])
            & (WebhookDelivery.lease_token == lease)).execute()
