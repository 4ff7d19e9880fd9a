"""One dict per model: what the API returns in ``data`` and `--json` prints.

camelCase keys as in the spec. Encrypted columns are never included: the
test suite checks every serializer against every secret column.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from db.models import Integration, IntegrationSyncLog


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
        "createdAt": _value(row.created_at),
        "updatedAt": _value(row.updated_at),
    }
