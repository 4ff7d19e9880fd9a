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

A deferred run does not wait for the next pass: the runner wakes when the
earliest run_after it knows of comes (those its own runs were deferred to,
and the earliest still to come in the database, read after each pass), never
later than SYNC_POLL_INTERVAL and never sooner than MIN_WAKE after a pass,
so an overdue run_after it cannot take makes no busy loop.

Scheduled syncs (metadata.syncSchedule): each pass claims integrations whose
``next_sync_at`` has come by moving it to the next time with a conditional
UPDATE (the daemon whose update lands starts the run), then runs every action
of the provider.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from nexusctl import clock
from nexusctl.core import sync_runs
from nexusctl.core.sync_queue import claim_scheduled, mark_interrupted, next_deferred, plan_each, stale_work
from nexusctl.enums import SyncStatus
from nexusctl.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

SYNC_CONCURRENCY = 4
MIN_WAKE = 0.1  # seconds between two passes at least, whatever run_after says
LATE = 0.01  # seconds past a run_after the runner wakes at: the pass then finds it due (run_after <= now)


class SyncRunner:
    def __init__(self, services, metrics=None) -> None:
        self._svc = services
        self._interval = services.settings.sync_poll_seconds
        self._gate = asyncio.Semaphore(SYNC_CONCURRENCY)
        self._tasks: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None
        self._next: dt.datetime | None = None  # the earliest run_after known to come: the next wake-up
        self._wake = asyncio.Event()  # set when a run is deferred to before that
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
                entry = await sync_runs.run(self._svc, log_id)
            except Exception:  # noqa: BLE001 - run() records failures; this is the database being away
                log.exception("sync %s could not run", log_id)
                return
        if entry.status == SyncStatus.PENDING and entry.run_after is not None:  # deferred: run it again then
            self.note_deferred(entry.run_after)

    def note_deferred(self, run_after: dt.datetime) -> None:
        """A run deferred to ``run_after``: the runner wakes then (if that is before its next wake-up)."""
        if self._next is None or run_after < self._next:
            self._next = run_after
            self._wake.set()

    async def _sleep(self) -> None:
        """Until SYNC_POLL_INTERVAL has passed or the earliest known run_after has come (at least MIN_WAKE)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            wait = started + self._interval - loop.time()
            if self._next is not None:
                until = (self._next - clock.now()).total_seconds() + LATE
                wait = min(wait, max(until, started + MIN_WAKE - loop.time()))
            if wait <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                return

    async def _recover_forever(self) -> None:
        while True:
            self._next = None  # read again below; runs deferred meanwhile note theirs
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
                upcoming = await self._svc.run(next_deferred)  # another process's deferrals too
                if upcoming is not None:
                    self.note_deferred(upcoming)
            except DatabaseUnavailable as exc:  # an outage: one line per pass, no stack
                log.warning("sync recovery pass failed: %s", exc.message)
            except Exception:  # noqa: BLE001 - whatever it was, try again next round
                log.warning("sync recovery pass failed", exc_info=True)
            self.polls += 1
            await self._sleep()


def _skipped(integration_id, why: str) -> None:
    log.info("scheduled sync of %s skipped: %s", integration_id, why)
