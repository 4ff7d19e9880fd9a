"""What happened when a delivery was sent: the attempt log and the next state.

2xx is DELIVERED. 410 disables the webhook. 429 and 503 wait as long as the
receiver's Retry-After says (within a day). Anything else (3xx included:
redirects are never followed) is retried on the schedule with ±20% jitter,
RETRYING in between, until the schedule runs out: FAILED and a
``webhook.failed`` event. A webhook that keeps failing for 5 days without one
success is disabled with an ``integration.error`` event.

Every write is fenced by the claim's lease token: a worker whose lease ran out
(it hung, another worker re-sent) cannot overwrite the newer outcome.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from peewee import fn

from db.database import database_proxy, is_postgres
from db.fields import utcnow
from db.models import Integration, OutboxEvent, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.core.deliveries import DISABLE_AFTER, RESPONSE_MAX, retry_delay
from nexusctl.enums import DeliveryStatus

MAX_RETRY_AFTER = 24 * 3600


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

    Same rules as ``record``; the per-row work is one batched UPDATE (psycopg2's
    execute_batch on PostgreSQL: one round trip per 200 rows).
    """
    now = utcnow()
    outcomes = {claimed.id: "lost" for claimed, _ in batch}
    with database_proxy.atomic():
        held = dict(WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.lease_token)
                    .where(WebhookDelivery.id.in_(list(outcomes))).tuples())
        mine = [(c, r) for c, r in batch if held.get(c.id) == c.lease]  # fencing: only leases still ours
        if not mine:
            return [outcomes[c.id] for c, _ in batch]
        hooks = {h.id: h for h in Webhook.select(Webhook.id, Webhook.integration, Webhook.failing_since)
                 .where(Webhook.id.in_(list({c.webhook_id for c, _ in mine})))}
        users = dict(Integration.select(Integration.id, Integration.user_id).where(
            Integration.id.in_(list({h.integration_id for h in hooks.values()}))).tuples())
        attempt_rows, updates, events, succeeded, failing, disable = [], [], [], set(), set(), {}
        for claimed, result in mine:
            hook, number, code = hooks[claimed.webhook_id], claimed.attempts + 1, result.status_code
            attempt_rows.append({"id": uuid.uuid4(), "created_at": now, "updated_at": now, "delivery": claimed.id,
                                 "number": number, "started_at": result.started_at, "status_code": code,
                                 "duration_ms": result.duration_ms, "error": result.error,
                                 "response_body": (result.body or "")[:RESPONSE_MAX] or None})
            response = {"status": code, "body": (result.body or "")[:RESPONSE_MAX]} if code is not None else None
            base = {"webhookId": str(hook.id), "deliveryId": str(claimed.id), "event": claimed.event,
                    "attempts": number}
            delivered_at = next_at = error = None
            if code is not None and 200 <= code < 300:
                status, outcome = DeliveryStatus.DELIVERED, "delivered"
                delivered_at = now
                succeeded.add(hook.id)
                events.append(_outbox("webhook.delivered", hook, users, base, now))
            else:
                error = (result.error or f"HTTP {code}")[:1000]
                failing.add(hook.id)
                if code == 410:
                    status, outcome = DeliveryStatus.FAILED, "disabled"
                    disable[hook.id] = "the receiver answered 410 Gone"
                else:
                    if code in (429, 503) and result.retry_after is not None:
                        delay = float(min(max(result.retry_after, 1), MAX_RETRY_AFTER))
                    else:
                        delay = retry_delay(schedule, number)
                    if delay is None:
                        status, outcome = DeliveryStatus.FAILED, "failed"
                        events.append(_outbox("webhook.failed", hook, users, {**base, "error": error[:300]}, now))
                    else:
                        status, outcome = DeliveryStatus.RETRYING, "retrying"
                        next_at = now + dt.timedelta(seconds=delay)
                    if hook.failing_since is not None and now - hook.failing_since >= DISABLE_AFTER:
                        disable.setdefault(hook.id, "failing for 5 days without a successful delivery")
                        outcome = "disabled"
            outcomes[claimed.id] = outcome
            updates.append((status, number, response, error, delivered_at, next_at, now, claimed.id, claimed.lease))
        WebhookAttempt.insert_many(attempt_rows).execute()
        _update_deliveries(updates)
        if succeeded:
            Webhook.update(last_triggered_at=now, failing_since=None).where(Webhook.id.in_(list(succeeded))).execute()
        if failing - succeeded:
            Webhook.update(last_triggered_at=now, failing_since=fn.COALESCE(Webhook.failing_since, now)).where(
                Webhook.id.in_(list(failing - succeeded))).execute()
        if events:
            OutboxEvent.insert_many(events).execute()
        for hook_id, reason in disable.items():
            if hook_id not in succeeded:
                _disable(hooks[hook_id], reason, None)
    return [outcomes[c.id] for c, _ in batch]


def _outbox(event_type: str, hook: Webhook, users: dict, data: dict, now) -> dict:
    # Outbox only (for the bus): fanning webhook.* out to webhooks could loop forever.
    return {"id": uuid.uuid4(), "created_at": now, "updated_at": now, "type": event_type,
            "user_id": users.get(hook.integration_id), "integration_id": hook.integration_id, "data": data}


def _update_deliveries(rows: list) -> None:
    """One parametrised UPDATE for many rows, fenced by each row's lease token."""
    f = WebhookDelivery
    columns = [f.status, f.attempts, f.response, f.error, f.delivered_at, f.next_attempt_at, f.updated_at]
    mark = database_proxy.param
    sql = (f'UPDATE "{f._meta.table_name}" SET '
           + ", ".join(f'"{c.column_name}" = {mark}' for c in columns)
           + f', "lease_until" = NULL, "lease_token" = NULL WHERE "id" = {mark} AND "lease_token" = {mark}')
    def value(column, v):
        if column is f.response:  # JSON as text: jsonb on PostgreSQL takes it, SQLite stores it
            return None if v is None else json.dumps(v)
        return column.db_value(v)

    params = [tuple(value(c, v) for c, v in zip([*columns, f.id, f.lease_token], row, strict=True)) for row in rows]
    cursor = database_proxy.cursor()
    if is_postgres(database_proxy):
        from psycopg2.extras import execute_batch

        execute_batch(cursor, sql, params, page_size=200)
    else:
        cursor.executemany(sql, params)


def _disable(hook: Webhook, reason: str, delivery_id=None) -> None:
    Webhook.update(is_active=False, disabled_reason=reason, updated_at=utcnow()).where(Webhook.id == hook.id).execute()
    integration = Integration.get_or_none(Integration.id == hook.integration_id)
    if integration is not None:
        OutboxEvent.create(type="integration.error", user_id=integration.user_id, integration_id=integration.id,
                           data={"integrationId": str(integration.id), "webhookId": str(hook.id),
                                 "code": "WEBHOOK_DISABLED", "message": f"webhook disabled: {reason}",
                                 "deliveryId": str(delivery_id) if delivery_id else None})
