"""The transactional outbox: events recorded with the change that caused them.

``record`` must run inside the caller's transaction, so an event exists if and
only if its change committed: one outbox row (published to the Redis Stream by
daemon/relay.py) and one delivery per matching active webhook.
"""

from __future__ import annotations

import json
import re

from db.database import database_proxy
from db.models import Integration, OutboxEvent
from nexusctl.errors import UsageProblem

CONNECTED = "integration.connected"
DISCONNECTED = "integration.disconnected"
ERROR = "integration.error"
REFRESHED = "integration.refreshed"


def record(event_type: str, integration: Integration, **data) -> OutboxEvent:
    """Write one event about ``integration`` (outbox + its webhooks); ``data`` must hold no secret."""
    from nexusctl.core import deliveries

    payload = {"integrationId": str(integration.id), "userId": str(integration.user_id),
               "provider": integration.provider.value if integration.provider else None, **data}
    event = OutboxEvent.create(type=event_type, user_id=integration.user_id, integration_id=integration.id,
                               data=payload)
    # Not integration.disconnected: its webhooks go with it.
    event.deliveries_queued = deliveries.fan_out(integration, event_type, data) if event_type != DISCONNECTED else 0
    return event


EVENT_TYPE_PATTERN = r"[a-z0-9_]+(\.[a-z0-9_]+)+"  # the API document states it too
EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)
EVENT_TYPE_MAX = 64  # outbox_events.type is varchar(64): a longer one was a 500 on PostgreSQL
DATA_MAX_BYTES = 256 * 1024


def emit(integration_id, event_type, data, *, owner_id=None) -> dict:
    """An event from another service or a script: queued to every matching webhook, in one transaction."""
    from nexusctl.core import integrations

    if not isinstance(event_type, str) or len(event_type) > EVENT_TYPE_MAX or not EVENT_TYPE.fullmatch(event_type):
        raise UsageProblem(f"type must be an event name like media.created, at most {EVENT_TYPE_MAX} characters",
                           field="type")
    if event_type.startswith("webhook."):
        raise UsageProblem("webhook.* events are the service's own", field="type")
    if not isinstance(data, dict):
        raise UsageProblem("data must be a JSON object", field="data")
    if len(json.dumps(data)) > DATA_MAX_BYTES:
        raise UsageProblem(f"data is over {DATA_MAX_BYTES // 1024} KB", field="data")
    integration = integrations.get(integration_id, owner_id=owner_id)
    with database_proxy.atomic():
        event = record(event_type, integration, **data)
    return {"id": str(event.id), "type": event_type, "integrationId": str(integration.id),
            "deliveriesQueued": event.deliveries_queued}

