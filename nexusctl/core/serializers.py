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
        "failingSince": _value(row.failing_since),
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


# --- rows read lean (nexusctl.core.lean): the same dicts from a list's tuple of JSON-ready values ----------------
#
# Each *_COLUMNS is what its list reads, in order; *_row names them as the *_to_dict above does
# (tests/core/test_lean_lists.py holds the two to the same output).

INTEGRATION_COLUMNS = (
    ("id", "uuid"),
    ("user_id", "uuid"),
    ("organization_id", "uuid"),
    ("provider", "raw"),
    ("name", "raw"),
    ("is_active", "bool"),
    ("token_type", "raw"),
    ("expires_at", "time"),
    ("scope", "array"),
    ("metadata", "json"),
    ("last_sync_at", "time"),
    ("last_error", "raw"),
    ("refresh_failures", "raw"),
    ("refresh_retry_at", "time"),
    ("created_at", "time"),
    ("updated_at", "time"),
)


def integration_row(v) -> dict:
    return {
        "id": v[0],
        "userId": v[1],
        "organizationId": v[2],
        "provider": v[3],
        "name": v[4],
        "isActive": v[5],
        "tokenType": v[6],
        "expiresAt": v[7],
        "scope": v[8] or [],  # a list of its own: the driver made it for this row
        "metadata": v[9] or {},
        "lastSyncAt": v[10],
        "lastError": v[11],
        "refreshFailures": v[12] or 0,
        "refreshRetryAt": v[13],
        "createdAt": v[14],
        "updatedAt": v[15],
    }


SYNC_LOG_COLUMNS = (
    ("id", "uuid"),
    ("integration_id", "uuid"),
    ("action", "raw"),
    ("resource_type", "raw"),
    ("resource_id", "raw"),
    ("status", "raw"),
    ("items_processed", "raw"),
    ("items_failed", "raw"),
    ("error", "raw"),
    ("metadata", "json"),
    ("started_at", "time"),
    ("completed_at", "time"),
    ("run_after", "time"),
    ("created_at", "time"),
    ("updated_at", "time"),
)


def sync_log_row(v) -> dict:
    return {
        "id": v[0],
        "integrationId": v[1],
        "action": v[2],
        "resourceType": v[3],
        "resourceId": v[4],
        "status": v[5],
        "itemsProcessed": v[6],
        "itemsFailed": v[7],
        "error": v[8],
        "metadata": v[9] or {},
        "startedAt": v[10],
        "completedAt": v[11],
        "runAfter": v[12],
        "createdAt": v[13],
        "updatedAt": v[14],
    }


WEBHOOK_COLUMNS = (
    ("id", "uuid"),
    ("integration_id", "uuid"),
    ("url", "raw"),
    ("events", "array"),
    ("is_active", "bool"),
    ("last_triggered_at", "time"),
    ("metadata", "json"),
    ("disabled_reason", "raw"),
    ("failing_since", "time"),
    ("created_at", "time"),
    ("updated_at", "time"),
)


def webhook_row(v) -> dict:
    return {
        "id": v[0],
        "integrationId": v[1],
        "url": v[2],
        "events": v[3] or [],  # a list of its own: the driver made it for this row
        "isActive": v[4],
        "lastTriggeredAt": v[5],
        "metadata": v[6] or {},
        "disabledReason": v[7],
        "failingSince": v[8],
        "createdAt": v[9],
        "updatedAt": v[10],
    }


DELIVERY_COLUMNS = (
    ("id", "uuid"),
    ("webhook_id", "uuid"),
    ("event", "raw"),
    ("payload", "json"),
    ("status", "raw"),
    ("attempts", "raw"),
    ("response", "json"),
    ("error", "raw"),
    ("delivered_at", "time"),
    ("next_attempt_at", "time"),
    ("created_at", "time"),
    ("updated_at", "time"),
)


def delivery_row(v, attempts: list[dict]) -> dict:
    return {
        "id": v[0],
        "webhookId": v[1],
        "event": v[2],
        "payload": v[3],
        "status": v[4],
        "attempts": v[5],
        "response": v[6],
        "error": v[7],
        "deliveredAt": v[8],
        "nextAttemptAt": v[9],
        "createdAt": v[10],
        "updatedAt": v[11],
        "attemptLog": attempts,
    }


ATTEMPT_COLUMNS = (
    ("delivery_id", "uuid"),
    ("number", "raw"),
    ("started_at", "time"),
    ("status_code", "raw"),
    ("duration_ms", "raw"),
    ("error", "raw"),
    ("response_body", "raw"),
)


def attempt_row(v) -> dict:
    return {
        "number": v[1],
        "startedAt": v[2],
        "statusCode": v[3],
        "durationMs": v[4],
        "error": v[5],
        "responseBody": v[6],
    }
