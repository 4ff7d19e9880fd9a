"""One dict per model: what the API returns in ``data`` and `--json` prints.

camelCase keys as in the spec. Encrypted columns are never included: the
test suite checks every serializer against every secret column.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from nexusctl.db.models import Integration, IntegrationSyncLog


def _value(value):
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def integration_to_dict(row: Integration) -> dict:
    return {
        "id": _value(row.id),
        "userId": _value(row.user_id),
        "organizationId": _value(row.organization_id),
        "provider": _value(row.provider),
        "name": row.name,
        "isActive": row.is_active,
        "tokenType": row.token_type,
        "expiresAt": _value(row.expires_at),
        "scope": list(row.scope or []),
        "metadata": row.metadata or {},
        "lastSyncAt": _value(row.last_sync_at),
        "lastError": row.last_error,
        # The refresh sweep's back-off: failures in a row, and when it tries again (null: not waiting).
        "refreshFailures": row.refresh_failures or 0,
        "refreshRetryAt": _value(row.refresh_retry_at),
        "createdAt": _value(row.created_at),
        "updatedAt": _value(row.updated_at),
    }


def sync_log_to_dict(row: IntegrationSyncLog) -> dict:
    return {
        "id": _value(row.id),
        "integrationId": _value(row.integration_id),
        "action": row.action,
        "resourceType": row.resource_type,
        "resourceId": row.resource_id,
        "status": _value(row.status),
        "itemsProcessed": row.items_processed,
        "itemsFailed": row.items_failed,
        "error": row.error,
        "metadata": row.metadata or {},
        "startedAt": _value(row.started_at),
        "completedAt": _value(row.completed_at),
        "runAfter": _value(row.run_after),  # a deferred PENDING publish starts from then on
        "createdAt": _value(row.created_at),
        "updatedAt": _value(row.updated_at),
    }


def webhook_to_dict(row, secret: str | None = None) -> dict:
    """The spec's Webhook fields; the secret only when just created or rotated."""
    data = {
        "id": _value(row.id),
        "integrationId": _value(row.integration_id),
        "url": row.url,
        "events": list(row.events or []),
        "isActive": row.is_active,
        "lastTriggeredAt": _value(row.last_triggered_at),
        "metadata": row.metadata or {},
        "disabledReason": row.disabled_reason,
        "createdAt": _value(row.created_at),
        "updatedAt": _value(row.updated_at),
    }
    if secret is not None:
        data["secret"] = secret
    return data


def attempt_to_dict(row) -> dict:
    return {
        "number": row.number,
        "startedAt": _value(row.started_at),
        "statusCode": row.status_code,
        "durationMs": row.duration_ms,
        "error": row.error,
        "responseBody": row.response_body,
    }


def delivery_to_dict(row, attempts=None) -> dict:
    data = {
        "id": _value(row.id),
        "webhookId": _value(row.webhook_id),
        "event": row.event,
        "payload": row.payload,
        "status": _value(row.status),
        "attempts": row.attempts,
        "response": row.response,
        "error": row.error,
        "deliveredAt": _value(row.delivered_at),
        "nextAttemptAt": _value(row.next_attempt_at),
        "createdAt": _value(row.created_at),
        "updatedAt": _value(row.updated_at),
    }
    if attempts is not None:
        data["attemptLog"] = [attempt_to_dict(a) for a in attempts]
    return data
