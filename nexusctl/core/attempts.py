"""What happened when a delivery was sent: the attempt log and the next state.

2xx is DELIVERED. 410 ends the delivery FAILED at once and disables the
webhook. Anything else (3xx included: redirects are never followed) is retried
on the schedule with ±20% jitter, RETRYING in between, until the schedule runs
out: FAILED. Every FAILED delivery emits ``webhook.failed``. A throttled
answer (429, 503) counts against the schedule like any failure; it only
shapes the wait (``wait_after``). A webhook that keeps failing for 5 days
without one success is disabled with an ``integration.error`` event.

Every write is fenced by the claim's lease token: a worker whose lease ran out
(it hung, another worker re-sent) cannot overwrite the newer outcome.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from peewee import Case, fn

from nexusctl.core.deliveries import DISABLE_AFTER, RESPONSE_MAX, retry_delay
from nexusctl.db.database import database_proxy, is_postgres
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, OutboxEvent, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus

THROTTLED = (429, 503)


@dataclass
class Result:
    started_at: dt.datetime
    duration_ms: int
    status_code: int | None = None
    body: str | None = None
    error: str | None = None  # network failure, timeout, refused address
    retry_after: int | None = None


def record_many(batch: list, schedule: tuple[int, ...]) -> list[str]:
    """Record a batch of attempts set-based: a handful of statements and one commit for the lot.

    Fencing first: the deliveries are updated only where the claim's lease token still
    holds (on PostgreSQL one ``UPDATE ... FROM unnest(...) RETURNING id``, which takes the
    row locks, so the check and the write are one step); attempts, events and the webhooks'
    state are then written for exactly those rows. A delivery whose lease was lost gets
    nothing written ("lost").
    """
    now = utcnow()
    outcomes = {claimed.id: "lost" for claimed, _ in batch}
    if not batch:
        return []
    with database_proxy.atomic():
        hooks = {
            h.id: h
            for h in Webhook.select(Webhook.id, Webhook.integration, Webhook.failing_since).where(
                Webhook.id.in_(list({c.webhook_id for c, _ in batch}))
            )
        }
        users = dict(
            Integration.select(Integration.id, Integration.user_id)
            .where(Integration.id.in_(list({h.integration_id for h in hooks.values()})))
            .tuples()
        )
        planned = []  # (claimed, result, outcome, delivery update, events)
        for claimed, result in batch:
            hook = hooks.get(claimed.webhook_id)
            if hook is None:  # webhook deleted: its deliveries went with it (cascade)
                continue
            number, code = claimed.attempts + 1, result.status_code
            response = {"status": code, "body": (result.body or "")[:RESPONSE_MAX]} if code is not None else None
            base = {
                "webhookId": str(hook.id),
                "deliveryId": str(claimed.id),
                "event": claimed.event,
                "attempts": number,
            }
            delivered_at = next_at = error = None
            events, disable = [], None
            if code is not None and 200 <= code < 300:
                status, outcome = DeliveryStatus.DELIVERED, "delivered"
                delivered_at = now
                events.append(_outbox("webhook.delivered", hook, users, base, now))
            else:
                error = (result.error or f"HTTP {code}")[:1000]
                # 410 Gone: the receiver asks to be left alone, so no retry (and the webhook goes below).
                delay = None if code == 410 else wait_after(schedule, number, code, result.retry_after)
                if delay is None:
                    status, outcome = DeliveryStatus.FAILED, "failed"
                    events.append(_outbox("webhook.failed", hook, users, {**base, "error": error[:300]}, now))
                else:
                    status, outcome = DeliveryStatus.RETRYING, "retrying"
                    next_at = now + dt.timedelta(seconds=delay)
                if code == 410:
                    disable, outcome = "the receiver answered 410 Gone", "disabled"
                elif hook.failing_since is not None and now - hook.failing_since >= DISABLE_AFTER:
                    disable, outcome = "failing for 5 days without a successful delivery", "disabled"
            update = (status, number, response, error, delivered_at, next_at, now, claimed.id, claimed.lease)
            planned.append((claimed, result, outcome, update, events, disable))
        held = _update_deliveries([p[3] for p in planned])  # fencing: only leases still ours
        attempt_rows, events, succeeded, failing, disable = [], [], set(), set(), {}
        for claimed, result, outcome, _, row_events, reason in planned:
            if claimed.id not in held:
                continue
            outcomes[claimed.id] = outcome
            attempt_rows.append(
                (
                    uuid.uuid4(),
                    claimed.id,
                    claimed.attempts + 1,
                    result.started_at,
                    result.status_code,
                    result.duration_ms,
                    result.error,
                    (result.body or "")[:RESPONSE_MAX] or None,
                )
            )
            events.extend(row_events)
            if outcome == "delivered":
                succeeded.add(claimed.webhook_id)
            else:
                failing.add(claimed.webhook_id)
                if reason is not None:
                    disable.setdefault(claimed.webhook_id, reason)
        if not attempt_rows:
            return [outcomes[c.id] for c, _ in batch]
        _insert_attempts(attempt_rows, now)
        if events:
            _insert_events(events)
        # The webhooks' rows last and in one statement: two writers' batches for one webhook
        # wait on each other's row lock here, so it is held for the shortest time before the
        # commit, and one statement locks its rows in one (index) order, so they never deadlock.
        still_failing = fn.COALESCE(Webhook.failing_since, now)
        if not succeeded:
            failing_since = still_failing
        elif failing - succeeded:
            failing_since = Case(None, [(Webhook.id.in_(list(succeeded)), None)], still_failing)
        else:
            failing_since = None
        Webhook.update(last_triggered_at=now, failing_since=failing_since).where(
            Webhook.id.in_(list(succeeded | failing))
        ).execute()
        for hook_id, reason in disable.items():
            if hook_id not in succeeded:
                _disable(hooks[hook_id], reason, None)
    return [outcomes[c.id] for c, _ in batch]


def wait_after(schedule: tuple[int, ...], attempts: int, code: int | None, retry_after: int | None) -> float | None:
    """Seconds until the next try after ``attempts`` tries, or None when the schedule has run out.

    A throttled answer (429, 503) counts as an attempt like any failure, so a receiver that
    keeps answering 429 ends FAILED after the schedule's last attempt instead of being retried
    for days. It waits at least the schedule's own step (never the early side of the jitter),
    longer when its ``Retry-After`` asks, but at most twice the step: Svix's bounds, so
    ``Retry-After: 0`` cannot turn the schedule into a busy loop and ``Retry-After: 86400``
    cannot park a delivery for a day.
    """
    scheduled = retry_delay(schedule, attempts)
    if scheduled is None or code not in THROTTLED:
        return scheduled
    step = schedule[attempts - 1]
    return float(min(max(scheduled, step, retry_after or 0), 2 * step))


def _outbox(event_type: str, hook: Webhook, users: dict, data: dict, now) -> dict:
    # Outbox only (for the bus): fanning webhook.* out to webhooks could loop forever.
    return {
        "id": uuid.uuid4(),
        "created_at": now,
        "updated_at": now,
        "type": event_type,
        "user_id": users.get(hook.integration_id),
        "integration_id": hook.integration_id,
        "data": data,
    }


_PG_UPDATE = """UPDATE "webhook_deliveries" AS d SET "status" = v.status, "attempts" = v.attempts,
 "response" = v.response, "error" = v.error, "delivered_at" = v.delivered_at,
 "next_attempt_at" = v.next_attempt_at, "updated_at" = %s, "lease_until" = NULL, "lease_token" = NULL
FROM unnest(%s::uuid[], %s::uuid[], %s::varchar[], %s::int[], %s::jsonb[], %s::text[], %s::timestamptz[],
            %s::timestamptz[]) AS v(id, lease, status, attempts, response, error, delivered_at, next_attempt_at)
WHERE d."id" = v.id AND d."lease_token" = v.lease
RETURNING d.id"""


def _update_deliveries(rows: list) -> set:
    """Write each row's outcome where its lease token still holds; the ids written."""
    if not rows:
        return set()
    f = WebhookDelivery
    if is_postgres(database_proxy):
        # One statement for the batch (arrays in, ids out): no per-row round trip or plan.
        columns = list(zip(*rows, strict=True))
        status, number, response, error, delivered_at, next_at, now, ids, leases = columns
        cursor = database_proxy.execute_sql(
            _PG_UPDATE,
            (
                now[0],
                [str(i) for i in ids],
                [str(t) for t in leases],
                [s.value for s in status],
                list(number),
                [None if r is None else json.dumps(r) for r in response],
                list(error),
                list(delivered_at),
                list(next_at),
            ),
        )
        return {r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(str(r[0])) for r in cursor.fetchall()}
    # SQLite: the transaction holds the write lock (BEGIN IMMEDIATE), so read-then-write is atomic.
    held = dict(f.select(f.id, f.lease_token).where(f.id.in_([r[7] for r in rows])).tuples())
    rows = [r for r in rows if held.get(r[7]) == r[8]]
    columns = [f.status, f.attempts, f.response, f.error, f.delivered_at, f.next_attempt_at, f.updated_at]
    mark = database_proxy.param
    sql = (
        f'UPDATE "{f._meta.table_name}" SET '
        + ", ".join(f'"{c.column_name}" = {mark}' for c in columns)
        + f', "lease_until" = NULL, "lease_token" = NULL WHERE "id" = {mark} AND "lease_token" = {mark}'
    )

    def value(column, v):
        if column is f.response:  # JSON as text
            return None if v is None else json.dumps(v)
        return column.db_value(v)

    params = [tuple(value(c, v) for c, v in zip([*columns, f.id, f.lease_token], row, strict=True)) for row in rows]
    database_proxy.cursor().executemany(sql, params)
    return {r[7] for r in rows}


_PG_ATTEMPTS = """INSERT INTO "webhook_attempts" ("id", "created_at", "updated_at", "delivery_id", "number",
 "started_at", "status_code", "duration_ms", "error", "response_body")
SELECT v.id, %s, %s, v.delivery_id, v.number, v.started_at, v.status_code, v.duration_ms, v.error, v.body
FROM unnest(%s::uuid[], %s::uuid[], %s::int[], %s::timestamptz[], %s::int[], %s::int[], %s::text[], %s::text[])
 AS v(id, delivery_id, number, started_at, status_code, duration_ms, error, body)"""

_PG_EVENTS = """INSERT INTO "outbox_events" ("id", "created_at", "updated_at", "type", "user_id", "integration_id",
 "data")
SELECT v.id, %s, %s, v.type, v.user_id, v.integration_id, v.data
FROM unnest(%s::uuid[], %s::varchar[], %s::uuid[], %s::uuid[], %s::jsonb[]) AS v(id, type, user_id, integration_id,
 data)"""


def _insert_attempts(rows: list, now) -> None:
    """rows: (id, delivery_id, number, started_at, status_code, duration_ms, error, response_body)."""
    if is_postgres(database_proxy):
        ids, delivery_ids, number, started, code, duration, error, body = zip(*rows, strict=True)
        database_proxy.execute_sql(
            _PG_ATTEMPTS,
            (
                now,
                now,
                [str(i) for i in ids],
                [str(i) for i in delivery_ids],
                list(number),
                list(started),
                list(code),
                list(duration),
                list(error),
                list(body),
            ),
        )
        return
    keys = ("id", "delivery", "number", "started_at", "status_code", "duration_ms", "error", "response_body")
    WebhookAttempt.insert_many(
        [{**dict(zip(keys, r, strict=True)), "created_at": now, "updated_at": now} for r in rows]
    ).execute()


def _insert_events(events: list) -> None:
    if is_postgres(database_proxy):
        now = events[0]["created_at"]
        database_proxy.execute_sql(
            _PG_EVENTS,
            (
                now,
                now,
                [str(e["id"]) for e in events],
                [e["type"] for e in events],
                [None if e["user_id"] is None else str(e["user_id"]) for e in events],
                [None if e["integration_id"] is None else str(e["integration_id"]) for e in events],
                [json.dumps(e["data"]) for e in events],
            ),
        )
        return
    OutboxEvent.insert_many(events).execute()


def _disable(hook: Webhook, reason: str, delivery_id=None) -> None:
    now = utcnow()
    Webhook.update(is_active=False, disabled_reason=reason, updated_at=now).where(Webhook.id == hook.id).execute()
    # Its other queued deliveries would never be sent (the worker skips inactive webhooks) and would count as
    # RETRYING forever: they end FAILED with the reason, for a replay once the webhook is enabled again. One
    # another worker is sending right now (its lease holds) is left to that worker's result.
    WebhookDelivery.update(
        status=DeliveryStatus.FAILED,
        error=f"webhook disabled: {reason}"[:500],
        next_attempt_at=None,
        lease_until=None,
        lease_token=None,
        updated_at=now,
    ).where(
        (WebhookDelivery.webhook == hook.id)
        & WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
        & (WebhookDelivery.lease_until.is_null() | (WebhookDelivery.lease_until < now))
    ).execute()
    integration = Integration.get_or_none(Integration.id == hook.integration_id)
    if integration is not None:
        OutboxEvent.create(
            type="integration.error",
            user_id=integration.user_id,
            integration_id=integration.id,
            data={
                "integrationId": str(integration.id),
                "webhookId": str(hook.id),
                "code": "WEBHOOK_DISABLED",
                "message": f"webhook disabled: {reason}",
                "deliveryId": str(delivery_id) if delivery_id else None,
            },
        )
