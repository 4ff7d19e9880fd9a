"""Events other services publish that this service acts on.

- ``user.deleted`` ``{"userId"}``: every integration of that user is revoked
  at its provider (best effort, as `integrations delete` does) and deleted
  with its webhooks, pending deliveries and sync logs; each deletion publishes
  ``integration.disconnected``. Pending OAuth flows of the user are dropped too,
  so a consent screen left open cannot bring an integration back.
- ``content.published`` ``{"userId", "contentId", "title", "url", "media", "format"}``:
  one ``publish`` sync log (PENDING) per active integration of the user whose
  provider can publish (capabilities publish, upload, posts, notifications,
  webhooks), carrying the content; the sync runner executes it. A provider
  that cannot take this content at all (text only to Instagram, TikTok or
  YouTube) gets its log CANCELLED at once with ``skipped: <reason>``: not a
  failure, so its health and lastError stay and no integration.error goes out.
  ``format`` is ``post`` (the default) or ``story``: a story goes to Instagram
  only (exactly one image or video; other providers and other content are
  skipped with the reason).

The same code serves the Redis consumer group, `nexusctl events ingest` and
``POST /integrations/events/ingest``. Handling is idempotent: the event's key
(its stream and id) is written to ``consumed_events`` in the transaction that
finishes the work, and an event whose key is there changes nothing more.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

import peewee

from nexusctl.core.connect import disconnect
from nexusctl.core.events import CONTENT_PUBLISHED, PLATFORM_EVENTS, USER_DELETED
from nexusctl.core.storable import check_storable
from nexusctl.core.sync_state import SKIPPED_PREFIX
from nexusctl.db.database import database_proxy
from nexusctl.db.fields import utcnow
from nexusctl.db.models import ConsumedEvent, Integration, IntegrationSyncLog, OAuthState
from nexusctl.enums import SyncStatus
from nexusctl.errors import IntegrationNotFound, UsageProblem
from nexusctl.providers.adapters.tiktok import unavailable as tiktok_unavailable
from nexusctl.providers.catalog import CATALOG
from nexusctl.providers.sync.publish_media import FORMATS, STORY, cannot_take, check_media_urls

log = logging.getLogger(__name__)

HANDLED = PLATFORM_EVENTS  # user.deleted, content.published (named in core.events, which refuses them to emit)
PUBLISH_CAPABILITIES = frozenset({"publish", "upload", "posts", "notifications", "webhooks"})
PUBLISHERS = tuple(p for p, info in CATALOG.items() if PUBLISH_CAPABILITIES & set(info.capabilities))
PAYLOAD_MAX_BYTES = 256 * 1024
KEY_MAX = 255
PAGE = 100


class _LostRace(Exception):
    """Another consumer recorded the same event first: this one's work is rolled back."""


@dataclass(frozen=True)
class Inbound:
    key: str  # what makes handling idempotent: "<stream>:<event id>"
    stream: str
    entry_id: str | None
    type: str
    payload: dict


def from_stream(stream: str, entry_id: str, fields: dict[str, str]) -> Inbound:
    """An entry as the relay writes it (id, type, occurredAt, payload; its traceparent is the consumer's span's
    parent); UsageProblem if it is not one."""
    event_type = fields.get("type")
    if not event_type:
        raise UsageProblem("the entry has no type field", field="type")
    raw = fields.get("payload", "{}")
    if len(raw) > PAYLOAD_MAX_BYTES:
        raise UsageProblem(f"payload is over {PAYLOAD_MAX_BYTES // 1024} KiB", field="payload")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise UsageProblem("payload is not JSON", field="payload") from None
    return make(event_type, payload, event_id=fields.get("id") or entry_id, source=stream, entry_id=entry_id)


def make(
    event_type, payload, *, event_id: str | None = None, source: str = "ingest", entry_id: str | None = None
) -> Inbound:
    if not isinstance(event_type, str) or event_type not in HANDLED:
        raise UsageProblem(
            f"unknown event type {str(event_type)[:64]!r}; this service handles: {', '.join(HANDLED)}", field="type"
        )
    if not isinstance(payload, dict):
        raise UsageProblem("payload must be a JSON object", field="data")
    check_storable(payload, "data")
    event_id = event_id or str(uuid.uuid4())
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 128:
        raise UsageProblem("id must be a non-empty string of at most 128 characters", field="id")
    check_storable(event_id, "id")
    return Inbound(f"{source}:{event_id}"[:KEY_MAX], source, entry_id, event_type, payload)


def _user_id(payload: dict) -> uuid.UUID:
    try:
        return uuid.UUID(str(payload["userId"]))
    except (KeyError, ValueError):
        raise UsageProblem("payload.userId must be a UUID", field="userId") from None


def _seen(key: str) -> dict | None:
    row = ConsumedEvent.select(ConsumedEvent.outcome).where(ConsumedEvent.key == key).tuples().first()
    return None if row is None else row[0]


def _done(event: Inbound, outcome: dict) -> bool:
    """Record ``event`` as handled (inside the caller's transaction); False if someone else just did."""
    try:
        with database_proxy.atomic():  # a savepoint: a lost race must not undo the caller's work
            ConsumedEvent.create(
                key=event.key, stream=event.stream, entry_id=event.entry_id, type=event.type, outcome=outcome
            )
        return True
    except peewee.IntegrityError:
        return False


async def handle(svc, event: Inbound) -> dict:
    """Do what ``event`` asks, once; the outcome, with ``duplicate: true`` if it had been handled before."""
    previous = await svc.run(_seen, event.key)
    if previous is not None:
        return {"type": event.type, "key": event.key, **previous, "duplicate": True}
    try:
        if event.type == USER_DELETED:
            outcome = await _user_deleted(svc, event)
        else:
            # The media URLs are user-supplied: the SSRF guard's checks now, a 400 naming media.
            check_media_urls(event.payload, svc.settings.webhook_allowed_networks)
            outcome = await svc.run(_content_published, event)
    except _LostRace:  # handled by another consumer while this one worked: its outcome stands
        return {"type": event.type, "key": event.key, **(await svc.run(_seen, event.key) or {}), "duplicate": True}
    return {"type": event.type, "key": event.key, **outcome}


# --- user.deleted -------------------------------------------------------------------


def _integration_ids(user_id: uuid.UUID, after) -> list[uuid.UUID]:
    query = Integration.select(Integration.id).where(Integration.user_id == user_id)
    if after is not None:
        query = query.where(Integration.id > after)
    return [i for (i,) in query.order_by(Integration.id).limit(PAGE).tuples()]


def _finish_user_deleted(event: Inbound, user_id: uuid.UUID, outcome: dict) -> dict:
    with database_proxy.atomic():
        outcome["oauthFlowsDropped"] = OAuthState.delete().where(OAuthState.user_id == user_id).execute()
        if not _done(event, outcome):
            raise _LostRace()
    return outcome


async def _user_deleted(svc, event: Inbound) -> dict:
    user_id = _user_id(event.payload)
    deleted, not_revoked, after = [], 0, None
    # Page by id: a user with many integrations is never loaded at once, and a retry after a
    # crash simply finds fewer rows (what was deleted stays deleted).
    while ids := await svc.run(_integration_ids, user_id, after):
        for integration_id in ids:
            try:
                result = await disconnect(svc, integration_id)
            except IntegrationNotFound:  # deleted meanwhile (a concurrent handler, an operator)
                continue
            deleted.append(str(integration_id))
            not_revoked += result.revoked is False
        after = ids[-1]
    outcome = {
        "userId": str(user_id),
        "integrationsDeleted": len(deleted),
        "integrationIds": deleted,
        "revokeFailures": not_revoked,
    }
    return await svc.run(_finish_user_deleted, event, user_id, outcome)


# --- content.published ----------------------------------------------------------------


def _content(payload: dict) -> dict:
    content_id = payload.get("contentId")
    if not isinstance(content_id, (str, int)) or isinstance(content_id, bool) or not str(content_id).strip():
        raise UsageProblem("payload.contentId is required", field="contentId")
    content = {"contentId": str(content_id)[:255]}
    for name in ("title", "url", "description"):
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            raise UsageProblem(f"payload.{name} must be a string", field=name)
        if value is not None:
            content[name] = value
    media = payload.get("media")
    if media is not None and not isinstance(media, (list, dict)):
        raise UsageProblem("payload.media must be a list or an object", field="media")
    if media is not None:
        content["media"] = media
    form = payload.get("format")
    if form is not None and form not in FORMATS:
        raise UsageProblem(f"payload.format must be one of: {', '.join(FORMATS)}", field="format")
    if form == STORY:  # a post is the default: only a story is carried
        content["format"] = STORY
    return content


def _not_this_kind(provider: str, facts) -> str | None:
    """Why this connection does not publish at all: a TikTok API for Business one (Login Kit posts)."""
    refused = tiktok_unavailable(provider, "publish", facts)
    return None if refused is None else "a TikTok API for Business connection (tiktokApp business) does not publish"


def _content_published(event: Inbound) -> dict:
    user_id = _user_id(event.payload)
    content = _content(event.payload)
    with database_proxy.atomic():
        if (previous := _seen(event.key)) is not None:
            return {**previous, "duplicate": True}
        targets = list(
            Integration.select(Integration.id, Integration.provider, Integration.metadata)
            .where((Integration.user_id == user_id) & Integration.is_active & Integration.provider.in_(PUBLISHERS))
            .order_by(Integration.created_at)
            .limit(1000)
        )
        logs = []
        now = utcnow()
        for integration in targets:
            meta = {"trigger": CONTENT_PUBLISHED, "event": event.key, "content": content}
            state = {"status": SyncStatus.PENDING}
            facts = (integration.metadata or {}).get("provider")
            if reason := _not_this_kind(integration.provider.value, facts) or cannot_take(
                integration.provider.value, content
            ):
                meta.update(skipped=True, skipReason=reason)
                state = {"status": SyncStatus.CANCELLED, "error": f"{SKIPPED_PREFIX}{reason}", "completed_at": now}
            row = IntegrationSyncLog.create(
                integration=integration.id,
                action="publish",
                resource_type="content",
                resource_id=content["contentId"],
                metadata=meta,
                **state,
            )
            logs.append(
                {
                    "integrationId": str(integration.id),
                    "provider": integration.provider.value,
                    "syncLogId": str(row.id),
                    **({"skipped": reason} if reason else {}),
                }
            )
        outcome = {"userId": str(user_id), "contentId": content["contentId"], "syncLogs": logs}
        if not _done(event, outcome):
            raise _LostRace()
    return outcome
