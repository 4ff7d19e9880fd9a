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
from dataclasses import dataclass

from db.database import database_proxy
from db.fields import utcnow
from db.models import Integration, OutboxEvent, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.core.deliveries import DISABLE_AFTER, RESPONSE_MAX, Claimed, retry_delay
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


def _event(event_type: str, hook: Webhook, delivery_id, **data) -> None:
    # Outbox only (for the bus): fanning webhook.* out to webhooks could loop forever.
    integration = Integration.select(Integration.id, Integration.user_id, Integration.provider).where(
        Integration.id == hook.integration_id).first()
    OutboxEvent.create(type=event_type, user_id=integration.user_id if integration else None,
                       integration_id=hook.integration_id,
                       data={"webhookId": str(hook.id), "deliveryId": str(delivery_id), **data})


def record(claimed: Claimed, result: Result, schedule: tuple[int, ...]) -> str:
    """Store the attempt and the delivery's next state; returns the outcome, or "lost" (lease gone)."""
    with database_proxy.atomic():
        return _record(claimed, result, schedule)


def record_many(batch: list, schedule: tuple[int, ...]) -> list[str]:
    """Several attempts in one transaction: one commit (one WAL flush) for the lot."""
    with database_proxy.atomic():
        return [_record(claimed, result, schedule) for claimed, result in batch]


def _record(claimed: Claimed, result: Result, schedule: tuple[int, ...]) -> str:
    now = utcnow()
    attempts = claimed.attempts + 1
    code = result.status_code
    mine = (WebhookDelivery.id == claimed.id) & (WebhookDelivery.lease_token == claimed.lease)
    if not WebhookDelivery.select(WebhookDelivery.id).where(mine).exists():
        return "lost"
    WebhookAttempt.create(delivery=claimed.id, number=attempts, started_at=result.started_at,
                          status_code=code, duration_ms=result.duration_ms, error=result.error,
                          response_body=(result.body or "")[:RESPONSE_MAX] or None)
    hook = Webhook.get_by_id(claimed.webhook_id)
    response = {"status": code, "body": (result.body or "")[:RESPONSE_MAX]} if code is not None else None
    changes = {WebhookDelivery.attempts: attempts, WebhookDelivery.response: response,
               WebhookDelivery.lease_until: None, WebhookDelivery.lease_token: None,
               WebhookDelivery.updated_at: now}
    if code is not None and 200 <= code < 300:
        changes.update({WebhookDelivery.status: DeliveryStatus.DELIVERED, WebhookDelivery.delivered_at: now,
                        WebhookDelivery.error: None, WebhookDelivery.next_attempt_at: None})
        WebhookDelivery.update(changes).where(mine).execute()
        Webhook.update(last_triggered_at=now, failing_since=None).where(Webhook.id == hook.id).execute()
        _event("webhook.delivered", hook, claimed.id, event=claimed.event, attempts=attempts)
        return "delivered"
    error = result.error or f"HTTP {code}"
    changes[WebhookDelivery.error] = error[:1000]
    if code == 410:
        changes.update({WebhookDelivery.status: DeliveryStatus.FAILED, WebhookDelivery.next_attempt_at: None})
        WebhookDelivery.update(changes).where(mine).execute()
        _disable(hook, "the receiver answered 410 Gone", claimed.id)
        return "disabled"
    if code in (429, 503) and result.retry_after is not None:
        delay = float(min(max(result.retry_after, 1), MAX_RETRY_AFTER))
    else:
        delay = retry_delay(schedule, attempts)
    failing_since = hook.failing_since or now
    if hook.failing_since is None:
        Webhook.update(failing_since=now, last_triggered_at=now).where(Webhook.id == hook.id).execute()
    else:
        Webhook.update(last_triggered_at=now).where(Webhook.id == hook.id).execute()
    if delay is None:
        changes.update({WebhookDelivery.status: DeliveryStatus.FAILED, WebhookDelivery.next_attempt_at: None})
        WebhookDelivery.update(changes).where(mine).execute()
        _event("webhook.failed", hook, claimed.id, event=claimed.event, attempts=attempts, error=error[:300])
        outcome = "failed"
    else:
        changes.update({WebhookDelivery.status: DeliveryStatus.RETRYING,
                        WebhookDelivery.next_attempt_at: now + dt.timedelta(seconds=delay)})
        WebhookDelivery.update(changes).where(mine).execute()
        outcome = "retrying"
    if now - failing_since >= DISABLE_AFTER:
        _disable(hook, "failing for 5 days without a successful delivery", claimed.id)
        outcome = "disabled"
    return outcome


def _disable(hook: Webhook, reason: str, delivery_id) -> None:
    Webhook.update(is_active=False, disabled_reason=reason, updated_at=utcnow()).where(Webhook.id == hook.id).execute()
    integration = Integration.get_or_none(Integration.id == hook.integration_id)
    if integration is not None:
        OutboxEvent.create(type="integration.error", user_id=integration.user_id, integration_id=integration.id,
                           data={"integrationId": str(integration.id), "webhookId": str(hook.id),
                                 "code": "WEBHOOK_DISABLED", "message": f"webhook disabled: {reason}",
                                 "deliveryId": str(delivery_id)})


def release(claimed: Claimed) -> None:
    """Give a claimed delivery back untouched (shutdown before it was sent)."""
    WebhookDelivery.update(lease_until=None, lease_token=None).where(
        (WebhookDelivery.id == claimed.id) & (WebhookDelivery.lease_token == claimed.lease)).execute()
