"""The transactional outbox: events recorded with the change that caused them.

``record`` must run inside the caller's transaction, so an event exists if and
only if its change committed. Relaying the outbox to webhooks and the bus is
the jobs-and-events feature's work; until then the rows wait, unpublished.
"""

from __future__ import annotations

from db.models import Integration, OutboxEvent

CONNECTED = "integration.connected"
DISCONNECTED = "integration.disconnected"
ERROR = "integration.error"
REFRESHED = "integration.refreshed"


def record(event_type: str, integration: Integration, **data) -> OutboxEvent:
    """Write one event about ``integration``; ``data`` must hold no secret."""
    payload = {"integrationId": str(integration.id), "userId": str(integration.user_id),
               "provider": integration.provider.value if integration.provider else None, **data}
    return OutboxEvent.create(type=event_type, user_id=integration.user_id, integration_id=integration.id,
                              data=payload)


def pending(limit: int = 100) -> list[OutboxEvent]:
    """The oldest unpublished events (uses the (published_at, created_at) index)."""
    return list(OutboxEvent.select().where(OutboxEvent.published_at.is_null())
                .order_by(OutboxEvent.created_at).limit(limit))
