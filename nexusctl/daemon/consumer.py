"""The consumer group: events other services publish, handled by nexusctl.core.inbound.

Reads EVENTS_CONSUME_STREAMS as group EVENTS_CONSUMER_GROUP (created at the
stream's end the first time: history from before the group is not replayed).
Each daemon is one consumer, named host:pid. An entry is acknowledged only
after its handler committed, so a consumer that dies mid-event leaves it
pending; every pass also runs XAUTOCLAIM for entries idle longer than
EVENTS_CLAIM_IDLE, so another daemon (or this one, restarted) takes it over.
Handlers are idempotent, so the takeover of an entry that was in fact
finished changes nothing.

What is acknowledged without work: types this service does not handle (the
default stream also carries this service's own events) and entries that can
never be handled (not JSON, no userId): those are logged by id, never by
content. A failure that may pass (database or Redis away) leaves the entry
pending for a later claim.

While traces are on, handling an entry is a consumer span, the child of the
span that emitted the event when the entry has a ``traceparent`` field (the
relay writes one for each event written under a span).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import peewee

from nexusctl import tracing
from nexusctl.core import inbound, outbox
from nexusctl.errors import DatabaseUnavailable, NexusError

log = logging.getLogger(__name__)

COUNT = 20
BLOCK_MS = 1000  # under the client's 2 s socket timeout
MAX_BACKOFF = 5.0
MAX_DELIVERIES = 10  # then an entry that keeps failing is logged and acknowledged
ID_ATTRIBUTE_MAX = 128  # characters of another service's event id or type kept on a span


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class EventConsumer:
    def __init__(self, settings, services, redis_client) -> None:
        self._svc, self._redis = services, redis_client
        self._streams = settings.events_consume_streams
        self._group = settings.events_consumer_group
        self._idle_ms = int(settings.events_claim_idle * 1000)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._groups_ready = False
        self.handled = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-consumer")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()  # a blocked XREADGROUP or a handler in flight: its entry stays pending
            await asyncio.gather(self._task, return_exceptions=True)

    async def _ensure_groups(self) -> None:
        # start-up: redis loads only where Redis is used
        from redis.exceptions import ResponseError

        for stream in self._streams:
            try:
                await self._redis.xgroup_create(stream, self._group, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    async def _run(self) -> None:
        backoff, failing = 0.5, None
        while not self._stopping.is_set():
            try:
                if not self._groups_ready:
                    await self._ensure_groups()
                await self.pass_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis or the database away: wait and retry
                what = type(exc).__name__
                if failing != what:
                    log.warning("event consumer: cannot read %s (%s); retrying", ",".join(self._streams), what)
                    failing = what
                if "NOGROUP" in str(exc):  # the stream was deleted or Redis restarted empty
                    self._groups_ready = False
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if failing is not None:
                log.info("event consumer: reading again")
                failing, backoff = None, 0.5

    async def pass_once(self, block_ms: int = BLOCK_MS) -> int:
        """Take over stale entries, then read new ones (waiting up to ``block_ms``); entries handled."""
        done = 0
        for stream in self._streams:
            _next, entries, *_ = await self._redis.xautoclaim(
                stream, self._group, self.name, self._idle_ms, start_id="0-0", count=COUNT
            )
            for entry_id, fields in entries:
                if fields and await self._given_up(stream, entry_id, fields):
                    continue
                if fields:  # None: trimmed from the stream while pending
                    log.info("event consumer: took over %s %s from a stalled consumer", stream, _text(entry_id))
                done += await self._one(stream, entry_id, fields)
        reply = await self._redis.xreadgroup(
            self._group, self.name, {s: ">" for s in self._streams}, count=COUNT, block=block_ms
        )
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                done += await self._one(_text(stream), entry_id, fields)
        return done

    async def _keep_claimed(self, stream: str, entry_id) -> None:
        """While a handler works (slow provider revokes), reset the entry's idle time, so other
        consumers' XAUTOCLAIM leaves it alone; a consumer that dies stops doing this."""
        while True:
            await asyncio.sleep(max(self._idle_ms / 3000, 0.1))
            try:
                await self._redis.xclaim(stream, self._group, self.name, 0, [entry_id], justid=True)
            except Exception:  # noqa: BLE001 - at worst another consumer repeats idempotent work
                return

    async def _given_up(self, stream: str, entry_id, fields) -> bool:
        """An entry that failed MAX_DELIVERIES times is acknowledged and logged, not retried forever."""
        pending = await self._redis.xpending_range(stream, self._group, min=entry_id, max=entry_id, count=1)
        if not pending or pending[0]["times_delivered"] < MAX_DELIVERIES:
            return False
        log.error(
            "event consumer: %s %s (%s) failed %d times; acknowledged without success",
            stream,
            _text(entry_id),
            _text(fields.get(b"type", fields.get("type", b"?"))),
            pending[0]["times_delivered"],
        )
        await self._redis.xack(stream, self._group, entry_id)
        return True

    async def _one(self, stream: str, entry_id, fields) -> int:
        entry = _text(entry_id)
        if not fields:
            await self._redis.xack(stream, self._group, entry_id)
            return 0
        fields = {_text(k): _text(v) for k, v in fields.items()}
        ours = fields.get("type") in inbound.HANDLED
        parent = fields.get(outbox.TRACEPARENT)
        # Another type gets a span only to join the trace it carries: a root span for each of this service's own
        # events, acknowledged unread, would be noise.
        if not tracing.enabled() or not (ours or parent is not None):
            return await self._act(stream, entry_id, entry, fields, ours, None)
        # The child of the emitter's span (its traceparent field, written by a relay); an absent or malformed
        # one starts a trace of its own. Attributes: names and ids, never the payload.
        with tracing.span(
            f"process {stream}",
            {
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.destination.name": stream,
                "messaging.consumer.group.name": self._group,
                "messaging.message.id": entry,
                "nexus.event.id": fields.get("id", "")[:ID_ATTRIBUTE_MAX],
                "nexus.event.type": fields.get("type", "")[:ID_ATTRIBUTE_MAX],
            },
            parent=parent,
            kind=tracing.CONSUMER,
        ) as span:
            return await self._act(stream, entry_id, entry, fields, ours, span)

    async def _act(self, stream: str, entry_id, entry: str, fields: dict[str, str], ours: bool, span) -> int:
        """Handle one entry of a handled type, or acknowledge it; ``span`` (None while traces are off) gets
        the outcome."""
        if not ours:
            await self._redis.xack(stream, self._group, entry_id)  # not ours to act on
            _outcome(span, "ignored")
            return 0
        keep = asyncio.create_task(self._keep_claimed(stream, entry_id))
        try:
            event = inbound.from_stream(stream, entry, fields)
            outcome = await inbound.handle(self._svc, event)
        except (DatabaseUnavailable, peewee.OperationalError, peewee.InterfaceError):
            raise  # may pass: leave it pending, the claim brings it back
        except NexusError as exc:
            log.warning(
                "event consumer: %s %s (%s) cannot be handled: %s; acknowledged",
                stream,
                entry,
                fields.get("type"),
                exc.message,
            )
            await self._redis.xack(stream, self._group, entry_id)
            _outcome(span, "refused")
            return 0
        finally:
            keep.cancel()
        await self._redis.xack(stream, self._group, entry_id)
        self.handled += 1
        _outcome(span, "duplicate" if outcome.get("duplicate") else "handled")
        if not outcome.get("duplicate"):
            log.info("event consumer: %s %s handled (%s)", fields["type"], entry, _summary(outcome))
        return 1


def _outcome(span, outcome: str) -> None:
    if span is not None:
        span.set_attribute("nexus.event.outcome", outcome)


def _summary(outcome: dict) -> str:
    if "integrationsDeleted" in outcome:
        return f"{outcome['integrationsDeleted']} integrations deleted"
    if "syncLogs" in outcome:
        return f"{len(outcome['syncLogs'])} publish runs queued"
    return "done"
