"""``/integrations/{id}/proxy/{path}``: a provider API call made for the caller (nexusctl.core.proxy).

The request body is read up to 10 MiB (PAYLOAD_TOO_LARGE beyond, without
reading further); the provider's answer is streamed back chunk by chunk, its
status and headers as the provider sent them (less cookies and hop-by-hop
headers). Who may: the integration's owner, or a token with the ``service``
role (another platform service); anyone else, an ``admin`` token too (reading
every user's rows is not acting as them at their provider), gets
INTEGRATION_NOT_FOUND, as for every other route of one integration. ``/metrics`` counts the proxied
provider calls by provider, method and status (``nexus_proxy_calls_total``,
``nexus_proxy_call_seconds``); no path or query is ever a label. A streamed answer that breaks off (the
provider's side) or whose caller goes away is cut short (``observe.Streamed``): the connection is closed, and
the request line and metrics keep the status sent, with the cause.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Annotated, Any

import aiohttp
from aiohttp import web
from pydantic import Field

from nexusctl.core import proxy
from nexusctl.core.ids import parse_uuid
from nexusctl.daemon.keys import SERVICES, SETTINGS, VERIFIER
from nexusctl.daemon.observe import METRICS, STREAMED, Streamed
from nexusctl.daemon.routing import PRINCIPAL, Route
from nexusctl.errors import IntegrationNotFound, PayloadTooLarge, ProviderError, UsageProblem

log = logging.getLogger(__name__)

RETRIES_PARAM, RETRIES_HEADER = "retries", "X-Nexus-Retries"
WHOLE_BYTES = 64 * 1024  # answers the provider sized at most this go back in one write; longer ones are streamed


def _owner(request: web.Request):
    principal = request[PRINCIPAL]
    if "service" in principal.roles:
        return None
    if principal.user_id is None:
        # An admin token naming itself (sub=ops-console): not the owner, so INTEGRATION_NOT_FOUND as for an admin
        # whose sub is a user id, and as every route of one integration answers a caller it does not serve.
        key = parse_uuid(request.match_info["id"], "integrationId")  # a malformed id stays a 400
        raise IntegrationNotFound(f"integration {key} not found", id=str(key))
    return principal.user_id


def _split(request: web.Request) -> tuple[str, str, int]:
    """(the provider path as sent, the query less our own parameter, retries)."""
    if "#" in request.raw_path:  # the target as sent: a fragment there would otherwise be dropped, not refused
        raise UsageProblem("the provider path contains #: give a path under the provider's API base", field="path")
    raw = request.rel_url.raw_path
    parts = raw.split("/", 4)  # "", "integrations", id, "proxy", rest
    path = "/" + (parts[4] if len(parts) > 4 else "")
    kept, retries = [], request.headers.get(RETRIES_HEADER)
    for pair in filter(None, request.rel_url.raw_query_string.split("&")):
        if pair.split("=", 1)[0] == RETRIES_PARAM:
            retries = pair.split("=", 1)[1] if "=" in pair else ""
        else:
            kept.append(pair)
    if retries in (None, ""):
        return path, "&".join(kept), 0
    # ASCII digits only: str.isdigit() also takes '²' (which int() then refuses: a 500) and '١' (which int() reads)
    if not (retries.isascii() and retries.isdigit()):
        raise UsageProblem(f"retries must be a whole number from 0 to {proxy.MAX_RETRIES}", field="retries")
    return path, "&".join(kept), int(retries)


# The caller's Connection as the front relays it: nginx never passes a caller's own on (to the daemon, the grant
# or the provider) and does not drop the headers it names, which the proxy route does (providers.proxy).
FRONT_CONNECTION_HEADER = "X-Nexus-Connection"


def _caller_headers(request: web.Request) -> dict:
    """The caller's headers, its Connection whole: every line of it, and what the front relays. A token there can
    only keep a header from the provider (or send a call the daemon's own way), never let one through."""
    named = [*request.headers.getall("Connection", ()), *request.headers.getall(FRONT_CONNECTION_HEADER, ())]
    headers = {k: v for k, v in request.headers.items() if k.lower() != "connection"}
    if named:
        headers["Connection"] = ", ".join(named)
    return headers


async def _body(request: web.Request) -> bytes | None:
    if request.content_length is not None and request.content_length > proxy.MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is over {proxy.MAX_BODY_BYTES // (1024 * 1024)} MiB")
    if not request.body_exists:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > proxy.MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the request body is over {proxy.MAX_BODY_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


async def forward(request: web.Request) -> web.StreamResponse:

    path, query, retries = _split(request)
    call = proxy.ProxyRequest(request.method, path, query, _caller_headers(request), None, retries)
    # Once, here: a bad path is a 400 before the body is read or the integration looked up; proxy.call takes the
    # request as checked (its path a CheckedPath, which providers.proxy.join does not check again).
    proxy.check_request(call)
    call.body = await _body(request)
    observe = request.app[METRICS].proxy_call

    async with proxy.call(
        request.app[SERVICES], request.match_info["id"], call, owner_id=_owner(request), observe=observe
    ) as answer:
        try:
            whole = await answer.whole(WHOLE_BYTES)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            raise ProviderError(
                f"{answer.provider}: the answer broke off before it was read", provider=answer.provider
            ) from None
        if whole is not None:  # a small answer goes back in one write (headers and body together)
            small = web.Response(status=answer.status, headers=answer.headers, body=whole)
            small.headers["X-Nexus-Provider"] = answer.provider
            small.headers["Cache-Control"] = "no-store"
            return small
        response = Streamed(status=answer.status, headers=answer.headers)
        response.headers["X-Nexus-Provider"] = answer.provider
        response.headers["Cache-Control"] = "no-store"
        request[STREAMED] = response  # from here on, a failure cuts this answer short: no second answer
        await response.prepare(request)
        chunks = aiter(answer.chunks())
        while True:
            # The status went out already: a body that ends early is cut short (the connection closed), so the
            # caller sees it truncated, and the request's record keeps the status with the cause (daemon.observe).
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.warning(
                    "proxy %s %s: the provider's answer broke off (%s)",
                    answer.provider,
                    request.method,
                    type(exc).__name__,
                )
                response.cut_short(request, "provider")
                return response
            try:
                await response.write(chunk)
            except ConnectionError:  # aiohttp's ClientConnectionResetError too: the caller hung up
                log.info("proxy %s %s: the caller went away before the answer's end", answer.provider, request.method)
                response.cut_short(request, "caller")
                return response
        await response.write_eof()
        return response


# (?s:.*): a tail holding a decoded %0A still matches, to be refused with a 400 (not left unrouted, a 404)
PATH = "/integrations/{id}/proxy/{path:(?s:.*)}"
SUMMARY = (
    "Call the integration's provider API with its credentials added: {method} {path} under the provider's "
    "API base (see README, Provider API proxy); the provider's answer streamed back as it came"
)
ERRORS = (
    "VALIDATION_ERROR",
    "INTEGRATION_NOT_FOUND",
    "INTEGRATION_INACTIVE",
    "PAYLOAD_TOO_LARGE",
    "RATE_LIMITED",
    "PROVIDER_ERROR",
    "PROVIDER_NOT_CONFIGURED",
    "ENCRYPTION_KEY_MISSING",
    "FORBIDDEN",
)

# --- the grant a C front asks for (README: Provider API proxy, An optional C front) ------------------------------
FRONT_SECRET_HEADER = "X-Nexus-Front-Secret"  # the front's own credential (PROXY_FRONT_SECRET)
FRONT_METHOD_HEADER = "X-Nexus-Method"  # the caller's method (nginx's auth_request subrequest is always a GET)
TARGET_HEADER = "X-Nexus-Target"  # the exact URL the front sends the call to
CREDENTIAL_PREFIX = "X-Nexus-Credential-"  # + one of core.proxy.FRONT_CREDENTIALS: the provider's credentials
FALLBACK_HEADER = "X-Nexus-Front-Fallback"  # why the call must take the daemon's own proxy route


async def grant(request: web.Request) -> web.StreamResponse:
    """204 with the target URL and the credential headers, for the front to send the call itself; 409 (with
    the reason) when the call must go the daemon's own way; the error the proxy route would give otherwise.
    Only the front, holding PROXY_FRONT_SECRET, may ask: to anyone else (and without the setting) the route
    does not exist."""
    secret = request.app[SETTINGS].proxy_front_secret
    given = request.headers.get(FRONT_SECRET_HEADER, "").encode()
    if secret is None or not hmac.compare_digest(given, secret.get().encode()):
        raise web.HTTPNotFound()
    request[PRINCIPAL] = request.app[VERIFIER].verify_headers(request.headers)
    path, query, retries = _split(request)
    method = request.headers.get(FRONT_METHOD_HEADER, "GET").upper()
    call = proxy.ProxyRequest(method, path, query, _caller_headers(request), None, retries)
    granted = await proxy.grant(request.app[SERVICES], request.match_info["id"], call, owner_id=_owner(request))
    if isinstance(granted, str):
        return web.Response(status=409, headers={FALLBACK_HEADER: granted, "Cache-Control": "no-store"})
    url = granted.url
    headers = {
        TARGET_HEADER: str(url),
        "X-Nexus-Host": url.raw_host if url.is_default_port() else f"{url.raw_host}:{url.port}",
        "X-Nexus-Server-Name": url.raw_host,  # TLS SNI
        "X-Nexus-Provider": granted.provider,
        "Cache-Control": "no-store",
        **{CREDENTIAL_PREFIX + name: value for name, value in granted.headers.items()},
    }
    return web.Response(status=204, headers=headers)


GRANT_PATH = "/integrations/{id}/proxy-grant/{path:(?s:.*)}"
FRONT_ROUTES = [
    Route(
        "GET",
        GRANT_PATH,
        grant,
        "For the proxy's C front only (PROXY_FRONT_SECRET): what `GET /integrations/:id/proxy/*path` would "
        "send, as headers (204), or 409 when that call must go the daemon's own way",
        "proxy",
        public=True,  # the front's secret first, then the caller's bearer token (verified by the handler)
        envelope=False,
        errors=ERRORS,
        status=204,
        path_params={"path": str},
    )
]
"""Registered only when PROXY_FRONT_SECRET is set (daemon.app)."""

ANSWER = Annotated[Any, Field(description="the provider's own answer (its status, its body)")]

ROUTES = [
    Route(
        method,
        PATH,
        forward,
        SUMMARY.format(method=method, path="{path}"),
        "proxy",
        envelope=False,
        content_type="*/*",
        data=ANSWER,
        errors=ERRORS,
        passthrough=True,
        path_params={"path": str},
    )
    for method in proxy.METHODS
]
