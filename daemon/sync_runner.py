"""Sync runs inside the daemon: started by the API or a schedule, recovered after a crash.

``submit(log_ids)`` runs PENDING logs in the background (at most
SYNC_CONCURRENCY at once). Every SYNC_POLL_INTERVAL the runner also looks for
work a dead process left behind: PENDING logs older than STALE_PENDING (the
process that created them died before starting them) are run here, and
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
import datetime as dt
import logging

from db.fields import utcnow
from db.models import IntegrationSyncLog, Lease
from nexusctl.enums import SyncStatus
from nexusctl.errors import DatabaseUnavailable, SyncFailed

log = logging.getLogger(__name__)

SYNC_CONCURRENCY = 4
STALE_PENDING = dt.timedelta(minutes=2)
START_GRACE = dt.timedelta(seconds=60)  # a run just (re)started has this long to take its lease


def claim_scheduled(limit: int = 50) -> list:
    """Integrations whose scheduled sync is due, each claimed by moving its next time on."""
    from db.models import Integration
    from nexusctl.core import schedules

    now = utcnow()
    due = list(Integration.select(Integration.id, Integration.next_sync_at, Integration.metadata).where(
        Integration.next_sync_at.is_null(False) & (Integration.next_sync_at <= now) & Integration.is_active)
        .order_by(Integration.next_sync_at).limit(limit))
    claimed = []
    for row in due:
        try:
            upcoming = schedules.next_for(row.metadata, now)
        except Exception:  # noqa: BLE001 - a schedule that no longer parses: stop scheduling it
            upcoming = None
        # Still due? Then this daemon moves it on and runs it; another daemon's update finds it in the future.
        moved = Integration.update(next_sync_at=upcoming).where(
            (Integration.id == row.id) & (Integration.next_sync_at <= now)).execute()
        if moved:
            claimed.append(row.id)
    return claimed


def plan_scheduled(integration_ids) -> list:
    from nexusctl.core import sync_runs

    logs = []
    for integration_id in integration_ids:
        try:
            logs += sync_runs.plan(integration_id, None, trigger="schedule")
        except SyncFailed as exc:  # the previous run is still going: this slot is skipped
            log.info("scheduled sync of %s skipped: %s", integration_id, exc.message)
        except Exception as exc:  # noqa: BLE001 - an integration without sync actions, a race with delete
            log.info("scheduled sync of %s skipped: %s", integration_id, getattr(exc, "message", exc))
    return logs


def stale_work(limit: int = 50) -> tuple[list, list]:
    """(PENDING log ids nobody started, IN_PROGRESS logs whose run lease is gone) — by the status index."""
    from providers.sync.registry import ACTIONS

    actions = {name for by_name in ACTIONS.values() for name in by_name}
    now = utcnow()
    # Publish runs (queued by content.published) are this runner's to start at once; a PENDING sync is
    # only taken once its creator (the API route, `sync run`) has had ample time to start it itself.
    # A deferred run (a publish whose video the provider still processes, a sync waiting for a spent daily
    # quota to reset) waits for its run_after.
    due = IntegrationSyncLog.run_after.is_null() | (IntegrationSyncLog.run_after <= now)
    publish = IntegrationSyncLog.action == "publish"
    pending = [i for (i,) in IntegrationSyncLog.select(IntegrationSyncLog.id).where(
        (IntegrationSyncLog.status == SyncStatus.PENDING) & due
        & (publish | ((IntegrationSyncLog.created_at < now - STALE_PENDING) & IntegrationSyncLog.action.in_(actions))))
        .order_by(IntegrationSyncLog.created_at).limit(limit).tuples()]
    # The grace covers the gap between a run's start (PENDING -> IN_PROGRESS, which sets updated_at) and its
    # taking the lease. It counts from updated_at, not started_at: a deferred publish keeps its first
    # started_at (its durationMs spans the whole publish), so it would have no grace when it restarts.
    running = list(IntegrationSyncLog.select(IntegrationSyncLog.id, IntegrationSyncLog.integration,
                                             IntegrationSyncLog.action, IntegrationSyncLog.started_at).where(
        (IntegrationSyncLog.status == SyncStatus.IN_PROGRESS)
        & (IntegrationSyncLog.updated_at < now - START_GRACE)).limit(limit))
    named = [(f"sync:{row.integration_id}:{row.action}", row) for row in running]
    held = {name: (holder, until) for name, holder, until in Lease.select(Lease.name, Lease.holder, Lease.until)
            .where(Lease.name.in_([name for name, _ in named])).tuples()} if named else {}
    # One read for all of them; a log is orphaned unless its own run still holds the lease.
    orphans = [row for name, row in named if held.get(name, (None, now))[1] <= now or held[name][0] != str(row.id)]
    return pending, orphans


def mark_interrupted(orphans) -> None:
    """FAILED, for runs whose process died. A sync resumes from its cursor next time; a publish may have made
    its post before the process died, so it is marked mayHavePosted (a re-publish to X or Facebook looks first)."""
    from nexusctl.core import sync_state

    for row in orphans:
        log.warning("sync %s (%s) was interrupted (its process stopped); marked FAILED", row.id, row.action)
        if row.action == "publish":
            sync_state.fail(row.id, row.integration_id, SyncFailed(
                "interrupted: the process publishing it stopped mid-way, so the post may have been made; check "
                "the account before publishing this content again"), extra={"mayHavePosted": True})
        else:
            sync_state.fail(row.id, row.integration_id, SyncFailed("interrupted: the process running it stopped; "
                                                                   "the next run resumes from its cursor"))


class SyncRunner:
    def __init__(self, services) -> None:
        self._svc = services
        self._interval = services.settings.sync_poll_seconds
        self._gate = asyncio.Semaphore(SYNC_CONCURRENCY)
        self._tasks: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None

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
        from nexusctl.core import sync_runs

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
                    self.submit([row.id for row in await self._svc.run(plan_scheduled, due)])
            except DatabaseUnavailable as exc:  # an outage: one line per pass, no stack
                log.warning("sync recovery pass failed: %s", exc.message)
            except Exception:  # noqa: BLE001 - whatever it was, try again next round
                log.warning("sync recovery pass failed", exc_info=True)
            await asyncio.sleep(self._interval)
