"""The outbox relay: outbox_events -> the Redis Stream EVENTS_STREAM, in order, at least once.

One daemon publishes at a time (the ``outbox-relay`` lease, renewed every
pass), taking unpublished rows oldest first, appending them with one
pipelined XADD each (fields ``id``, ``type``, ``occurredAt``, ``payload``, and
``traceparent`` for an event written under a span: the trace context stored with
its row, so a consumer's span continues the emitter's trace) and only then
stamping them published. So:

- a crash or a Redis outage between the XADD and the stamp publishes those
  events again (at least once: consumers dedupe by ``id``), never loses them;
- nothing later is published while an earlier event is still unpublished, so
  events of one integration reach the stream in the order they were written;
- while Redis is down the relay backs off (0.5 s doubling to 5 s), logs the
  outage once and resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from nexusctl.core import leases, outbox

log = logging.getLogger(__name__)

LEASE_NAME = "outbox-relay"
LEASE_SECONDS = 15.0
BATCH = 500
IDLE_POLL = 0.25  # seconds between looks at an empty outbox
MAX_BACKOFF = 5.0


class OutboxRelay:
    def __init__(self, settings, db, redis_client, metrics=None) -> None:
        self._db, self._redis = db, redis_client
        self._stream, self._maxlen = settings.events_stream, settings.events_stream_maxlen
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._more = False  # the last batch was cut by its bounds: more is waiting, go on at once
        self._renew_at = 0.0  # loop time after which the lease is renewed (half its life): an idle relay
        self.published = 0  # writes the lease row every few seconds, not on every 0.25 s look
        if metrics is not None:
            metrics.counter_from(
                "nexus_events_published_total",
                "Outbox events this daemon published to the stream.",
                lambda: self.published,
            )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self._db.run(leases.release, LEASE_NAME, self._holder)
        except Exception:  # noqa: BLE001 - it expires on its own
            pass

    async def _run(self) -> None:
        backoff, failing = 0.5, None
        while not self._stopping.is_set():
            try:
                sent = await self.pass_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis or the database is away: wait, retry, never die
                what = type(exc).__name__
                if failing != what:
                    log.warning("event relay: cannot publish (%s); retrying until it can", what)
                    failing = what
                await self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if failing is not None:
                log.info("event relay: publishing again")
                failing, backoff = None, 0.5
            if sent is None:  # another daemon holds the relay
                await self._sleep(LEASE_SECONDS / 3)
            elif not self._more:  # caught up: wait for the next events
                await self._sleep(IDLE_POLL)

    async def pass_once(self) -> int | None:
        """Publish one batch; None when another daemon holds the relay lease."""
        loop = asyncio.get_running_loop()
        if loop.time() >= self._renew_at:
            if not await self._db.run(leases.acquire, LEASE_NAME, self._holder, LEASE_SECONDS):
                self._renew_at = 0.0
                return None
            self._renew_at = loop.time() + LEASE_SECONDS / 2
        batch, self._more = await self._db.run(outbox.unpublished, BATCH)
        if not batch:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for event in batch:
            pipe.xadd(self._stream, outbox.stream_fields(event), maxlen=self._maxlen, approximate=True)
        await pipe.execute()
        await self._db.run(outbox.mark_published, [event.id for event in batch])
        self.published += len(batch)
        return len(batch)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass
