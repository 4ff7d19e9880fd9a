"""What the API returns: pydantic models of the dicts nexusctl.core.serializers builds, and the envelopes.

They write /openapi.json's response schemas (pydantic's JSON Schema generation). Answers are not
serialized through them: the serializers' dicts go out as JSON directly, which costs the hot read and
emit paths less (docs/benchmarks.md); tests/daemon/test_openapi.py checks the serializers against these
models, and the fuzz suite (tests/fault/test_api_fuzz.py) checks every answer of a running daemon
against the document.

(No ``from __future__ import annotations`` here: ``listed`` builds models from the annotations' objects.)
"""

import datetime as dt
import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import ConfigDict, Field, with_config
from typing_extensions import NotRequired, TypedDict  # pydantic needs typing_extensions' TypedDict before 3.12

from nexusctl.enums import DeliveryStatus, Provider, SyncStatus

CLOSED = ConfigDict(extra="forbid")  # every key is listed (additionalProperties: false)
Time = dt.datetime | None
Json = dict[str, Any]

T = TypeVar("T")


# --- envelopes ---------------------------------------------------------------------------------------------


class Paging(TypedDict):
    limit: int
    nextCursor: str | None
    hasMore: bool


class Envelope(TypedDict, Generic[T]):
    success: Literal[True]
    data: T


class PagedEnvelope(TypedDict, Generic[T]):
    success: Literal[True]
    data: T
    paging: Paging


class ErrorDetail(TypedDict):
    code: str
    message: str


class Error(TypedDict):
    success: Literal[False]
    error: ErrorDetail
    data: NotRequired[Any]


def listed(model, bulky: str):
    """A row as lists show it: ``bulky`` (a payload, metadata) over 512 KiB is null, with ``<bulky>Omitted``
    true (nexusctl.core.paging.bounded_page); the row's own view shows it whole."""
    fields = {}
    for name, annotation in model.__annotations__.items():
        if name == bulky:
            fields[name] = annotation | None
            fields[f"{bulky}Omitted"] = NotRequired[
                Annotated[
                    bool,
                    Field(description=f"only when {bulky} is left out (over 512 KiB): the row's own view shows it"),
                ]
            ]
        else:
            fields[name] = annotation
    return with_config(CLOSED)(TypedDict(f"{model.__name__}Listed", fields))


# --- integrations ------------------------------------------------------------------------------------------


@with_config(CLOSED)
class Integration(TypedDict):
    id: uuid.UUID
    userId: uuid.UUID
    organizationId: uuid.UUID | None
    provider: Provider
    name: str
    isActive: bool
    tokenType: str | None
    expiresAt: Time
    scope: list[str]
    metadata: Json
    lastSyncAt: Time
    lastError: str | None
    refreshFailures: int
    refreshRetryAt: Time
    createdAt: Time
    updatedAt: Time


@with_config(CLOSED)
class RefreshOutcome(TypedDict):
    refreshed: bool
    message: str | None
    refreshableAt: Time


# POST /integrations/{id}/refresh: the integration, and whether its token was renewed (a token the provider
# renews only later, Instagram's under 24 h old, is not: refreshed false, why, and from when it can be).
@with_config(CLOSED)
class Refreshed(Integration):
    refresh: RefreshOutcome


@with_config(CLOSED)
class SyncLog(TypedDict):
    id: uuid.UUID
    integrationId: uuid.UUID
    action: str
    resourceType: str | None
    resourceId: str | None
    status: SyncStatus
    itemsProcessed: int
    itemsFailed: int
    error: str | None
    metadata: Json
    startedAt: Time
    completedAt: Time
    runAfter: Time
    createdAt: Time
    updatedAt: Time


IntegrationListed = listed(Integration, "metadata")
SyncLogListed = listed(SyncLog, "metadata")


class SyncStarted(TypedDict):
    id: uuid.UUID
    syncLogs: list[SyncLog]


@with_config(CLOSED)
class Deleted(TypedDict):
    id: uuid.UUID
    deleted: bool
    webhooksDeleted: int
    deliveriesDeleted: int
    syncLogsDeleted: int
    revoked: bool | None


@with_config(CLOSED)
class Initiated(TypedDict):
    authorizationUrl: str
    state: str


@with_config(CLOSED)
class Received(TypedDict):
    received: bool


@with_config(CLOSED)
class ProviderAction(TypedDict):
    name: str
    capability: str
    scopes: list[str]
    optional: bool
    how: str


@with_config(CLOSED)
class ProviderInfo(TypedDict):
    provider: Provider
    displayName: str
    category: str
    capabilities: list[str]
    actions: list[ProviderAction]
    configured: bool


class Replied(TypedDict):
    integrationId: uuid.UUID
    provider: str
    commentId: str
    replyId: Annotated[str, Field(description="the provider's id of the reply")]
    pageId: NotRequired[str]
    videoId: NotRequired[str]


# --- webhooks and events -----------------------------------------------------------------------------------


@with_config(CLOSED)
class Webhook(TypedDict):
    id: uuid.UUID
    integrationId: uuid.UUID
    url: str
    events: list[str]
    isActive: bool
    lastTriggeredAt: Time
    metadata: Json
    disabledReason: str | None
    failingSince: Annotated[
        Time,
        Field(description="when its first failure after its last success was recorded (none: not failing)"),
    ]
    createdAt: Time
    updatedAt: Time


WebhookListed = listed(Webhook, "metadata")


@with_config(CLOSED)
class WebhookWithSecret(Webhook):
    secret: Annotated[str, Field(pattern="^whsec_")]


@with_config(CLOSED)
class WebhookDeleted(TypedDict):
    id: uuid.UUID
    deleted: bool
    deliveriesDeleted: int


@with_config(CLOSED)
class Attempt(TypedDict):
    number: int
    startedAt: Time
    statusCode: int | None
    durationMs: int | None
    error: str | None
    responseBody: str | None


@with_config(CLOSED)
class Delivery(TypedDict):
    id: uuid.UUID
    webhookId: uuid.UUID
    event: str
    payload: Json
    status: DeliveryStatus
    attempts: int
    response: Json | None
    error: str | None
    deliveredAt: Time
    nextAttemptAt: Time
    createdAt: Time
    updatedAt: Time
    attemptLog: NotRequired[list[Attempt]]


DeliveryListed = listed(Delivery, "payload")


@with_config(CLOSED)
class WebhookTestQueued(TypedDict):
    webhookId: uuid.UUID
    queued: bool
    event: str


@with_config(CLOSED)
class Emitted(TypedDict):
    id: uuid.UUID
    type: str
    integrationId: uuid.UUID
    deliveriesQueued: int


# A batch's answer: one result per event, in order; an event refused alone carries its error instead.
@with_config(CLOSED)
class EmitResult(TypedDict):
    index: int
    id: NotRequired[uuid.UUID]
    type: NotRequired[str]
    integrationId: NotRequired[uuid.UUID]
    deliveriesQueued: NotRequired[int]
    error: NotRequired[ErrorDetail]


@with_config(CLOSED)
class EmittedBatch(TypedDict):
    accepted: int
    refused: int
    results: list[EmitResult]


@with_config(ConfigDict(extra="allow"))
class Outcome(TypedDict, total=False):
    """What handling a platform event did (nexusctl.core.inbound): its own facts beside these."""

    type: str
    key: str
    duplicate: bool


# --- health ------------------------------------------------------------------------------------------------


class Health(TypedDict):
    status: str
    checks: NotRequired[Json]


@with_config(CLOSED)
class SyncRun(TypedDict):
    action: str
    status: Literal["COMPLETED", "FAILED"]
    at: Time
    error: str | None
    rateLimitWaits: int


@with_config(CLOSED)
class Reason(TypedDict):
    code: str
    severity: Literal["degraded", "broken"]
    message: str


@with_config(CLOSED)
class TokenHealth(TypedDict):
    expiresAt: Time
    renewable: bool
    refreshTokenExpiresAt: Time


@with_config(CLOSED)
class RefreshHealth(TypedDict):
    lastSucceededAt: Time
    lastFailedAt: Time
    lastOutcome: Literal["succeeded", "failed"] | None
    consecutiveFailures: int
    retryAt: Time


@with_config(CLOSED)
class WebhookHealth(TypedDict):
    webhooks: int
    disabled: int
    deliveries24h: int
    delivered: int
    failed: int
    retrying: int
    pending: int
    successRate: float | None


@with_config(CLOSED)
class ScopeHealth(TypedDict):
    granted: list[str]
    required: list[str]
    missing: list[str]
    reported: bool


@with_config(CLOSED)
class RateLimit(TypedDict):
    at: Time
    action: str
    waits: int
    runFailed: bool


# Which integration a health answer is about: the same in the live record and the stored summary.
class _HealthOf(TypedDict):
    integrationId: uuid.UUID
    userId: uuid.UUID
    provider: Provider
    name: str
    isActive: bool


@with_config(CLOSED)
class HealthRecord(_HealthOf):
    status: Literal["healthy", "degraded", "broken"]
    reasons: list[Reason]
    checkedAt: Time
    token: TokenHealth
    refresh: RefreshHealth
    syncs: list[SyncRun]
    webhooks: WebhookHealth
    scopes: ScopeHealth
    lastRateLimit: RateLimit | None


# A row of the health list: what the last check stored (the live check with its facts is HealthRecord).
@with_config(CLOSED)
class HealthSummary(_HealthOf):
    status: Literal["healthy", "degraded", "broken", "unknown"]
    reasons: list[Reason]
    checkedAt: Time
    nextCheckAt: Time


# --- inbound -----------------------------------------------------------------------------------------------


# Slack's answer to a command: shown only to the user who typed it.
@with_config(CLOSED)
class SlackAnswer(TypedDict):
    response_type: Literal["ephemeral"]
    text: str
