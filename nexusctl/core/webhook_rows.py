"""One webhook row as the delivery side needs it: found by id (the owner's only) and which events it takes.

Below the webhook operations (``webhooks.py``: create, update, rotate, test), so that the queue
(``deliveries.py``), which fans events out to webhooks and lists and replays their deliveries, reads
webhooks without importing the module that queues test deliveries through it.
"""

from __future__ import annotations

from nexusctl.core.ids import parse_uuid
from nexusctl.db.models import Integration, Webhook
from nexusctl.db.secrets import public_fields
from nexusctl.errors import WebhookNotFound


def matches(patterns, event_type: str) -> bool:
    for pattern in patterns or ():
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def get(webhook_id, *, owner_id=None) -> Webhook:
    row_id = parse_uuid(webhook_id, "webhookId")
    query = (
        Webhook.select(*public_fields(Webhook), Integration.id, Integration.user_id)
        .join(Integration)
        .where(Webhook.id == row_id)
    )
    row = query.first()
    if row is None or (owner_id is not None and row.integration.user_id != owner_id):
        raise WebhookNotFound(f"webhook {row_id} not found", id=str(row_id))
    return row
