"""Sync log reads (runs arrive with the sync issue)."""

from __future__ import annotations

from nexusctl.core import integrations
from nexusctl.core.ids import parse_uuid
from nexusctl.core.paging import Bulky, Page, bounded_page, newest_first
from nexusctl.core.serializers import sync_log_to_dict
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
    """``list_page`` as the API's and CLI's dicts, bounded in bytes (paging.bounded_page)."""
    return bounded_page(
        _query(integration_id, status, owner_id),
        IntegrationSyncLog,
        limit,
        cursor,
        bulky=Bulky(IntegrationSyncLog.metadata, "metadata"),
        serialize=lambda rows: [sync_log_to_dict(r) for r in rows],
    )


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
