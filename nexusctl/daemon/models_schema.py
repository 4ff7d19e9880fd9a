"""JSON Schemas of what the API returns in ``data``, for the OpenAPI document.

They mirror nexusctl.core.serializers; a test fails when the two disagree.
"""

from __future__ import annotations

from nexusctl.enums import Provider, SyncStatus

_TIME = {"type": ["string", "null"], "format": "date-time"}
_UUID = {"type": "string", "format": "uuid"}


def _obj(properties: dict) -> dict:
    return {"type": "object", "required": list(properties), "properties": properties, "additionalProperties": False}


INTEGRATION = _obj(
    {
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
        "refreshFailures": {"type": "integer"},
        "refreshRetryAt": _TIME,
        "createdAt": _TIME,
        "updatedAt": _TIME,
    }
)

# POST /integrations/{id}/refresh: the integration, and whether its token was renewed (a token the provider
# renews only later, Instagram's under 24 h old, is not: refreshed false, why, and from when it can be).
REFRESHED = _obj(
    {
        **INTEGRATION["properties"],
        "refresh": _obj(
            {"refreshed": {"type": "boolean"}, "message": {"type": ["string", "null"]}, "refreshableAt": _TIME}
        ),
    }
)

SYNC_LOG = _obj(
    {
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
        "runAfter": _TIME,
        "createdAt": _TIME,
        "updatedAt": _TIME,
    }
)

DELETED = _obj(
    {
        "id": _UUID,
        "deleted": {"type": "boolean"},
        "webhooksDeleted": {"type": "integer"},
        "deliveriesDeleted": {"type": "integer"},
        "syncLogsDeleted": {"type": "integer"},
        "revoked": {"type": ["boolean", "null"]},
    }
)

INITIATED = _obj({"authorizationUrl": {"type": "string"}, "state": {"type": "string"}})
RECEIVED = _obj({"received": {"type": "boolean"}})

PROVIDER = _obj(
    {
        "provider": {"enum": [p.value for p in Provider]},
        "displayName": {"type": "string"},
        "category": {"type": "string"},
        "capabilities": {"type": "array", "items": {"type": "string"}},
        "actions": {
            "type": "array",
            "items": _obj(
                {
                    "name": {"type": "string"},
                    "capability": {"type": "string"},
                    "scopes": {"type": "array", "items": {"type": "string"}},
                    "optional": {"type": "boolean"},
                    "how": {"type": "string"},
                }
            ),
        },
        "configured": {"type": "boolean"},
    }
)

WEBHOOK = _obj(
    {
        "id": _UUID,
        "integrationId": _UUID,
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string"}},
        "isActive": {"type": "boolean"},
        "lastTriggeredAt": _TIME,
        "metadata": {"type": "object"},
        "disabledReason": {"type": ["string", "null"]},
        "createdAt": _TIME,
        "updatedAt": _TIME,
    }
)
WEBHOOK_WITH_SECRET = {
    **WEBHOOK,
    "required": [*WEBHOOK["required"], "secret"],
    "properties": {**WEBHOOK["properties"], "secret": {"type": "string", "pattern": "^whsec_"}},
}
WEBHOOK_DELETED = _obj({"id": _UUID, "deleted": {"type": "boolean"}, "deliveriesDeleted": {"type": "integer"}})
ATTEMPT = _obj(
    {
        "number": {"type": "integer"},
        "startedAt": _TIME,
        "statusCode": {"type": ["integer", "null"]},
        "durationMs": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"]},
        "responseBody": {"type": ["string", "null"]},
    }
)
DELIVERY = {
    **_obj(
        {
            "id": _UUID,
            "webhookId": _UUID,
            "event": {"type": "string"},
            "payload": {"type": "object"},
            "status": {"enum": ["PENDING", "DELIVERED", "FAILED", "RETRYING"]},
            "attempts": {"type": "integer"},
            "response": {"type": ["object", "null"]},
            "error": {"type": ["string", "null"]},
            "deliveredAt": _TIME,
            "nextAttemptAt": _TIME,
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "attemptLog": {"type": "array", "items": ATTEMPT},
        }
    )
}
DELIVERY["required"] = [k for k in DELIVERY["required"] if k != "attemptLog"]
TEST_QUEUED = _obj({"webhookId": _UUID, "queued": {"type": "boolean"}, "event": {"type": "string"}})
EMITTED = _obj(
    {"id": _UUID, "type": {"type": "string"}, "integrationId": _UUID, "deliveriesQueued": {"type": "integer"}}
)
# A batch's answer: one result per event, in order; an event refused alone carries its error instead.
_EMIT_RESULT = {
    "type": "object",
    "required": ["index"],
    "additionalProperties": False,
    "properties": {
        "index": {"type": "integer"},
        **EMITTED["properties"],
        "error": _obj({"code": {"type": "string"}, "message": {"type": "string"}}),
    },
}
EMITTED_BATCH = _obj(
    {
        "accepted": {"type": "integer"},
        "refused": {"type": "integer"},
        "results": {"type": "array", "items": _EMIT_RESULT},
    }
)

_SYNC_RUN = _obj(
    {
        "action": {"type": "string"},
        "status": {"enum": ["COMPLETED", "FAILED"]},
        "at": _TIME,
        "error": {"type": ["string", "null"]},
        "rateLimitWaits": {"type": "integer"},
    }
)
# Which integration a health answer is about: the same in the live record and the stored summary.
_HEALTH_OF = {
    "integrationId": _UUID,
    "userId": _UUID,
    "provider": {"enum": [p.value for p in Provider]},
    "name": {"type": "string"},
    "isActive": {"type": "boolean"},
}
HEALTH_RECORD = _obj(
    {
        **_HEALTH_OF,
        "status": {"enum": ["healthy", "degraded", "broken"]},
        "reasons": {
            "type": "array",
            "items": _obj(
                {
                    "code": {"type": "string"},
                    "severity": {"enum": ["degraded", "broken"]},
                    "message": {"type": "string"},
                }
            ),
        },
        "checkedAt": _TIME,
        "token": _obj({"expiresAt": _TIME, "renewable": {"type": "boolean"}, "refreshTokenExpiresAt": _TIME}),
        "refresh": _obj(
            {
                "lastSucceededAt": _TIME,
                "lastFailedAt": _TIME,
                "lastOutcome": {"enum": ["succeeded", "failed", None]},
                "consecutiveFailures": {"type": "integer"},
                "retryAt": _TIME,
            }
        ),
        "syncs": {"type": "array", "items": _SYNC_RUN},
        "webhooks": _obj(
            {
                "webhooks": {"type": "integer"},
                "disabled": {"type": "integer"},
                "deliveries24h": {"type": "integer"},
                "delivered": {"type": "integer"},
                "failed": {"type": "integer"},
                "retrying": {"type": "integer"},
                "pending": {"type": "integer"},
                "successRate": {"type": ["number", "null"]},
            }
        ),
        "scopes": _obj(
            {
                "granted": {"type": "array", "items": {"type": "string"}},
                "required": {"type": "array", "items": {"type": "string"}},
                "missing": {"type": "array", "items": {"type": "string"}},
                "reported": {"type": "boolean"},
            }
        ),
        "lastRateLimit": {
            "oneOf": [
                {"type": "null"},
                _obj(
                    {
                        "at": _TIME,
                        "action": {"type": "string"},
                        "waits": {"type": "integer"},
                        "runFailed": {"type": "boolean"},
                    }
                ),
            ]
        },
    }
)

# A row of the health list: what the last check stored (the live check with its facts is HEALTH_RECORD).
HEALTH_SUMMARY = _obj(
    {
        **_HEALTH_OF,
        "status": {"enum": ["healthy", "degraded", "broken", "unknown"]},
        "reasons": HEALTH_RECORD["properties"]["reasons"],
        "checkedAt": _TIME,
        "nextCheckAt": _TIME,
    }
)

HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
}


def listed(schema: dict, bulky: str) -> dict:
    """A row as lists show it: ``bulky`` (a payload, metadata) over 512 KiB is null, with ``<bulky>Omitted``
    true (nexusctl.core.paging.bounded_page); the row's own view shows it whole."""
    properties = {
        **schema["properties"],
        bulky: {"type": ["object", "null"]},
        f"{bulky}Omitted": {
            "type": "boolean",
            "description": f"only when {bulky} is left out (over 512 KiB): the row's own view shows it",
        },
    }
    return {**schema, "properties": properties}


def list_of(schema: dict) -> dict:
    return {"type": "array", "items": schema}
