"""The route table: each route says what it accepts, returns and requires.

The same table registers the handlers, drives the auth middleware (public
or not) and feeds the OpenAPI document, so a route cannot exist without
being described.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from nexusctl.core.paging import Page
from nexusctl.core.storable import check_storable
from nexusctl.daemon.answers import json_response
from nexusctl.daemon.fields import usage_problem
from nexusctl.daemon.keys import DB
from nexusctl.errors import RequestTimeout, UsageProblem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL = web.RequestKey("principal", object)  # the verified caller (daemon.auth.Principal)
BODY_TIMEOUT = web.AppKey("body_timeout", float)  # HTTP_BODY_TIMEOUT, set by daemon.app


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    public: bool = False
    roles: tuple[str, ...] = ()  # non-empty: only tokens with one of these roles (else 403 FORBIDDEN)
    body: Any = None  # the request body's model (a TypedDict of nexusctl.daemon.fields' types)
    body_required: bool = True  # False: the body may be left out entirely (POST .../sync)
    path_params: dict | None = None  # types of path parameters that differ from the default (a UUID)
    query: Any = None  # the query string's model
    data: Any = None  # the envelope's data: a model of nexusctl.daemon.responses (or a list of one)
    errors: tuple[str, ...] = ()
    paged: bool = False
    status: int = 200
    envelope: bool = True  # False: the body is returned as is (the OpenAPI document)
    content_type: str = "application/json"
    body_type: str = "application/json"  # what the body is sent as (Slack posts forms)
    passthrough: bool = False  # True: answers with another server's status and body too (the API proxy)

    @functools.cached_property
    def changes_integration(self) -> bool:
        """Whether a call may change the integration its path names (so this process forgets its cached tokens:
        daemon.middleware): any method but a read on ``/integrations/{id}...``, except a proxied provider call
        and an emitted event (the busiest POST), which change nothing of it. Worked out once per route, not per
        request from the raw path."""
        return (
            self.method not in ("GET", "HEAD", "OPTIONS")
            and self.path.startswith("/integrations/{id}")
            and "/proxy/" not in self.path
            and not self.path.endswith("/events")
        )


def add_routes(app: web.Application, routes: list[Route]) -> None:
    for route in routes:
        route.handler.route = route  # read by the auth middleware
        app.router.add_route(route.method, route.path, route.handler)
        for model in (route.body, route.query):  # built at start-up, not by the first request that needs one
            if model is not None:
                adapter(model)


def route_of(request: web.Request) -> Route | None:
    return getattr(request.match_info.handler, "route", None)


def owner_filter(request: web.Request):
    """None for elevated callers (every user's rows), else the caller's user id."""
    principal = request[PRINCIPAL]
    return None if principal.elevated else principal.user_id


async def run_db(request: web.Request, fn, *args, **kwargs):
    """``fn`` on the app's database threads (never on the event loop)."""

    return await request.app[DB].run(fn, *args, **kwargs)


def ok(data, *, page: Page | None = None, status: int = 200) -> web.Response:
    body = {"success": True, "data": data}
    if page is not None:
        body["paging"] = page.paging()
    return json_response(body, status=status)


async def read_raw(request: web.Request) -> bytes:
    """The whole body, within HTTP_BODY_TIMEOUT: a body trickled in a byte at a time would otherwise hold a
    handler and a connection for as long as the client likes (the header deadline ends at the headers)."""
    if request.content.is_eof():  # all there already (a small body comes with its headers): nothing to wait for
        return await request.read()
    try:
        async with asyncio.timeout(request.app.get(BODY_TIMEOUT)):
            return await request.read()  # over client_max_size: 413 PAYLOAD_TOO_LARGE
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {request.app.get(BODY_TIMEOUT):g} s (HTTP_BODY_TIMEOUT)"
        ) from None


_ADAPTERS: dict[int, tuple[Any, TypeAdapter]] = {}  # by id: an Annotated model need not be hashable


def adapter(model) -> TypeAdapter:
    """pydantic's validator of ``model`` (a module-level model), built once per process."""
    found = _ADAPTERS.get(id(model))
    if found is None:
        found = _ADAPTERS[id(model)] = (model, TypeAdapter(model))
    return found[1]


def validate(model, value: Any) -> dict:
    """``value`` (parsed JSON) checked against ``model``: a bad value is VALIDATION_ERROR naming its field."""
    try:
        return adapter(model).validate_python(value)
    except ValidationError as exc:
        raise usage_problem(exc) from None


async def read_body(request: web.Request, model, *, each_later: tuple[str, ...] = ()) -> dict:
    """The JSON body, validated against ``model`` from the raw bytes: malformed JSON, a wrong type, an unknown
    field or text no database can store (nexusctl.core.storable) is a 400 naming the field. ``each_later``: lists
    whose items the handler checks for storable text one by one (a batch answers a bad item alone)."""
    if request.content_type != "application/json":
        raise UsageProblem("the body must be JSON (Content-Type: application/json)", field="Content-Type")
    raw = await read_raw(request)
    try:
        value = adapter(model).validate_json(raw)
    except ValidationError as exc:
        if exc.errors(include_url=False)[0]["type"] != "json_invalid":
            raise usage_problem(exc) from None
        # pydantic's parser refuses what Python's reads (a lone surrogate; nesting over 200): say what is wrong.
        value = _parsed(raw)
        if isinstance(value, dict):
            for name, item in value.items():
                if name not in each_later:
                    check_storable(item, name)
        if not each_later or not isinstance(value, dict):
            raise UsageProblem("the body is not valid JSON") from None
        value = validate(model, value)
    for name, item in value.items():
        if name not in each_later:
            check_storable(item, name)
    return value


def _parsed(raw: bytes):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: [[[[... too deep
        raise UsageProblem(f"the body is not valid JSON ({exc.__class__.__name__})") from None


def read_query(request: web.Request) -> dict:
    route = route_of(request)
    if route is None or route.query is None or not request.query:
        return {}
    query = request.query
    return validate(route.query, {name: query.getone(name) for name in route.query.__annotations__ if name in query})
