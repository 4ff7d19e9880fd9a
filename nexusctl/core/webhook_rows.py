"""One webhook row as the delivery side needs it: found by id (the owner's only) and which events it takes.

Below the webhook operations (``webhooks.py``: create, update, rotate, test), so that the queue
(``deliveries.py``), which fans events out to webhooks and lists and replays their deliveries, reads
webhooks without importing the module that queues test deliveries through it.
"""

from __future__ import annotations

import functools

from nexusctl.core.ids import parse_uuid
from nexusctl.db.database import database_proxy, is_postgres
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


def owner_of(webhook_id, *, owner_id=None):
    """The webhook's id (a UUID) if it exists and, with ``owner_id``, is theirs; else WEBHOOK_NOT_FOUND.
    What a list under a webhook checks first, by one statement written once (no model object)."""
    row_id = parse_uuid(webhook_id, "webhookId")
    sql = _owner_sql(is_postgres(database_proxy))
    found = database_proxy.execute_sql(sql, [Webhook.id.db_value(row_id)]).fetchone()
    if found is None or (owner_id is not None and Integration.user_id.python_value(found[0]) != owner_id):
        raise WebhookNotFound(f"webhook {row_id} not found", id=str(row_id))
    return row_id


@functools.lru_cache(maxsize=2)
def _owner_sql(postgres: bool) -> str:
    mark = "%s" if postgres else "?"
    return (
        'SELECT p."user_id" FROM "webhooks" AS t JOIN "integrations" AS p ON p."id" = t."integration_id" '
        f'WHERE t."id" = {mark}'
    )


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
