"""Group commit for emitted events: concurrent `POST /integrations/:id/events` share one transaction.

Each request's event joins the batch waiting for the database; while one batch's transaction runs,
the events that arrive meanwhile gather for the next (no timer: a lone event goes at once, a busy
route batches by itself). Every caller is answered only once the transaction holding its event has
committed, so a 202 still means "durable". An event refused on its own (bad type, an integration
that is not the caller's) is refused alone; a database error fails the batch it was in.
"""

from __future__ import annotations

import asyncio
import weakref

from nexusctl import tracing
from nexusctl.core import events

# One batcher per database executor (one per daemon; tests run several apps in one process).
_BATCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class EmitBatcher:
    def __init__(self, db, worker=None) -> None:
        self.db = db  # daemon.dbexec.DbExecutor
        # This daemon's delivery worker: what it has room for of a batch's deliveries is leased to it in the batch's
        # INSERT and handed over once it is committed (no claim needed: ``DeliveryWorker.offer``).
        self.worker = worker
        self.waiting: list = []
        self.drainer: asyncio.Task | None = None
        self.batches = 0  # transactions committed: how far emits are sharing them

    async def emit(self, integration_id, event_type, data, owner_id) -> dict:
        future = asyncio.get_running_loop().create_future()
        # The batch runs in another task: each event takes its own request's trace context along.
        item = (integration_id, event_type, data, owner_id, tracing.current_traceparent())
        self.waiting.append((item, future))
        if self.drainer is None or self.drainer.done():
            self.drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self.waiting:
            # Before the batch is taken: should the offer wait for a claim under way, the batch gathers meanwhile.
            offer = await self.worker.offer() if self.worker is not None else None
            batch, self.waiting = self.waiting[: events.BATCH_MAX], self.waiting[events.BATCH_MAX :]
            items = [item for item, _ in batch]
            handed = None
            try:
                if offer is None:
                    outcomes = await self.db.run(events.emit_many, items)
                else:
                    outcomes, handed = await self.db.run(events.emit_handing, items, offer)
            except Exception as exc:  # noqa: BLE001 - each caller raises it (a 503 when the database is away)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                if offer is not None:  # what it leased (nothing if it failed) is held; the rest of the room freed
                    self.worker.adopt(offer, handed)
            self.batches += 1
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the caller went away; its event is committed all the same
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


def batcher(db, worker=None) -> EmitBatcher:
    found = _BATCHERS.get(db)
    if found is None:
        found = _BATCHERS[db] = EmitBatcher(db, worker)
    elif worker is not None:
        found.worker = worker
    return found
