"""JSON Schemas of what the API returns in ``data``, for the OpenAPI document.

They mirror nexusctl.core.serializers; a test fails when the two disagree.
"""

from __future__ import annotations

from nexusctl.enums import Provider, SyncStatus

_TIME = {"type": ["string", "null"], "format": "date-time"}
_UUID = {"type": "string", "format": "uuid"}


def _obj(properties: dict) -> dict:
    return {"type": "object", "required": list(properties), "properties": properties, "additionalProperties": False}


INTEGRATION = _obj({
    "id": _UUID,
    "userId": _UUID,
    "organizationId": {"type": ["string", "null"], "format": "uuid"},
    "provider": {"enum": [p.value for p in Provider]},
    "name": {"type": "string"},
    "isActive": {"type": "boolean"},
    "tokenType": {"type": ["string", "null"]},
    "expiresAt": _TIME,
    "scope": {"type": "array", "items": {"type": "string"}},
    "metadata": {"type": "object"},
    "lastSyncAt": _TIME,
    "lastError": {"type": ["string", "null"]},
    "createdAt": _TIME,
    "updatedAt": _TIME,
})

SYNC_LOG = _obj({
    "id": _UUID,
    "integrationId": _UUID,
    "action": {"type": "string"},
    "resourceType": {"type": ["string", "null"]},
    "resourceId": {"type": ["string", "null"]},
    "status": {"enum": [s.value for s in SyncStatus]},
    "itemsProcessed": {"type": "integer"},
    "itemsFailed": {"type": "integer"},
    "error": {"type": ["string", "null"]},
    "metadata": {"type": "object"},
    "startedAt": _TIME,
    "completedAt": _TIME,
    "createdAt": _TIME,
    "updatedAt": _TIME,
})

DELETED = _obj({
    "id": _UUID,
    "deleted": {"type": "boolean"},
    "webhooksDeleted": {"type": "integer"},
    "deliveriesDeleted": {"type": "integer"},
    "syncLogsDeleted": {"type": "integer"},
    "revoked": {"type": ["boolean", "null"]},
})

INITIATED = _obj({"authorizationUrl": {"type": "string"}, "state": {"type": "string"}})
RECEIVED = _obj({"received": {"type": "boolean"}})

PROVIDER = _obj({
    "provider": {"enum": [p.value for p in Provider]},
    "displayName": {"type": "string"},
    "category": {"type": "string"},
    "capabilities": {"type": "array", "items": {"type": "string"}},
    "configured": {"type": "boolean"},
})

HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"},
                                                                    "checks": {"type": "object"}}}


def list_of(schema: dict) -> dict:
    return {"type": "array", "items": schema}
