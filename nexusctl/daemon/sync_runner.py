"""Sync runs inside the daemon: started by the API or a schedule, recovered after a crash.

``submit(log_ids)`` runs PENDING logs in the background (at most
SYNC_CONCURRENCY at once). Every SYNC_POLL_INTERVAL the runner also looks for
work a dead process left behind: PENDING logs older than STALE_PENDING (the
process that created them died before starting them) are run here, as are
deferred runs whose run_after has passed (a rate-limit wait or a quota reset
over: taken at once, whatever their age), and
IN_PROGRESS logs whose run lease has expired are marked FAILED ("interrupted")
so their next run resumes from the stored cursor. Starting a log is a
conditional PENDING -> IN_PROGRESS update, so two daemons never run one log.

Scheduled syncs (metadata.syncSchedule): each pass claims integrations whose
``next_sync_at`` has come by moving it to the next time with a conditional
UPDATE (the daemon whose update lands starts the run), then runs every action
of the provider.
"""

from __future__ import annotations

import asyncio
import logging

from nexusctl.core import sync_runs
from nexusctl.core.sync_queue import claim_scheduled, mark_interrupted, plan_each, stale_work
from nexusctl.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

SYNC_CONCURRENCY = 4


class SyncRunner:
    def __init__(self, services, metrics=None) -> None:
        self._svc = services
        self._interval = services.settings.sync_poll_seconds
        self._gate = asyncio.Semaphore(SYNC_CONCURRENCY)
        self._tasks: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None
        self.polls = 0  # passes finished (claims made, runs started): the runner is alive and polling
        if metrics is not None:
            metrics.counter_from(
                "nexus_sync_polls_total", "Passes of the sync runner over the queue and schedules.", lambda: self.polls
            )

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._recover_forever(), name="sync-recovery")

    async def stop(self) -> None:
        for task in [self._loop_task, *self._tasks]:
            if task is not None:
                task.cancel()  # a run stops mid-page: its lease expires, recovery marks it interrupted
        await asyncio.gather(*(t for t in [self._loop_task, *self._tasks] if t is not None), return_exceptions=True)

    def submit(self, log_ids) -> None:
        for log_id in log_ids:
            task = asyncio.create_task(self._run(log_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, log_id) -> None:
        async with self._gate:
            try:
                await sync_runs.run(self._svc, log_id)
            except Exception:  # noqa: BLE001 - run() records failures; this is the database being away
                log.exception("sync %s could not run", log_id)

    async def _recover_forever(self) -> None:
        while True:
            try:
                pending, orphans = await self._svc.run(stale_work)
                if orphans:
                    await self._svc.run(mark_interrupted, orphans)
                self.submit(pending)
                due = await self._svc.run(claim_scheduled)
                if due:
                    self.submit(
                        [
                            row.id
                            for row in await self._svc.run(plan_each, due, None, trigger="schedule", skipped=_skipped)
                        ]
                    )
            except DatabaseUnavailable as exc:  # an outage: one line per pass, no stack
                log.warning("sync recovery pass failed: %s", exc.message)
            except Exception:  # noqa: BLE001 - whatever it was, try again next round
                log.warning("sync recovery pass failed", exc_info=True)
            self.polls += 1
            await asyncio.sleep(self._interval)


def _skipped(integration_id, why: str) -> None:
    log.info("scheduled sync of %s skipped: %s", integration_id, why)
