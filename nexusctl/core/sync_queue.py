"""The sync queue in the database: what is due, what a dead process left behind, and planning runs in bulk.

The daemon's runner (``nexusctl.daemon.sync_runner``) polls these; ``nexusctl sync run --all`` plans with
``plan_each`` too. Every claim is a conditional UPDATE, so several daemons share one queue safely.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

from nexusctl.core import schedules, sync_runs, sync_state
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, IntegrationSyncLog, Lease
from nexusctl.enums import Provider, SyncStatus
from nexusctl.errors import SyncFailed
from nexusctl.providers.sync.registry import ACTIONS

log = logging.getLogger(__name__)

STALE_PENDING = dt.timedelta(minutes=2)
START_GRACE = dt.timedelta(seconds=60)  # a run just (re)started has this long to take its lease


def claim_scheduled(limit: int = 50) -> list:
    """Integrations whose scheduled sync is due, each claimed by moving its next time on."""
    now = utcnow()
    due = list(
        Integration.select(Integration.id, Integration.next_sync_at, Integration.metadata)
        .where(Integration.next_sync_at.is_null(False) & (Integration.next_sync_at <= now) & Integration.is_active)
        .order_by(Integration.next_sync_at)
        .limit(limit)
    )
    claimed = []
    for row in due:
        try:
            upcoming = schedules.next_for(row.metadata, now)
        except Exception:  # noqa: BLE001 - a schedule that no longer parses: stop scheduling it
            upcoming = None
        # Still due? Then this daemon moves it on and runs it; another daemon's update finds it in the future.
        moved = (
            Integration.update(next_sync_at=upcoming)
            .where((Integration.id == row.id) & (Integration.next_sync_at <= now))
            .execute()
        )
        if moved:
            claimed.append(row.id)
    return claimed


def stale_work(limit: int = 50) -> tuple[list, list]:
    """(PENDING log ids nobody started, IN_PROGRESS logs whose run lease is gone) — by the status index."""
    actions = {name for by_name in ACTIONS.values() for name in by_name}
    now = utcnow()
    # Publish runs (queued by content.published) are this runner's to start at once; a PENDING sync is
    # only taken once its creator (the API route, `sync run`) has had ample time to start it itself.
    # A deferred run (a publish whose video the provider still processes, a sync waiting for a spent daily
    # quota to reset or for a wait the rate budget holds) waits for its run_after, and is taken as soon as
    # that has passed, however young: it was started once already (only an IN_PROGRESS run is deferred, and
    # starting clears run_after), so no creator is still about to start it. A `sync run` that picks up the
    # same due run (sync_state.create) races the runner on the conditional start, which one of them wins.
    due = IntegrationSyncLog.run_after.is_null() | (IntegrationSyncLog.run_after <= now)
    deferred = IntegrationSyncLog.run_after.is_null(False)
    publish = IntegrationSyncLog.action == "publish"
    pending = [
        i
        for (i,) in IntegrationSyncLog.select(IntegrationSyncLog.id)
        .where(
            (IntegrationSyncLog.status == SyncStatus.PENDING)
            & due
            & (
                publish
                | (
                    (deferred | (IntegrationSyncLog.created_at < now - STALE_PENDING))
                    & IntegrationSyncLog.action.in_(actions)
                )
            )
        )
        .order_by(IntegrationSyncLog.created_at)
        .limit(limit)
        .tuples()
    ]
    # The grace covers the gap between a run's start (PENDING -> IN_PROGRESS, which sets updated_at) and its
    # taking the lease. It counts from updated_at, not started_at: a deferred publish keeps its first
    # started_at (its durationMs spans the whole publish), so it would have no grace when it restarts.
    running = list(
        IntegrationSyncLog.select(
            IntegrationSyncLog.id,
            IntegrationSyncLog.integration,
            IntegrationSyncLog.action,
            IntegrationSyncLog.started_at,
        )
        .where(
            (IntegrationSyncLog.status == SyncStatus.IN_PROGRESS) & (IntegrationSyncLog.updated_at < now - START_GRACE)
        )
        .limit(limit)
    )
    named = [(f"sync:{row.integration_id}:{row.action}", row) for row in running]
    held = (
        {
            name: (holder, until)
            for name, holder, until in Lease.select(Lease.name, Lease.holder, Lease.until)
            .where(Lease.name.in_([name for name, _ in named]))
            .tuples()
        }
        if named
        else {}
    )
    # One read for all of them; a log is orphaned unless its own run still holds the lease.
    orphans = [row for name, row in named if held.get(name, (None, now))[1] <= now or held[name][0] != str(row.id)]
    return pending, orphans


def next_deferred():
    """The earliest run_after still to come among the deferred runs ``stale_work`` takes once due (None: none):
    when the daemon's runner should look again, rather than at its next SYNC_POLL_INTERVAL pass."""
    actions = {name for by_name in ACTIONS.values() for name in by_name}
    first = (
        IntegrationSyncLog.select(IntegrationSyncLog.run_after)
        .where(
            (IntegrationSyncLog.status == SyncStatus.PENDING)
            & (IntegrationSyncLog.run_after > utcnow())
            & ((IntegrationSyncLog.action == "publish") | IntegrationSyncLog.action.in_(actions))
        )
        .order_by(IntegrationSyncLog.run_after)
        .first()
    )
    return None if first is None else first.run_after


def mark_interrupted(orphans) -> None:
    """FAILED, for runs whose process died. A sync resumes from its cursor next time; a publish may have made
    its post before the process died, so it is marked mayHavePosted (a re-publish to X or Facebook looks first)."""
    for row in orphans:
        log.warning("sync %s (%s) was interrupted (its process stopped); marked FAILED", row.id, row.action)
        if row.action == "publish":
            sync_state.fail(
                row.id,
                row.integration_id,
                SyncFailed(
                    "interrupted: the process publishing it stopped mid-way, so the post may have been made; check "
                    "the account before publishing this content again"
                ),
                extra={"mayHavePosted": True},
            )
        else:
            sync_state.fail(
                row.id,
                row.integration_id,
                SyncFailed("interrupted: the process running it stopped; the next run resumes from its cursor"),
            )


def plan_each(
    integration_ids, action: str | None, *, full: bool = False, trigger: str, skipped: Callable[[object, str], None]
) -> list:
    """Sync logs planned for each integration; one that cannot be planned now (its previous run still going,
    no such action, deleted meanwhile) is reported to ``skipped(id, why)`` and the others go on."""
    logs = []
    for integration_id in integration_ids:
        try:
            logs += sync_runs.plan(integration_id, action, full=full, trigger=trigger)
        except Exception as exc:  # noqa: BLE001 - SyncFailed (already running), UsageProblem, a race with delete
            skipped(integration_id, getattr(exc, "message", None) or str(exc))
    return logs


def active_with_actions(provider: str | None, action: str | None, *, page: int = 500):
    """Ids of active integrations whose provider has ``action`` (any action when None), page by page by id:
    never the whole table at once."""
    providers = [p for p in ACTIONS if action is None or action in ACTIONS[p]]
    if provider is not None:
        wanted = Provider.parse(provider)
        providers = [p for p in providers if p == wanted]
    after = None
    while True:
        query = (
            Integration.select(Integration.id)
            .where(Integration.is_active & Integration.provider.in_(providers))
            .order_by(Integration.id)
            .limit(page)
        )
        if after is not None:
            query = query.where(Integration.id > after)
        ids = [i for (i,) in query.tuples()]
        if not ids:
            return
        yield ids
        after = ids[-1]
