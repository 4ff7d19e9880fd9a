"""Sync log reads (runs arrive with the sync issue)."""

from __future__ import annotations

from nexusctl.core import integrations, lean
from nexusctl.core.ids import parse_uuid
from nexusctl.core.paging import Bulky, Page, bounded_page, newest_first
from nexusctl.core.serializers import SYNC_LOG_COLUMNS, sync_log_row, sync_log_to_dict
from nexusctl.db.models import Integration, IntegrationSyncLog
from nexusctl.enums import SyncStatus
from nexusctl.errors import SyncLogNotFound


def _query(integration_id, status, owner_id):
    integration = integrations.get(integration_id, owner_id=owner_id)
    query = IntegrationSyncLog.select().where(IntegrationSyncLog.integration == integration.id)
    if status is not None:
        query = query.where(IntegrationSyncLog.status == SyncStatus.parse(status))
    return query


def list_page(
    integration_id, *, status: str | None = None, limit: int | None = None, cursor: str | None = None, owner_id=None
) -> Page:
    """An integration's sync logs, newest first; unknown integration is INTEGRATION_NOT_FOUND."""
    return newest_first(_query(integration_id, status, owner_id), IntegrationSyncLog, limit, cursor)


def list_view(
    integration_id, *, status: str | None = None, limit: int | None = None, cursor: str | None = None, owner_id=None
) -> Page:
    """``list_page`` as the API's and CLI's dicts, bounded in bytes (paging.bounded_page), read lean
    (nexusctl.core.lean: the shown columns as tuples, one statement per shape of filters)."""
    integration = integrations.owner_of(integration_id, owner_id=owner_id)
    where = {'t."integration_id" = ?': [IntegrationSyncLog.integration.db_value(integration)]}
    if status is not None:
        where['t."status" = ?'] = [IntegrationSyncLog.status.db_value(SyncStatus.parse(status))]
    return lean.newest_first(
        _LISTED,
        IntegrationSyncLog,
        where,
        limit,
        cursor,
        serialize=lambda rows: [sync_log_row(values) for values in rows],
        general=lambda: bounded_page(
            _query(integration_id, status, owner_id),
            IntegrationSyncLog,
            limit,
            cursor,
            bulky=Bulky(IntegrationSyncLog.metadata, "metadata"),
            serialize=lambda rows: [sync_log_to_dict(r) for r in rows],
        ),
    )


_LISTED = lean.Listing("integration_sync_logs", SYNC_LOG_COLUMNS, bulky="metadata", bulky_key="metadata")


def get(log_id, *, owner_id=None) -> IntegrationSyncLog:
    """One sync log by id; a malformed id is VALIDATION_ERROR, an unknown one SYNC_LOG_NOT_FOUND."""
    log_uuid = parse_uuid(log_id, "logId")
    query = IntegrationSyncLog.select().join(Integration).where(IntegrationSyncLog.id == log_uuid)
    if owner_id is not None:
        query = query.where(Integration.user_id == owner_id)
    row = query.first()
    if row is None:
        raise SyncLogNotFound(f"sync log {log_uuid} not found", id=str(log_uuid))
    return row
