"""Connecting and refreshing: OAuth initiate/callback, WooCommerce keys, API keys, refresh.

Thin handlers over nexusctl.core.connect and nexusctl.core.refresh. The
callback is public (the provider sends the browser there) and answers with a
redirect, ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``:
to the caller's redirectUri once the state is validated, else (no state, an
unknown, used, expired, unreadable or another provider's one, a redirectUri no
longer allowed) to FRONTEND_URL with ``status=error&code=OAUTH_FAILED``. Only
an unknown provider in the path (400 INVALID_PROVIDER) or an unreachable state
store (503) gets an error body.
"""

from __future__ import annotations

import json
from typing import Annotated

from aiohttp import web
from pydantic import Field, with_config
from typing_extensions import Required, TypedDict

from nexusctl.core import connect, refresh
from nexusctl.core.runtime import Runtime
from nexusctl.core.serializers import integration_to_dict
from nexusctl.core.storable import check_storable
from nexusctl.daemon import responses as out
from nexusctl.daemon.answers import error_body, json_response
from nexusctl.daemon.fields import BODY, Id, Metadata, OneOf, ProviderName, Text
from nexusctl.daemon.keys import SERVICES
from nexusctl.daemon.openapi import provider_param
from nexusctl.daemon.routing import PRINCIPAL, Route, ok, owner_filter, read_body, read_raw
from nexusctl.enums import Provider
from nexusctl.errors import NexusError, UsageProblem
from nexusctl.providers.registry import SPECS
from nexusctl.providers.spec import ConnectKind

PROVIDERS = tuple(p.value for p in Provider)
OPTIONAL_SCOPES = tuple(sorted({s for spec in SPECS.values() for s in spec.optional_scopes}))
NO_LEAK_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

Organization = Annotated[Id, Field(description="the owner organization, kept on the integration (lists filter by it)")]
API_KEY_PROVIDERS = tuple(p for p, spec in SPECS.items() if spec.kind is ConnectKind.API_KEY)


@with_config(BODY)
class Initiate(TypedDict, total=False):
    userId: Required[Id]
    provider: Required[ProviderName()]
    redirectUri: Required[
        Text(max_length=2048, description="where to send the browser afterwards (allowed origins only)")
    ]
    metadata: Metadata(
        "kept on the integration; metadata.provider is the provider's facts, except TIKTOK's "
        "metadata.provider.tiktokApp: login_kit (posts, analytics, publishing) or business (a TikTok API for "
        "Business app: comments), default TIKTOK_APP"
    )
    shop: Text(max_length=255, description="SHOPIFY: the shop, e.g. demo.myshopify.com")
    storeUrl: Text(max_length=2048, description="WOOCOMMERCE: the store's URL")
    scopes: Annotated[
        list[OneOf(OPTIONAL_SCOPES)],
        Field(
            min_length=1,
            max_length=5,
            description="optional scopes to ask for as well: DISCORD webhook.incoming (the user picks a channel "
            "and publishing posts there through the channel webhook)",
        ),
    ]
    organizationId: Organization


@with_config(BODY)
class ApiKey(TypedDict, total=False):
    userId: Required[Id]
    provider: Required[ProviderName(only=API_KEY_PROVIDERS)]
    apiKey: Required[Text(max_length=512, min_length=1)]
    metadata: Metadata("kept on the integration")
    organizationId: Organization


@with_config(BODY)
class WooCommerceKeys(TypedDict, total=False):
    """Documents what WooCommerce sends; the route reads it leniently (extra fields are tolerated)."""

    key_id: int
    user_id: Required[Text(max_length=128)]
    consumer_key: Required[Text(max_length=256)]
    consumer_secret: Required[Text(max_length=256)]
    key_permissions: Text(max_length=32)


def _svc(request: web.Request) -> Runtime:

    return request.app[SERVICES]


async def initiate(request: web.Request) -> web.Response:
    body = await read_body(request, Initiate)
    request[PRINCIPAL].require_user(body["userId"])
    answer = await connect.initiate(
        _svc(request),
        user_id=body["userId"],
        provider=body["provider"],
        redirect_uri=body["redirectUri"],
        metadata=body.get("metadata"),
        shop=body.get("shop"),
        store_url=body.get("storeUrl"),
        scopes=body.get("scopes"),
        organization_id=body.get("organizationId"),
    )
    return ok(answer)


async def oauth_callback(request: web.Request) -> web.Response:
    try:
        provider = Provider.parse(request.match_info["provider"])
        location = await connect.callback(_svc(request), provider, request.query)
    except NexusError as exc:  # an unknown provider, the state store away: not a browser journey we know
        return json_response(error_body(exc.code, exc.message), status=exc.http_status, headers=NO_LEAK_HEADERS)
    raise web.HTTPFound(location, headers=NO_LEAK_HEADERS)


async def woocommerce_keys(request: web.Request) -> web.Response:
    if Provider.parse(request.match_info["provider"]) is not Provider.WOOCOMMERCE:
        raise UsageProblem("only WOOCOMMERCE delivers keys to this URL", field="provider")
    # Lenient on purpose: the store may add fields; receive_keys checks the ones we use.
    try:
        value = json.loads(await read_raw(request))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UsageProblem("the body is not valid JSON") from None
    check_storable(value, "body")
    await connect.receive_keys(_svc(request), value)
    return ok({"received": True})


async def connect_api_key(request: web.Request) -> web.Response:
    body = await read_body(request, ApiKey)
    request[PRINCIPAL].require_user(body["userId"])
    row = await connect.connect_api_key(
        _svc(request),
        user_id=body["userId"],
        provider=body["provider"],
        api_key=body["apiKey"],
        metadata=body.get("metadata"),
        organization_id=body.get("organizationId"),
    )
    return ok(integration_to_dict(row), status=201)


async def refresh_tokens(request: web.Request) -> web.Response:
    outcome = await refresh.refresh_now(_svc(request), request.match_info["id"], owner_id=owner_filter(request))
    return ok({**integration_to_dict(outcome.row), "refresh": outcome.to_dict()})


ROUTES = [
    Route(
        "POST",
        "/integrations/oauth/initiate",
        initiate,
        "Start connecting a provider account",
        "oauth",
        body=Initiate,
        data=out.Initiated,
        errors=(
            "VALIDATION_ERROR",
            "INVALID_PROVIDER",
            "PROVIDER_NOT_CONFIGURED",
            "FORBIDDEN",
            "PAYLOAD_TOO_LARGE",
            "DATABASE_UNAVAILABLE",
            "REDIS_UNAVAILABLE",
        ),
    ),
    Route(
        "GET",
        "/integrations/oauth/callback/{provider}",
        oauth_callback,
        "Where the provider sends the browser back; redirects to the caller's redirectUri",
        "oauth",
        public=True,
        status=302,
        envelope=False,
        errors=("INVALID_PROVIDER", "DATABASE_UNAVAILABLE"),
    ),
    Route(
        "POST",
        "/integrations/oauth/callback/{provider}/keys",
        woocommerce_keys,
        "WooCommerce delivers the granted REST keys here (server to server)",
        "oauth",
        public=True,
        body=WooCommerceKeys,
        path_params={"provider": provider_param(Provider.WOOCOMMERCE)},
        data=out.Received,
        errors=("VALIDATION_ERROR", "OAUTH_FAILED", "INVALID_PROVIDER", "PAYLOAD_TOO_LARGE"),
    ),
    Route(
        "POST",
        "/integrations/api-key",
        connect_api_key,
        "Connect a provider that uses API keys (SendGrid)",
        "oauth",
        body=ApiKey,
        data=out.Integration,
        status=201,
        errors=(
            "VALIDATION_ERROR",
            "INVALID_PROVIDER",
            "FORBIDDEN",
            "PROVIDER_ERROR",
            "RATE_LIMITED",
            "PAYLOAD_TOO_LARGE",
        ),
    ),
    Route(
        "POST",
        "/integrations/{id}/refresh",
        refresh_tokens,
        "Refresh the access token now (refresh.refreshed false: the provider renews it only later)",
        "oauth",
        data=out.Refreshed,
        errors=(
            "VALIDATION_ERROR",
            "INTEGRATION_NOT_FOUND",
            "REFRESH_FAILED",
            "PROVIDER_ERROR",
            "RATE_LIMITED",
            "ENCRYPTION_KEY_MISSING",
        ),
    ),
]
