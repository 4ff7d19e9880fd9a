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
SLACK_COMMAND = "slack.command"  # a slash command typed in a connected workspace (nexusctl.core.slack_commands)
# Events that come from a provider through a verified route: nobody may emit them in a provider's name.
FROM_PROVIDERS = (SLACK_COMMAND,)


def record(event_type: str, integration: Integration, **data) -> OutboxEvent:
    """Write one event about ``integration`` (outbox + its webhooks); ``data`` must hold no secret."""
    from nexusctl.core import deliveries

    # The subject comes last: ``data`` (which emit takes from a caller) cannot name another user or
    # integration, so nobody can publish an event about someone else's integration onto the bus.
    payload = {**data, "integrationId": str(integration.id), "userId": str(integration.user_id),
               "provider": integration.provider.value if integration.provider else None}
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
    from nexusctl.core.inbound import HANDLED as PLATFORM_EVENTS  # what the consumer acts on

    if event_type.startswith(("integration.", "webhook.")) or event_type in PLATFORM_EVENTS + FROM_PROVIDERS:
        # Emitted events reach the platform's event bus, which this service (user.deleted deletes a user's
        # integrations) and others consume: a caller must not be able to speak for the platform, nor for a
        # provider (a forged slack.command would look like a verified one).
        raise UsageProblem(f"{event_type} is reserved: integration.* and webhook.* are this service's own "
                           f"events, {' and '.join(PLATFORM_EVENTS)} come from the platform, "
                           f"{', '.join(FROM_PROVIDERS)} from providers", field="type")
    if not isinstance(data, dict):
        raise UsageProblem("data must be a JSON object", field="data")
    if len(json.dumps(data)) > DATA_MAX_BYTES:
        raise UsageProblem(f"data is over {DATA_MAX_BYTES // 1024} KB", field="data")
    integration = integrations.get(integration_id, owner_id=owner_id)
    with database_proxy.atomic():
        event = record(event_type, integration, **data)
    return {"id": str(event.id), "type": event_type, "integrationId": str(integration.id),
            "deliveriesQueued": event.deliveries_queued}

