"""The database side of a sync run: the log's states, change detection, resume cursors.

Each page is applied in one transaction: the items' fingerprints are compared
with what the action saw before (``synced_items``), every new item becomes a
``<resource>.created`` event and every changed one ``<resource>.updated``
(outbox + webhooks, in the same transaction), the log's counters advance and
the resume state is stored. So a crash between pages loses nothing and repeats
nothing: the next run resumes after the last committed page, and data seen
twice emits nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import uuid

from peewee import fn

from nexusctl.core import events, snapshots, sync_logs
from nexusctl.db.database import database_proxy
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, IntegrationSyncLog, SyncCursor, SyncedItem
from nexusctl.enums import SyncStatus
from nexusctl.errors import NexusError, SyncNotStarted, UsageProblem

SYNCED = "integration.synced"
DELETE_BATCH = 500
ACTIVE = (SyncStatus.PENDING, SyncStatus.IN_PROGRESS)
SKIPPED_PREFIX = "skipped: "  # a CANCELLED log's error when the provider could not take the content


def create(
    integration: Integration,
    action: str,
    *,
    full: bool,
    trigger: str,
    resource_type: str | None = None,
    resource_id: str | None = None,
) -> IntegrationSyncLog:
    """A PENDING run; refused while a run of the same action is pending or in progress. ``resource_type`` is what
    the action fetches (its events' resource), ``resource_id`` whose (the connected account).

    A run deferred until a provider's wait ends (``run_after``, core.sync_runs) is that pending run: once its
    time has come it is returned to be run now (it resumes from its cursor), so `nexusctl sync run` from cron
    takes it without a daemon; before, the refusal says until when."""
    with database_proxy.atomic():
        running = (
            IntegrationSyncLog.select(
                IntegrationSyncLog.id,
                IntegrationSyncLog.status,
                IntegrationSyncLog.run_after,
                IntegrationSyncLog.action,
            )
            .where(
                (IntegrationSyncLog.integration == integration.id)
                & (IntegrationSyncLog.action == action)
                & IntegrationSyncLog.status.in_(ACTIVE)
            )
            .first()
        )
        deferred = running is not None and running.status == SyncStatus.PENDING and running.run_after is not None
        if deferred and running.run_after <= utcnow():
            return IntegrationSyncLog.get_by_id(running.id)
        if deferred:
            raise SyncNotStarted(
                f"a {action} sync of integration {integration.id} is deferred until "
                f"{running.run_after.strftime('%Y-%m-%dT%H:%M:%SZ')} (log {running.id}), when the provider's "
                f"wait ends; it runs then, or `nexusctl sync cancel {running.id}`",
                syncLogId=str(running.id),
            )
        if running is not None:
            raise SyncNotStarted(
                f"a {action} sync of integration {integration.id} is already running "
                f"(log {running.id}); "
                f"wait for it or `nexusctl sync cancel {running.id}`",
                syncLogId=str(running.id),
            )
        return IntegrationSyncLog.create(
            integration=integration.id,
            action=action,
            status=SyncStatus.PENDING,
            resource_type=resource_type,
            resource_id=resource_id,
            metadata={"full": full, "trigger": trigger},
        )


def start(log_id: uuid.UUID) -> IntegrationSyncLog | None:
    """PENDING -> IN_PROGRESS; None if it is no longer pending (cancelled meanwhile). A deferred run keeps its
    first start time."""
    now = utcnow()
    moved = (
        IntegrationSyncLog.update(
            status=SyncStatus.IN_PROGRESS,
            updated_at=now,
            run_after=None,
            started_at=fn.COALESCE(IntegrationSyncLog.started_at, now),
        )
        .where((IntegrationSyncLog.id == log_id) & (IntegrationSyncLog.status == SyncStatus.PENDING))
        .execute()
    )
    return IntegrationSyncLog.get_by_id(log_id) if moved else None


def resume_of(integration_id, action: str) -> dict | None:
    row = (
        SyncCursor.select(SyncCursor.resume)
        .where((SyncCursor.integration == integration_id) & (SyncCursor.action == action))
        .tuples()
        .first()
    )
    return row[0] if row else None


def _store_resume(integration_id, action: str, resume: dict | None) -> None:
    if resume is None:
        SyncCursor.delete().where((SyncCursor.integration == integration_id) & (SyncCursor.action == action)).execute()
        return
    SyncCursor.insert(integration=integration_id, action=action, resume=resume).on_conflict(
        conflict_target=[SyncCursor.integration, SyncCursor.action],
        update={SyncCursor.resume: resume, SyncCursor.updated_at: utcnow()},
    ).execute()


def status_of(log_id) -> SyncStatus | None:
    row = IntegrationSyncLog.select(IntegrationSyncLog.status).where(IntegrationSyncLog.id == log_id).tuples().first()
    return None if row is None else row[0]


def is_cancelled(log_id) -> bool:
    return status_of(log_id) in (None, SyncStatus.CANCELLED)


def apply_page(log_id, integration_id, action, items, resume: dict | None, page_meta: dict) -> dict:
    """One page, atomically: change events, seen marks, counters, resume state. Returns its counts."""
    integration = Integration.get_by_id(integration_id)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with database_proxy.atomic():
        known = {}
        ids = [item.external_id for item in items]
        if ids:
            known = {
                external: (row_id, fingerprint)
                for row_id, external, fingerprint in SyncedItem.select(
                    SyncedItem.id, SyncedItem.external_id, SyncedItem.fingerprint
                )
                .where(
                    (SyncedItem.integration == integration_id)
                    & (SyncedItem.action == action)
                    & SyncedItem.external_id.in_(ids)
                )
                .tuples()
            }
        now, fresh = utcnow(), []
        for item in items:
            fingerprint = item.fingerprint
            seen = known.get(item.external_id)
            if seen is None:
                fresh.append(
                    {
                        "integration": integration_id,
                        "action": action,
                        "external_id": item.external_id,
                        "fingerprint": fingerprint,
                        "seen_run": log_id,
                    }
                )
                known[item.external_id] = (None, fingerprint)  # a duplicate within the page is not new twice
                events.record(
                    f"{page_meta['resource']}.created",
                    integration,
                    action=action,
                    externalId=item.external_id,
                    item=item.data,
                )
                counts["created"] += 1
                continue
            row_id, before = seen
            if before != fingerprint:
                events.record(
                    f"{page_meta['resource']}.updated",
                    integration,
                    action=action,
                    externalId=item.external_id,
                    item=item.data,
                )
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
            if row_id is not None:
                SyncedItem.update(fingerprint=fingerprint, seen_run=log_id, updated_at=now).where(
                    SyncedItem.id == row_id
                ).execute()
        if fresh:
            SyncedItem.insert_many(fresh).execute()
        log = IntegrationSyncLog.get_by_id(log_id)
        meta = dict(log.metadata or {})
        meta["pages"] = meta.get("pages", 0) + 1
        for key, value in counts.items():
            meta[key] = meta.get(key, 0) + value
        if resume is not None:
            meta["cursor"] = resume
        IntegrationSyncLog.update(
            items_processed=IntegrationSyncLog.items_processed + len(items), metadata=meta, updated_at=now
        ).where(IntegrationSyncLog.id == log_id).execute()
        _store_resume(integration_id, action, resume)
    return counts


def record_published(log_id, result: dict) -> None:
    """A publish run's one item: what identifies the post at the provider."""
    log = IntegrationSyncLog.get_by_id(log_id)
    IntegrationSyncLog.update(
        items_processed=1, metadata={**(log.metadata or {}), "result": result}, updated_at=utcnow()
    ).where(IntegrationSyncLog.id == log_id).execute()


def uncertain_publish(integration_id, content_id: str, log_id) -> dt.datetime | None:
    """When the last finished publish of this content to this integration began, if it ended not knowing
    whether it posted; else None. (Its integration's logs by the (integration_id, created_at) index, newest
    first: one row read.)"""
    last = (
        IntegrationSyncLog.select(
            IntegrationSyncLog.status,
            IntegrationSyncLog.metadata,
            IntegrationSyncLog.started_at,
            IntegrationSyncLog.created_at,
        )
        .where(
            (IntegrationSyncLog.integration == integration_id)
            & (IntegrationSyncLog.action == "publish")
            & (IntegrationSyncLog.resource_id == content_id)
            & (IntegrationSyncLog.id != log_id)
            & IntegrationSyncLog.status.in_([SyncStatus.COMPLETED, SyncStatus.FAILED])
        )
        .order_by(IntegrationSyncLog.created_at.desc())
        .first()
    )
    if last is None or last.status != SyncStatus.FAILED or not (last.metadata or {}).get("mayHavePosted"):
        return None
    return last.started_at or last.created_at


def defer(log_id, run_after, *, pending: dict | None = None, extra: dict | None = None) -> IntegrationSyncLog:
    """IN_PROGRESS -> PENDING until ``run_after`` (a publish waiting on the provider), ``pending`` kept in its
    metadata for the next run. A run cancelled meanwhile stays CANCELLED."""
    now = utcnow()
    with database_proxy.atomic():
        log = IntegrationSyncLog.get_by_id(log_id)
        meta = {**(log.metadata or {}), **(extra or {})}
        if pending is not None:
            meta["pending"] = pending
        IntegrationSyncLog.update(status=SyncStatus.PENDING, run_after=run_after, metadata=meta, updated_at=now).where(
            (IntegrationSyncLog.id == log_id) & (IntegrationSyncLog.status == SyncStatus.IN_PROGRESS)
        ).execute()
    return IntegrationSyncLog.get_by_id(log_id)


def delete_unseen(log_id, integration_id, action: str, resource: str) -> int:
    """After a full run: every item this run did not see is gone at the provider."""
    integration = Integration.get_by_id(integration_id)
    total = 0
    while True:
        with database_proxy.atomic():
            rows = list(
                SyncedItem.select(SyncedItem.id, SyncedItem.external_id)
                .where(
                    (SyncedItem.integration == integration_id)
                    & (SyncedItem.action == action)
                    & (SyncedItem.seen_run != log_id)
                )
                .limit(DELETE_BATCH)
                .tuples()
            )
            if not rows:
                return total
            for _row_id, external in rows:
                events.record(f"{resource}.deleted", integration, action=action, externalId=external)
            SyncedItem.delete().where(SyncedItem.id.in_([r[0] for r in rows])).execute()
            total += len(rows)


def finish(
    log_id,
    integration_id,
    action: str,
    *,
    deleted: int = 0,
    extra: dict | None = None,
    event: tuple[str, dict] | None = None,
) -> IntegrationSyncLog:
    """COMPLETED: the integration's lastSyncAt, integration.synced, no resume state. Only a run still IN_PROGRESS:
    one cancelled after its last page stays CANCELLED, one recovery marked interrupted (its lease lapsed) stays
    FAILED, and neither changes anything else. ``event`` (type, data): recorded too, only when the run completes
    (a snapshot's analytics.fetched)."""
    now = utcnow()
    with database_proxy.atomic():
        log = IntegrationSyncLog.get_by_id(log_id)
        meta = {**(log.metadata or {}), **(extra or {}), "deleted": deleted}
        meta.pop("cursor", None)
        started = log.started_at or now
        meta["durationMs"] = int((now - started).total_seconds() * 1000)
        moved = (
            IntegrationSyncLog.update(
                status=SyncStatus.COMPLETED, completed_at=now, metadata=meta, error=None, updated_at=now
            )
            .where((IntegrationSyncLog.id == log_id) & (IntegrationSyncLog.status == SyncStatus.IN_PROGRESS))
            .execute()
        )
        if not moved:
            return IntegrationSyncLog.get_by_id(log_id)
        Integration.update(last_sync_at=now, last_error=None, updated_at=now, health_due_at=now).where(
            Integration.id == integration_id
        ).execute()
        _store_resume(integration_id, action, None)
        integration = Integration.get_by_id(integration_id)
        log = IntegrationSyncLog.get_by_id(log_id)
        if event is not None:
            events.record(event[0], integration, **event[1])
        events.record(
            SYNCED,
            integration,
            action=action,
            syncLogId=str(log_id),
            itemsProcessed=log.items_processed,
            created=meta.get("created", 0),
            updated=meta.get("updated", 0),
            deleted=deleted,
        )
    return log


def finish_snapshot(
    log_id, integration_id, action: str, resource: str, report, *, extra: dict | None = None
) -> IntegrationSyncLog:
    """A snapshot run (fetch_analytics) COMPLETED: its summary in the log (itemsProcessed: the posts measured) and
    one ``<resource>.fetched`` event with the whole report, in one transaction; no per-item events, since a
    metric changing is not the post changing."""
    summary = snapshots.summary(report)
    with database_proxy.atomic():
        IntegrationSyncLog.update(items_processed=summary["posts"], updated_at=utcnow()).where(
            (IntegrationSyncLog.id == log_id) & (IntegrationSyncLog.status == SyncStatus.IN_PROGRESS)
        ).execute()
        data = snapshots.event_data(report, action=action, log_id=log_id)
        return finish(
            log_id,
            integration_id,
            action,
            extra={**(extra or {}), "summary": summary},
            event=(f"{resource}.fetched", data),
        )


def fail(
    log_id, integration_id, error: NexusError, *, extra: dict | None = None, status: SyncStatus = SyncStatus.FAILED
) -> IntegrationSyncLog:
    """FAILED (or CANCELLED): the error on the log and, for a failure, on the integration; resume state kept."""
    now = utcnow()
    message = f"{error.code}: {error.message}"[:2000]
    with database_proxy.atomic():
        log = IntegrationSyncLog.get_by_id(log_id)
        meta = {**(log.metadata or {}), **(extra or {}), "errorCode": error.code}
        if log.started_at:
            meta["durationMs"] = int((now - log.started_at).total_seconds() * 1000)
        IntegrationSyncLog.update(status=status, completed_at=now, error=message, metadata=meta, updated_at=now).where(
            (IntegrationSyncLog.id == log_id) & IntegrationSyncLog.status.in_(ACTIVE)
        ).execute()
        if status == SyncStatus.FAILED:
            Integration.update(last_error=message, updated_at=now, health_due_at=now).where(
                Integration.id == integration_id
            ).execute()
    return IntegrationSyncLog.get_by_id(log_id)


def skip(log_id, reason: str) -> IntegrationSyncLog:
    """A publish the provider cannot take (text only to a video platform): CANCELLED with the reason, which is
    neither a failure of the integration (its lastError and health stay) nor a sync (no integration.synced)."""
    now = utcnow()
    with database_proxy.atomic():
        log = IntegrationSyncLog.get_by_id(log_id)
        IntegrationSyncLog.update(
            status=SyncStatus.CANCELLED,
            completed_at=now,
            updated_at=now,
            error=f"{SKIPPED_PREFIX}{reason}",
            metadata={**(log.metadata or {}), "skipped": True, "skipReason": reason},
        ).where((IntegrationSyncLog.id == log_id) & IntegrationSyncLog.status.in_(ACTIVE)).execute()
    return IntegrationSyncLog.get_by_id(log_id)


def cancel(log_id, *, owner_id=None) -> IntegrationSyncLog:
    """Ask a run to stop: PENDING ones never start, IN_PROGRESS ones stop after their current page."""
    log = sync_logs.get(log_id, owner_id=owner_id)
    log_uuid = log.id
    if log.status not in ACTIVE:
        raise UsageProblem(
            f"sync log {log_uuid} is {log.status.value}: only PENDING or IN_PROGRESS runs can be cancelled",
            field="logId",
        )
    now = utcnow()
    IntegrationSyncLog.update(
        status=SyncStatus.CANCELLED, completed_at=now, updated_at=now, error="cancelled by an operator"
    ).where((IntegrationSyncLog.id == log_uuid) & IntegrationSyncLog.status.in_(ACTIVE)).execute()
    return IntegrationSyncLog.get_by_id(log_uuid)
