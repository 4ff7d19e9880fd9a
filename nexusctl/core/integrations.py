"""Integration management: list, show, update, delete."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from nexusctl.core import events, lean, schedules
from nexusctl.core.ids import parse_uuid
from nexusctl.core.metadata import check_metadata
from nexusctl.core.paging import Bulky, Page, bounded_page, check_limit, newest_first
from nexusctl.core.serializers import INTEGRATION_COLUMNS, integration_row, integration_to_dict
from nexusctl.core.storable import check_one_line
from nexusctl.db.database import database_proxy, is_postgres, retry_deadlocks
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, IntegrationSyncLog, Webhook, WebhookDelivery
from nexusctl.db.secrets import public_fields
from nexusctl.enums import Provider
from nexusctl.errors import IntegrationNotFound, UsageProblem

NAME_MAX = 255
SERVICE_METADATA = "provider"


def get(integration_id, *, owner_id=None) -> Integration:
    """The integration; with ``owner_id``, someone else's is NOT_FOUND too (no existence leak)."""
    row_id = parse_uuid(integration_id, "integrationId")
    # Token ciphertexts stay in the database: nothing here shows or needs them.
    row = Integration.select(*public_fields(Integration)).where(Integration.id == row_id).first()
    if row is None or (owner_id is not None and row.user_id != owner_id):
        raise IntegrationNotFound(f"integration {row_id} not found", id=str(row_id))
    return row


def owner_of(integration_id, *, owner_id=None):
    """The integration's id (a UUID) if it exists and, with ``owner_id``, is theirs; else INTEGRATION_NOT_FOUND.
    What a list under an integration checks first, by one lean statement (no model object)."""
    row_id = parse_uuid(integration_id, "integrationId")
    found = database_proxy.execute_sql(
        _owner_sql(is_postgres(database_proxy)), [Integration.id.db_value(row_id)]
    ).fetchone()
    if found is None or (owner_id is not None and Integration.user_id.python_value(found[0]) != owner_id):
        raise IntegrationNotFound(f"integration {row_id} not found", id=str(row_id))
    return row_id


@functools.lru_cache(maxsize=2)
def _owner_sql(postgres: bool) -> str:
    return f'SELECT "user_id" FROM "integrations" WHERE "id" = {"%s" if postgres else "?"}'


def list_page(
    *,
    user_id=None,
    provider: str | Provider | None = None,
    is_active: bool | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    organization_id=None,
) -> Page:
    return newest_first(_query(user_id, provider, is_active, organization_id), Integration, limit, cursor)


def list_view(
    *,
    user_id=None,
    provider: str | Provider | None = None,
    is_active: bool | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    organization_id=None,
) -> Page:
    """``list_page`` as the API's and CLI's dicts, bounded in bytes (paging.bounded_page).

    The hot path (the read route) reads only the shown columns as tuples, by one statement per shape of filters
    (nexusctl.core.lean); a page that would pass the byte budget goes the general way of bounded_page."""
    check_limit(limit)
    filters = {
        "user_id": user_id and parse_uuid(user_id, "userId"),
        "organization_id": organization_id and parse_uuid(organization_id, "organizationId"),
        "provider": Provider.parse(provider) if provider is not None else None,
        "is_active": is_active,
    }
    where = {
        f't."{name}" = ?': [getattr(Integration, name).db_value(value)]
        for name, value in filters.items()
        if value is not None
    }
    return lean.newest_first(
        _LISTED,
        Integration,
        where,
        limit,
        cursor,
        serialize=lambda rows: [integration_row(values) for values in rows],
        general=lambda: bounded_page(
            _query(user_id, provider, is_active, organization_id),
            Integration,
            limit,
            cursor,
            bulky=Bulky(Integration.metadata, "metadata"),
            columns=public_fields(Integration),
            serialize=lambda rows: [integration_to_dict(r) for r in rows],
        ),
    )


_LISTED = lean.Listing("integrations", INTEGRATION_COLUMNS, bulky="metadata", bulky_key="metadata")


def _query(user_id, provider, is_active, organization_id=None):
    query = Integration.select(*public_fields(Integration))
    if user_id is not None:
        query = query.where(Integration.user_id == parse_uuid(user_id, "userId"))
    if organization_id is not None:
        query = query.where(Integration.organization_id == parse_uuid(organization_id, "organizationId"))
    if provider is not None:
        query = query.where(Integration.provider == Provider.parse(provider))
    if is_active is not None:
        query = query.where(Integration.is_active == is_active)
    return query


def update(integration_id, *, name=None, is_active=None, metadata=None, owner_id=None) -> Integration:
    """Change the display name, the active flag or the metadata (replaced whole, except the provider facts
    the service keeps under metadata.provider); metadata.syncSchedule sets when the integration syncs."""
    if name is None and is_active is None and metadata is None:
        raise UsageProblem("nothing to update: give a name, isActive or metadata")
    changes = {}
    if name is not None:
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
            raise UsageProblem(f"name must be 1-{NAME_MAX} characters", field="name")
        check_one_line(name, "name")
        changes[Integration.name] = name.strip()
    if is_active is not None:
        if not isinstance(is_active, bool):
            raise UsageProblem("isActive must be true or false", field="isActive")
        changes[Integration.is_active] = is_active
    row = get(integration_id, owner_id=owner_id)
    if metadata is not None:
        check_metadata(metadata)
        # metadata.provider is the service's own (tenant, instance URL, data centre ...): a client that
        # sends back what it read, or anything else there, cannot change it.
        mine = {k: v for k, v in metadata.items() if k != SERVICE_METADATA}
        kept = {k: v for k, v in (row.metadata or {}).items() if k == SERVICE_METADATA}
        changes[Integration.metadata] = {**mine, **kept}
        changes[Integration.next_sync_at] = schedules.next_for(metadata, utcnow())
    changes[Integration.updated_at] = utcnow()
    Integration.update(changes).where(Integration.id == row.id).execute()
    return get(row.id)


@dataclass(frozen=True)
class Deleted:
    integration: Integration
    webhooks: int
    deliveries: int
    sync_logs: int
    revoked: bool | None = None  # True/False: revoked at the provider or tried and failed; None: not tried

    def to_dict(self) -> dict:
        return {
            "id": str(self.integration.id),
            "deleted": True,
            "webhooksDeleted": self.webhooks,
            "deliveriesDeleted": self.deliveries,
            "syncLogsDeleted": self.sync_logs,
            "revoked": self.revoked,
        }


def removal_counts(row: Integration) -> tuple[int, int, int]:
    """What deleting ``row`` takes with it: webhooks, deliveries, sync logs."""
    webhooks = Webhook.select().where(Webhook.integration == row.id)
    return (
        webhooks.count(),
        WebhookDelivery.select().where(WebhookDelivery.webhook.in_(webhooks.select(Webhook.id))).count(),
        IntegrationSyncLog.select().where(IntegrationSyncLog.integration == row.id).count(),
    )


def delete(integration_id, *, dry_run: bool = False, owner_id=None, revoked: bool | None = None) -> Deleted:
    """Delete an integration with its webhooks, deliveries and sync logs (cascade)."""
    row = get(integration_id, owner_id=owner_id)
    return retry_deadlocks(lambda: _delete(row, dry_run, revoked))


def _delete(row: Integration, dry_run: bool, revoked: bool | None) -> Deleted:
    with database_proxy.atomic():
        counts = removal_counts(row)
        if not dry_run:
            # Children first: the delivery worker locks deliveries, then their webhooks; a cascade from
            # the integration takes them the other way round and deadlocked with it on PostgreSQL.
            hooks = Webhook.select(Webhook.id).where(Webhook.integration == row.id)
            WebhookDelivery.delete().where(WebhookDelivery.webhook.in_(hooks)).execute()
            Webhook.delete().where(Webhook.integration == row.id).execute()
            deleted = Integration.delete().where(Integration.id == row.id).execute()
            if not deleted:  # removed by someone else between get() and now
                raise IntegrationNotFound(f"integration {row.id} not found", id=str(row.id))
            events.record(events.DISCONNECTED, row, name=row.name, revoked=revoked)
    return Deleted(row, *counts, revoked=revoked)
