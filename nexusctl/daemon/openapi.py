"""GET /openapi.json: the OpenAPI 3.1 document, generated from the route table.

Request bodies and query parameters come from the same schemas that
validate requests; error responses from each route's declared codes.
"""

from __future__ import annotations

import re

from aiohttp import web

from nexusctl import __version__
from nexusctl.daemon.answers import json_response
from nexusctl.daemon.keys import ROUTES
from nexusctl.enums import Provider
from nexusctl.errors import all_error_classes

STATUS_OF = {cls.code: cls.http_status for cls in all_error_classes()}
STATUS_OF.update({"NOT_READY": 503, "UNAUTHORIZED": 401, "NOT_FOUND": 404})

ENVELOPE_ERROR = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "data": {},
    },
}
PAGING = {
    "type": "object",
    "required": ["limit", "nextCursor", "hasMore"],
    "properties": {
        "limit": {"type": "integer"},
        "nextCursor": {"type": ["string", "null"]},
        "hasMore": {"type": "boolean"},
    },
}


def document(routes) -> dict:
    paths: dict = {}
    for route in routes:
        path = re.sub(r"{(\w+):[^}]*}", r"{\1}", route.path)  # {path:.*} (the proxy's tail) is {path}
        operation = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
            "parameters": _path_params(path, route.path_schemas or {}) + _query_params(route),
            "responses": _responses(route),
        }
        if not route.public:
            # For http schemes the list names roles (OpenAPI 3.1 "Security Requirement"): any one will do.
            operation["security"] = [{"bearer": [role]} for role in route.roles] or [{"bearer": []}]
        if route.body is not None:
            operation["requestBody"] = {
                "required": route.body_required,
                "content": {route.body_type: {"schema": route.body.openapi()}},
            }
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "nexusctl integration service", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": ENVELOPE_ERROR, "Paging": PAGING},
        },
    }


def _path_params(path: str, schemas: dict) -> list[dict]:
    return [
        {"name": name, "in": "path", "required": True, "schema": schemas.get(name) or _PATH_SCHEMAS.get(name, _UUID)}
        for name in re.findall(r"{(\w+)}", path)
    ]


def provider_param(*providers) -> dict:
    """A provider in a path: callback URLs name it in lower case (as registered at the provider); any case works."""
    names = [p.value for p in providers] or [p.value for p in Provider]
    return {
        "type": "string",
        "enum": [case(n) for n in names for case in (str.lower, str)],
        "description": "a provider, any case",
    }


_UUID = {"type": "string", "format": "uuid"}
_PATH_SCHEMAS = {"provider": provider_param()}


def _query_params(route) -> list[dict]:
    if route.query is None:
        return []
    return [
        {"name": name, "in": "query", "required": False, "schema": spec.openapi()}
        for name, spec in route.query.params.items()
    ]


def _responses(route) -> dict:
    if not route.envelope:
        # Not the envelope: the document itself, metrics text, or a provider's own format (route.data, if given).
        success: dict = route.data or (
            {"type": "object"} if route.content_type == "application/json" else {"type": "string"}
        )
    else:
        success = {
            "type": "object",
            "required": ["success", "data"],
            "properties": {"success": {"const": True}, "data": route.data or {}},
        }
    if route.paged:
        success["properties"]["paging"] = {"$ref": "#/components/schemas/Paging"}
        success["required"].append("paging")
    if 300 <= route.status < 400:
        responses = {
            str(route.status): {
                "description": "redirect",
                "headers": {
                    "Location": {
                        "description": "the caller's redirectUri with status=success&integrationId=... "
                        "or status=error&code=...",
                        "schema": {"type": "string"},
                    }
                },
            }
        }
    else:
        responses = {
            str(route.status): {"description": "success", "content": {route.content_type: {"schema": success}}}
        }
    codes = list(route.errors) + ([] if route.public else ["UNAUTHORIZED"])
    if route.tag not in ("health", "meta") and "DATABASE_UNAVAILABLE" not in codes:
        codes.append("DATABASE_UNAVAILABLE")  # every route that reads or writes: the database (or Redis) is away
    if route.roles and "FORBIDDEN" not in codes:
        codes.append("FORBIDDEN")
    if route.passthrough:
        responses["default"] = {
            "description": "the provider's own answer, whatever its status",
            "content": {route.content_type: {"schema": route.data or {}}},
        }
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(STATUS_OF[code], []).append(code)
    error = {"$ref": "#/components/schemas/Error"}
    for status, names in sorted(by_status.items()):
        if route.passthrough:  # the provider may answer this status too, with its own body and content type
            responses[str(status)] = {
                "description": f"{', '.join(names)}; or the provider's own answer with this status",
                "content": {"*/*": {"schema": {"anyOf": [error, route.data or {}]}}},
            }
            continue
        responses[str(status)] = {
            "description": ", ".join(names),
            "content": {"application/json": {"schema": error}},
        }
    return responses


async def openapi_handler(request: web.Request) -> web.Response:
    return json_response(document(request.app[ROUTES]))
