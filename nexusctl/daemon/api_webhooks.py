"""Webhook routes and event emission: thin handlers over nexusctl.core.

A webhook belongs to its integration's user: anyone else gets
WEBHOOK_NOT_FOUND (no existence leak); admin and service roles reach all.
URLs are checked against the SSRF rules (and resolved) on create and update,
after the caller's ownership is (so nobody probes addresses with another user's
ids), and again by the worker at connect time.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, with_config
from typing_extensions import Required, TypedDict

from nexusctl.core import deliveries, events, integrations, webhooks
from nexusctl.core.serializers import delivery_to_dict, webhook_to_dict
from nexusctl.daemon import emits
from nexusctl.daemon import responses as out
from nexusctl.daemon.fields import BODY, QUERY, AtLeastOne, Id, Matching, Metadata, OneOf, PagingQuery, Text
from nexusctl.daemon.keys import DB, SERVICES, SETTINGS, WORKER
from nexusctl.daemon.routing import Route, ok, owner_filter, read_body, read_query, run_db
from nexusctl.enums import DeliveryStatus
from nexusctl.errors import UsageProblem

EventFilter = Matching(webhooks.EVENT_PATTERN, "an event name like media.created, media.* or *", max_length=128)
Events = Annotated[
    list[EventFilter],
    Field(
        min_length=1,
        max_length=webhooks.MAX_EVENTS,
        description="event names: exact (media.created), family (media.*) or all (*)",
    ),
]
EventType = Matching(events.EVENT_TYPE_PATTERN, events.EMITTABLE, max_length=events.EVENT_TYPE_MAX)
Url = Text(max_length=2048)


@with_config(QUERY)
class WebhooksQuery(PagingQuery, total=False):
    integrationId: Id


@with_config(QUERY)
class DeliveriesQuery(PagingQuery, total=False):
    status: OneOf(s.value for s in DeliveryStatus)


@with_config(BODY)
class Create(TypedDict, total=False):
    integrationId: Required[Id]
    url: Required[Url]
    events: Required[Events]
    metadata: Metadata()
    isActive: bool


@with_config(BODY)
class Update(TypedDict, total=False):
    url: Url
    events: Events
    metadata: Metadata()
    isActive: bool


@with_config(BODY)
class Emit(TypedDict, total=False):
    type: Required[EventType]
    data: dict[str, Any]


CREATE, UPDATE, EMIT = Create, AtLeastOne(Update), Emit


def _keyring(request):

    return request.app[SERVICES].keyring


def _settings(request):

    return request.app[SETTINGS]


def _events_list(value):
    if value is not None and not isinstance(value, list):
        raise UsageProblem("events must be a list of event names", field="events")
    return value


async def create(request: web.Request) -> web.Response:
    body = await read_body(request, CREATE)
    # Ownership before the URL check: someone else's integration id is a 404, never a way to probe addresses.
    await run_db(request, integrations.get, body["integrationId"], owner_id=owner_filter(request))
    url = await webhooks.check_url_resolving(_settings(request), body["url"])
    row, secret = await run_db(
        request,
        webhooks.create,
        _keyring(request),
        integration_id=body["integrationId"],
        url=url,
        events=_events_list(body["events"]),
        metadata=body.get("metadata"),
        is_active=body.get("isActive", True),
        owner_id=owner_filter(request),
        limit=_settings(request).webhooks_per_integration_max,
    )
    return ok(webhook_to_dict(row, secret), status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    q = read_query(request)
    page = await run_db(
        request,
        webhooks.list_view,
        integration_id=q.get("integrationId"),
        owner_id=owner_filter(request),
        limit=q.get("limit"),
        cursor=q.get("cursor"),
    )
    return ok(page.items, page=page)


async def show(request: web.Request) -> web.Response:
    row = await run_db(request, webhooks.get, request.match_info["webhookId"], owner_id=owner_filter(request))
    return ok(webhook_to_dict(row))


async def update(request: web.Request) -> web.Response:
    body = await read_body(request, UPDATE)
    await run_db(request, webhooks.get, request.match_info["webhookId"], owner_id=owner_filter(request))  # see create
    url = await webhooks.check_url_resolving(_settings(request), body["url"]) if "url" in body else None
    row = await run_db(
        request,
        webhooks.update,
        request.match_info["webhookId"],
        url=url,
        events=_events_list(body.get("events")),
        is_active=body.get("isActive"),
        metadata=body.get("metadata"),
        owner_id=owner_filter(request),
    )
    return ok(webhook_to_dict(row))


async def delete(request: web.Request) -> web.Response:
    return ok(await run_db(request, webhooks.delete, request.match_info["webhookId"], owner_id=owner_filter(request)))


async def list_deliveries(request: web.Request) -> web.Response:
    q = read_query(request)
    page, data = await run_db(
        request,
        deliveries.page_with_attempts,
        request.match_info["webhookId"],
        status=q.get("status"),
        limit=q.get("limit"),
        cursor=q.get("cursor"),
        owner_id=owner_filter(request),
    )
    return ok(data, page=page)


async def show_delivery(request: web.Request) -> web.Response:
    return ok(
        await run_db(
            request, deliveries.get_with_attempts, request.match_info["deliveryId"], owner_id=owner_filter(request)
        )
    )


async def send_test(request: web.Request) -> web.Response:
    hook, _delivery = await run_db(
        request, webhooks.send_test, request.match_info["webhookId"], owner_id=owner_filter(request)
    )
    return ok({"webhookId": str(hook.id), "queued": True, "event": "webhook.test"}, status=202)


async def rotate_secret(request: web.Request) -> web.Response:
    row, secret = await run_db(
        request,
        webhooks.rotate_secret,
        _keyring(request),
        request.match_info["webhookId"],
        owner_id=owner_filter(request),
    )
    return ok(webhook_to_dict(row, secret))


async def redeliver(request: web.Request) -> web.Response:
    row = await run_db(request, deliveries.redeliver, request.match_info["deliveryId"], owner_id=owner_filter(request))
    return ok(delivery_to_dict(row), status=202)


async def emit(request: web.Request) -> web.Response:

    body = await read_body(request, EMIT)
    # Concurrent emits share one transaction and commit (daemon.emits); answered once this one is durable.
    # What this daemon's worker has room for is leased to it in the same INSERT and sent without a claim.
    result = await emits.batcher(request.app[DB], request.app.get(WORKER)).emit(
        request.match_info["id"], body["type"], body.get("data", {}), owner_filter(request)
    )
    return ok(result, status=202)


_HOOK = ("WEBHOOK_NOT_FOUND", "VALIDATION_ERROR")
ROUTES = [
    Route(
        "POST",
        "/integrations/webhooks",
        create,
        "Create a webhook (the answer shows its secret, once)",
        "webhooks",
        body=CREATE,
        data=out.WebhookWithSecret,
        status=201,
        errors=("VALIDATION_ERROR", "INTEGRATION_NOT_FOUND", "PAYLOAD_TOO_LARGE"),
    ),
    Route(
        "GET",
        "/integrations/webhooks",
        list_webhooks,
        "Webhooks, newest first",
        "webhooks",
        query=WebhooksQuery,
        paged=True,
        data=list[out.WebhookListed],
        errors=("VALIDATION_ERROR", "INTEGRATION_NOT_FOUND"),
    ),
    Route(
        "GET",
        "/integrations/webhooks/{webhookId}",
        show,
        "One webhook (never its secret)",
        "webhooks",
        data=out.Webhook,
        errors=_HOOK,
    ),
    Route(
        "PATCH",
        "/integrations/webhooks/{webhookId}",
        update,
        "Change url, events, metadata or isActive",
        "webhooks",
        body=UPDATE,
        data=out.Webhook,
        errors=_HOOK + ("PAYLOAD_TOO_LARGE",),
    ),
    Route(
        "DELETE",
        "/integrations/webhooks/{webhookId}",
        delete,
        "Delete a webhook and its deliveries",
        "webhooks",
        data=out.WebhookDeleted,
        errors=_HOOK,
    ),
    Route(
        "GET",
        "/integrations/webhooks/{webhookId}/deliveries",
        list_deliveries,
        "Delivery history with every attempt, newest first; a page holds at most 1 MiB of deliveries (then "
        "ends early with nextCursor), and a payload over 512 KiB is null with payloadOmitted",
        "webhooks",
        query=DeliveriesQuery,
        paged=True,
        data=list[out.DeliveryListed],
        errors=_HOOK,
    ),
    Route(
        "GET",
        "/integrations/webhooks/deliveries/{deliveryId}",
        show_delivery,
        "One delivery with its whole payload and every attempt",
        "webhooks",
        data=out.Delivery,
        errors=("DELIVERY_NOT_FOUND", "VALIDATION_ERROR"),
    ),
    Route(
        "POST",
        "/integrations/webhooks/{webhookId}/test",
        send_test,
        "Send a webhook.test event",
        "webhooks",
        data=out.WebhookTestQueued,
        status=202,
        errors=_HOOK + ("WEBHOOK_INACTIVE",),
    ),
    Route(
        "POST",
        "/integrations/webhooks/{webhookId}/rotate-secret",
        rotate_secret,
        "New secret (shown once); the one it replaces also signs for 24 h, until a further rotation ends it",
        "webhooks",
        data=out.WebhookWithSecret,
        errors=_HOOK,
    ),
    Route(
        "POST",
        "/integrations/webhooks/deliveries/{deliveryId}/redeliver",
        redeliver,
        "Send a delivery again now (same webhook-id)",
        "webhooks",
        data=out.Delivery,
        status=202,
        errors=("DELIVERY_NOT_FOUND", "VALIDATION_ERROR", "WEBHOOK_INACTIVE", "DELIVERY_IN_FLIGHT"),
    ),
    Route(
        "POST",
        "/integrations/{id}/events",
        emit,
        "Emit an event to the integration's webhooks",
        "webhooks",
        body=EMIT,
        data=out.Emitted,
        status=202,
        errors=("VALIDATION_ERROR", "INTEGRATION_NOT_FOUND", "INTEGRATION_INACTIVE", "PAYLOAD_TOO_LARGE"),
    ),
]
