"""The daemon's one error boundary: every failure becomes the spec's envelope.

``{"success": false, "error": {"code", "message"}}`` with the error's HTTP
status. Unexpected exceptions are logged with their traceback and answered
with a bare INTERNAL_ERROR: no exception text reaches the client.
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import web

from nexusctl.core import proxy_cache
from nexusctl.daemon.answers import error_body, json_response
from nexusctl.daemon.keys import VERIFIER
from nexusctl.daemon.observe import streamed
from nexusctl.daemon.routing import PRINCIPAL, route_of
from nexusctl.errors import Forbidden, NexusError, RequestTimeout

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "VALIDATION_ERROR", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


def _changes_an_integration(request: web.Request) -> str | None:
    """The id of the integration a request may change (a route of ``/integrations/{id}...`` other than a read, a
    proxied provider call or an emitted event: Route.changes_integration), whose cached tokens
    (core.proxy_cache) this process must stop using at once."""
    route = route_of(request)
    if route is None or not route.changes_integration:
        return None
    if request.get(PRINCIPAL) is None:  # not let in: it changed nothing (and strangers cannot churn the cache)
        return None
    try:
        return str(uuid.UUID(request.match_info["id"]))  # the cache's own spelling of the id
    except ValueError:
        return None


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except NexusError as exc:
        if (sent := streamed(request)) is not None:  # its status went out: no second answer, only cutting it short
            log.warning("%s %s cut short: %s", request.method, request.rel_url.path, exc.message)
            sent.cut_short(request, "error")
            return sent
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        response = json_response(error_body(exc.code, exc.message), status=exc.http_status, headers=headers)
        if isinstance(exc, RequestTimeout):
            response.force_close()  # the rest of the body may still trickle in: the connection cannot be reused
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "HTTP_ERROR")
        return json_response(error_body(code, exc.reason), status=exc.status, headers=_allow(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.rel_url.path)
        if (sent := streamed(request)) is not None:  # its status went out: no second answer, only cutting it short
            sent.cut_short(request, "error")
            return sent
        return json_response(error_body("INTERNAL_ERROR", "internal error"), status=500)
    finally:
        if (changed := _changes_an_integration(request)) is not None:
            proxy_cache.forget(changed)


def _allow(exc: web.HTTPException) -> dict:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


@web.middleware
async def auth_middleware(request: web.Request, handler):
    """Every route not marked public needs a valid bearer token, and one of its roles if it names any."""

    route = route_of(request)
    if route is not None and not route.public:
        principal = request.app[VERIFIER].verify_headers(request.headers)
        if route.roles and not principal.roles & set(route.roles):
            raise Forbidden(f"only a token with the role {' or '.join(route.roles)} may call this")
        request[PRINCIPAL] = principal
    return await handler(request)
