"""The outbox read side: what the relay publishes and what `nexusctl events list|tail` shows.

Rows are written by ``nexusctl.core.events.record`` (and the delivery worker's
``webhook.*`` events) in the transaction of the change they report. The relay
takes unpublished rows oldest first, publishes them and stamps
``published_at``; without Redis the outbox itself is the record.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Iterator

from nexusctl.core import paging
from nexusctl.db.fields import utcnow
from nexusctl.db.models import OutboxEvent
from nexusctl.errors import UsageProblem

TYPE_FILTER_MAX = 128
TRACEPARENT = "traceparent"  # the stream entry's field: the emitter's trace context, W3C (as an HTTP header)
# What outbox_events.trace_parent holds (tracing.current_traceparent): version-trace id-span id-flags in hex.
# Only that shape is published: ids, never anything else that might have been stored.
_W3C = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
RELAY_BYTES = 4 * paging.PAGE_BYTES  # of event data the relay loads at once (500 events of 250 KB were 125 MB)


def unpublished(limit: int, max_bytes: int = RELAY_BYTES) -> tuple[list[OutboxEvent], bool]:
    """The oldest events not yet on the stream, in the order they were written, up to ``limit`` of them
    and about ``max_bytes`` of data (at least one); and whether that bound, not the backlog, ended the batch."""
    oldest = (OutboxEvent.created_at, OutboxEvent.id)
    waiting = OutboxEvent.published_at.is_null()
    sizes = list(
        OutboxEvent.select(OutboxEvent.id, paging.json_bytes(OutboxEvent.data))
        .where(waiting)
        .order_by(*oldest)
        .limit(limit)
        .tuples()
    )
    ids, total = [], 0
    for event_id, size in sizes:
        if ids and total + (size or 0) > max_bytes:
            break
        ids.append(event_id)
        total += size or 0
    if not ids:
        return [], False
    rows = list(OutboxEvent.select().where(OutboxEvent.id.in_(ids)).order_by(*oldest))
    return rows, len(ids) == limit or len(ids) < len(sizes)


def mark_published(ids: list[uuid.UUID]) -> int:
    return (
        OutboxEvent.update(published_at=utcnow())
        .where(OutboxEvent.id.in_(ids) & OutboxEvent.published_at.is_null())
        .execute()
    )


def backlog() -> int:
    """Events waiting for the relay (for /metrics and the relay's log)."""
    return OutboxEvent.select().where(OutboxEvent.published_at.is_null()).count()


def stream_fields(event: OutboxEvent) -> dict[str, str]:
    """The entry the relay appends to EVENTS_STREAM: id, type, occurredAt, payload (JSON), and ``traceparent``
    when the event was written under a span (traces on), so a consumer's span joins the emitter's trace."""
    fields = {
        "id": str(event.id),
        "type": event.type,
        "occurredAt": _iso(event.created_at),
        "payload": json.dumps(event.data, separators=(",", ":"), default=str),
    }
    if event.trace_parent is not None and _W3C.fullmatch(event.trace_parent):  # None while traces are off
        fields[TRACEPARENT] = event.trace_parent
    return fields


def to_dict(event: OutboxEvent) -> dict:
    return {
        "id": str(event.id),
        "type": event.type,
        "occurredAt": _iso(event.created_at),
        "integrationId": str(event.integration_id) if event.integration_id else None,
        "userId": str(event.user_id) if event.user_id else None,
        "publishedAt": _iso(event.published_at) if event.published_at else None,
        "payload": event.data,
    }


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _filters(query, event_type: str | None, since: dt.datetime | None, integration_id):
    if event_type:
        if len(event_type) > TYPE_FILTER_MAX or not all(ch.isalnum() or ch in "._*" for ch in event_type):
            raise UsageProblem(
                "type must be an event name (integration.connected) or a prefix (integration.*)", field="type"
            )
        if event_type.endswith(".*") and "*" not in event_type[:-2]:
            query = query.where(OutboxEvent.type.startswith(event_type[:-1]))
        elif "*" in event_type:
            raise UsageProblem("a type wildcard is only allowed at the end: integration.*", field="type")
        else:
            query = query.where(OutboxEvent.type == event_type)
    if since is not None:
        query = query.where(OutboxEvent.created_at >= since)
    if integration_id is not None:
        try:
            integration_id = uuid.UUID(str(integration_id))
        except ValueError:
            raise UsageProblem("integration must be a UUID", field="integration") from None
        query = query.where(OutboxEvent.integration_id == integration_id)
    return query


def list_view(
    *,
    event_type: str | None = None,
    since: dt.datetime | None = None,
    integration_id=None,
    limit: int | None = None,
    cursor: str | None = None,
) -> paging.Page:
    """Events newest first as `events list`'s dicts, one keyset page at a time, bounded in bytes
    (paging.bounded_page)."""
    query = _filters(OutboxEvent.select(), event_type, since, integration_id)
    return paging.bounded_page(
        query,
        OutboxEvent,
        limit,
        cursor,
        bulky=paging.Bulky(OutboxEvent.data, "payload"),
        serialize=lambda rows: [to_dict(r) for r in rows],
    )


def newer_than(
    after: tuple[dt.datetime, uuid.UUID] | None,
    *,
    event_type: str | None = None,
    integration_id=None,
    overlap: dt.timedelta = dt.timedelta(seconds=5),
    limit: int = 500,
) -> Iterator[OutboxEvent]:
    """Events written since ``after`` (oldest first), for `events tail`, loaded a few MB at a time.

    Rows carry the writer's clock and commit in any order, so a row may become
    visible with a time just before the last one shown: the query looks back
    ``overlap`` and the caller skips the ids it has already printed.
    """
    query = _filters(OutboxEvent.select(), event_type, None, integration_id)
    if after is not None:
        query = query.where(OutboxEvent.created_at >= after[0] - overlap)
    return _in_chunks(_sizes(query, (OutboxEvent.created_at, OutboxEvent.id), limit))


def latest(count: int, *, event_type: str | None = None, integration_id=None) -> Iterator[OutboxEvent]:
    """The last ``count`` events, oldest first (what `events tail` prints before following), loaded about
    RELAY_BYTES of data at a time: 1,000 events of 256 KiB are not all in memory at once."""
    query = _filters(OutboxEvent.select(), event_type, None, integration_id)
    return _in_chunks(_sizes(query, (OutboxEvent.created_at.desc(), OutboxEvent.id.desc()), count)[::-1])


def _sizes(query, order, limit: int) -> list[tuple]:
    return list(
        query.select(OutboxEvent.id, paging.json_bytes(OutboxEvent.data)).order_by(*order).limit(limit).tuples()
    )


def _in_chunks(sizes: list[tuple], max_bytes: int = RELAY_BYTES) -> Iterator[OutboxEvent]:
    """The events of ``sizes`` ((id, data size) in the order wanted), loaded about ``max_bytes`` at a time."""
    chunk, total = [], 0
    for event_id, size in [*sizes, (None, 0)]:
        if chunk and (event_id is None or total + (size or 0) > max_bytes):
            rows = {row.id: row for row in OutboxEvent.select().where(OutboxEvent.id.in_(chunk))}
            yield from (rows[i] for i in chunk if i in rows)  # one purged meanwhile is skipped
            chunk, total = [], 0
        if event_id is not None:
            chunk.append(event_id)
            total += size or 0


def purge(cutoff: dt.datetime, batch: int, *, keep_unpublished: bool) -> int:
    """Housekeeping: events older than ``cutoff``; with a relay (Redis), never one it has not published."""
    where = OutboxEvent.created_at < cutoff
    if keep_unpublished:
        where &= OutboxEvent.published_at.is_null(False)
    total = 0
    while True:
        ids = [i for (i,) in OutboxEvent.select(OutboxEvent.id).where(where).limit(batch).tuples()]
        if not ids:
            return total
        total += OutboxEvent.delete().where(OutboxEvent.id.in_(ids)).execute()
