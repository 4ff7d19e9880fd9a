"""Integration management routes: thin handlers over nexusctl.core."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, with_config
from typing_extensions import TypedDict

from nexusctl.core import connect, integrations, sync_logs
from nexusctl.core.ids import parse_uuid
from nexusctl.core.serializers import integration_to_dict
from nexusctl.daemon import responses as out
from nexusctl.daemon.auth import Principal
from nexusctl.daemon.fields import (
    BODY,
    QUERY,
    AtLeastOne,
    Id,
    Metadata,
    OneOf,
    PagingQuery,
    ProviderName,
    QueryBool,
    Text,
)
from nexusctl.daemon.keys import SERVICES, SETTINGS
from nexusctl.daemon.routing import PRINCIPAL, Route, ok, owner_filter, read_body, read_query, run_db
from nexusctl.enums import Provider, SyncStatus
from nexusctl.providers.catalog import CATALOG
from nexusctl.providers.registry import SPECS

PROVIDERS = tuple(p.value for p in Provider)


@with_config(QUERY)
class IntegrationsQuery(PagingQuery, total=False):
    provider: ProviderName()
    isActive: QueryBool
    organizationId: Annotated[Id, Field(description="only this organization's")]


@with_config(QUERY)
class SyncLogsQuery(PagingQuery, total=False):
    status: OneOf(s.value for s in SyncStatus)


@with_config(BODY)
class Update(TypedDict, total=False):
    name: Text(max_length=255, min_length=1)
    isActive: bool
    metadata: Metadata("replaces the metadata")


UPDATE = AtLeastOne(Update)


def _caller(request: web.Request) -> Principal:
    return request[PRINCIPAL]


async def list_for_user(request: web.Request) -> web.Response:
    user_id = parse_uuid(request.match_info["userId"], "userId")
    _caller(request).require_user(user_id)
    q = read_query(request)
    page = await run_db(
        request,
        integrations.list_view,
        user_id=user_id,
        provider=q.get("provider"),
        is_active=q.get("isActive"),
        limit=q.get("limit"),
        cursor=q.get("cursor"),
        organization_id=q.get("organizationId"),
    )
    return ok(page.items, page=page)


async def show(request: web.Request) -> web.Response:
    row = await run_db(request, integrations.get, request.match_info["id"], owner_id=owner_filter(request))
    return ok(integration_to_dict(row))


async def update(request: web.Request) -> web.Response:
    body = await read_body(request, UPDATE)
    row = await run_db(
        request,
        integrations.update,
        request.match_info["id"],
        name=body.get("name"),
        is_active=body.get("isActive"),
        metadata=body.get("metadata"),
        owner_id=owner_filter(request),
    )
    return ok(integration_to_dict(row))


async def delete(request: web.Request) -> web.Response:

    # Revokes at the provider first (a failed revoke is logged, not fatal).
    result = await connect.disconnect(request.app[SERVICES], request.match_info["id"], owner_id=owner_filter(request))
    return ok(result.to_dict())


async def list_sync_logs(request: web.Request) -> web.Response:
    q = read_query(request)
    page = await run_db(
        request,
        sync_logs.list_view,
        request.match_info["id"],
        status=q.get("status"),
        limit=q.get("limit"),
        cursor=q.get("cursor"),
        owner_id=owner_filter(request),
    )
    return ok(page.items, page=page)


async def providers(request: web.Request) -> web.Response:
    creds = request.app[SETTINGS].providers
    # SendGrid (API keys) and WooCommerce (store-granted keys) need no app credentials; TikTok connects with
    # either kind of app whose client is set.
    return ok([info.to_dict(creds[p].any_configured or not SPECS[p].needs_credentials) for p, info in CATALOG.items()])


_ID = ("INTEGRATION_NOT_FOUND", "VALIDATION_ERROR")

ROUTES = [
    Route(
        "GET",
        "/integrations/providers",
        providers,
        "The 20 providers, their capabilities, configured or not",
        "providers",
        data=list[out.ProviderInfo],
    ),
    Route(
        "GET",
        "/integrations/user/{userId}",
        list_for_user,
        "A user's integrations, newest first",
        "integrations",
        query=IntegrationsQuery,
        paged=True,
        data=list[out.IntegrationListed],
        errors=("VALIDATION_ERROR", "INVALID_PROVIDER", "FORBIDDEN"),
    ),
    Route(
        "GET",
        "/integrations/{id}",
        show,
        "One integration (never its tokens)",
        "integrations",
        data=out.Integration,
        errors=_ID,
    ),
    Route(
        "PATCH",
        "/integrations/{id}",
        update,
        "Rename, (de)activate, or replace metadata",
        "integrations",
        body=UPDATE,
        data=out.Integration,
        errors=_ID + ("PAYLOAD_TOO_LARGE",),
    ),
    Route(
        "DELETE",
        "/integrations/{id}",
        delete,
        "Delete with its webhooks, deliveries and sync logs",
        "integrations",
        data=out.Deleted,
        errors=_ID,
    ),
    Route(
        "GET",
        "/integrations/{id}/sync-logs",
        list_sync_logs,
        "Sync history, newest first",
        "sync",
        query=SyncLogsQuery,
        paged=True,
        data=list[out.SyncLogListed],
        errors=_ID,
    ),
]
