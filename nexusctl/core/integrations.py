"""Integration management: list, show, update, delete."""

from __future__ import annotations

import collections
import functools
import json
from dataclasses import dataclass

from nexusctl.core import events, schedules
from nexusctl.core.ids import parse_uuid
from nexusctl.core.metadata import check_metadata
from nexusctl.core.paging import (
    FIELD_BYTES,
    PAGE_BYTES,
    Bulky,
    Page,
    bounded_page,
    check_limit,
    decode_cursor,
    encode_cursor,
    newest_first,
)
from nexusctl.core.serializers import integration_to_dict
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

    The hot path (the read route) runs one statement, written once per shape of filters and reused,
    reading only the shown columns as tuples (no model objects); a page that would pass the byte budget
    goes the general way of bounded_page, which trims it."""
    limit = check_limit(limit)
    filters = {
        "user_id": user_id and parse_uuid(user_id, "userId"),
        "organization_id": organization_id and parse_uuid(organization_id, "organizationId"),
        "provider": Provider.parse(provider) if provider is not None else None,
        "is_active": is_active,
    }
    filters = {name: value for name, value in filters.items() if value is not None}
    after = decode_cursor(cursor) if cursor else None
    postgres = is_postgres(database_proxy)
    sql = _list_sql(postgres, tuple(filters), after is not None)
    params = [getattr(Integration, name).db_value(value) for name, value in filters.items()]
    if after is not None:
        params += [Integration.created_at.db_value(after[0]), Integration.id.db_value(after[1])]
    rows = database_proxy.execute_sql(sql, [*params, limit + 1]).fetchall()
    more = len(rows) > limit
    items, last = [], None
    for values in rows[:limit]:
        last = _Listed(*(convert(v) for convert, v in zip(_LIST_CONVERTERS, values[:-1])))
        data = integration_to_dict(last)
        if values[-1] is not None and values[-1] > FIELD_BYTES:  # left out of lists, as bounded_page does
            data["metadata"], data["metadataOmitted"] = None, True
        items.append(data)
    if len(json.dumps(items, default=str)) + len(items) > PAGE_BYTES:  # rare: let the general path trim it
        return bounded_page(
            _query(user_id, provider, is_active, organization_id),
            Integration,
            limit,
            cursor,
            bulky=Bulky(Integration.metadata, "metadata"),
            columns=public_fields(Integration),
            serialize=lambda rows: [integration_to_dict(r) for r in rows],
        )
    return Page(items, encode_cursor(last) if more and last is not None else None, limit)


# What a listed integration shows (serializers.integration_to_dict), in this order.
_LIST_FIELDS = (
    "id",
    "user_id",
    "organization_id",
    "provider",
    "name",
    "is_active",
    "token_type",
    "expires_at",
    "scope",
    "metadata",
    "last_sync_at",
    "last_error",
    "refresh_failures",
    "refresh_retry_at",
    "created_at",
    "updated_at",
)
_Listed = collections.namedtuple("_Listed", _LIST_FIELDS)
_LIST_CONVERTERS = tuple(getattr(Integration, name).python_value for name in _LIST_FIELDS)


@functools.lru_cache(maxsize=64)
def _list_sql(postgres: bool, filters: tuple[str, ...], after: bool) -> str:
    """The list statement for one shape of filters, written once (peewee built it on every request)."""
    mark = "%s" if postgres else "?"
    size = 'octet_length(CAST("metadata" AS text))' if postgres else 'length(CAST("metadata" AS blob))'
    columns = [
        f'CASE WHEN {size} <= {FIELD_BYTES} THEN "metadata" END' if name == "metadata" else f'"{name}"'
        for name in _LIST_FIELDS
    ]
    where = [f'"{name}" = {mark}' for name in filters]
    if after:
        where.append(f'("created_at", "id") < ({mark}, {mark})')
    return (
        f'SELECT {", ".join(columns)}, {size} FROM "integrations"'
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f' ORDER BY "created_at" DESC, "id" DESC LIMIT {mark}'
    )


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
