"""GET /openapi.json: the OpenAPI 3.1 document, generated from the route table's pydantic models.

Request bodies, query and path parameters come from the same models that validate requests
(nexusctl.daemon.fields), answers from nexusctl.daemon.responses, all through pydantic's JSON
Schema generation (2020-12, OpenAPI 3.1's dialect) in one pass, so a model used by many routes is
one entry of ``components.schemas``; error responses come from each route's declared codes.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from nexusctl import __version__
from nexusctl.daemon.answers import json_response
from nexusctl.daemon.keys import ROUTES
from nexusctl.daemon.responses import Envelope, Error, PagedEnvelope, Paging
from nexusctl.enums import Provider
from nexusctl.errors import all_error_classes

STATUS_OF = {cls.code: cls.http_status for cls in all_error_classes()}
STATUS_OF.update({"NOT_READY": 503, "UNAUTHORIZED": 401, "NOT_FOUND": 404})
REF = "#/components/schemas/{model}"
ERROR = {"$ref": REF.format(model="Error")}


class _Schemas(GenerateJsonSchema):
    """pydantic's generator, without a title on every property (the name says it)."""

    def field_title_should_be_set(self, schema) -> bool:
        return False


def provider_param(*providers) -> Any:
    """A provider in a path: callback URLs name it in lower case (as registered at the provider); any case works."""
    names = [p.value for p in providers] or [p.value for p in Provider]
    return Annotated[
        Literal[tuple(case(n) for n in names for case in (str.lower, str))], Field(description="a provider, any case")
    ]


_PATH_PARAMS = {"provider": provider_param()}  # any other: a UUID, unless the route says


def document(routes) -> dict:
    key = id(routes)
    if key not in _DOCUMENTS:  # the table does not change while the process runs; pydantic takes a while
        _DOCUMENTS[key] = (routes, _document(routes))
    return _DOCUMENTS[key][1]


_DOCUMENTS: dict[int, tuple[list, dict]] = {}


def _document(routes) -> dict:
    wanted: list[tuple[Any, str, TypeAdapter]] = [("Error", "validation", TypeAdapter(Error))]
    wanted.append(("Paging", "validation", TypeAdapter(Paging)))
    for n, route in enumerate(routes):
        for name in _path_names(route.path):
            model = (route.path_params or {}).get(name) or _PATH_PARAMS.get(name, uuid.UUID)
            wanted.append(((n, "path", name), "validation", TypeAdapter(model)))
        if route.query is not None:
            wanted.append(((n, "query"), "validation", TypeAdapter(route.query)))
        if route.body is not None:
            wanted.append(((n, "body"), "validation", TypeAdapter(route.body)))
        wanted.append(((n, "data"), "validation", TypeAdapter(_success_model(route))))
    generated, definitions = TypeAdapter.json_schemas(wanted, ref_template=REF, schema_generator=_Schemas)
    components = definitions.get("$defs", {})
    schema = {key: _inlined(generated[(key, mode)], components) for key, mode, _ in wanted}

    paths: dict = {}
    for n, route in enumerate(routes):
        path = re.sub(r"{(\w+):[^}]*}", r"{\1}", route.path)  # {path:.*} (the proxy's tail) is {path}
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": schema[(n, "path", name)]}
            for name in _path_names(route.path)
        ]
        if route.query is not None:
            parameters += [
                {"name": name, "in": "query", "required": False, "schema": item}
                for name, item in schema[(n, "query")]["properties"].items()
            ]
        operation = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
            "parameters": parameters,
            "responses": _responses(route, schema[(n, "data")]),
        }
        if not route.public:
            # For http schemes the list names roles (OpenAPI 3.1 "Security Requirement"): any one will do.
            operation["security"] = [{"bearer": [role]} for role in route.roles] or [{"bearer": []}]
        if route.body is not None:
            operation["requestBody"] = {
                "required": route.body_required,
                "content": {route.body_type: {"schema": schema[(n, "body")]}},
            }
        paths.setdefault(path, {})[route.method.lower()] = operation
    document = {
        "openapi": "3.1.0",
        "info": {"title": "nexusctl integration service", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {},
        },
    }
    used = _referenced(document, components)
    document["components"]["schemas"] = {name: components[name] for name in sorted(used | {"Error", "Paging"})}
    return document


def _path_names(path: str) -> list[str]:
    return re.findall(r"{(\w+)(?::[^}]*)?}", path)


def _success_model(route) -> Any:
    if not route.envelope:  # the document itself, metrics text, or a provider's own format
        if route.data is not None:
            return route.data
        return dict[str, Any] if route.content_type == "application/json" else str
    data = route.data if route.data is not None else Any
    return PagedEnvelope[data] if route.paged else Envelope[data]


def _inlined(schema: dict, components: dict) -> dict:
    """A top-level model in place of a $ref to it: a route's body and answer read as themselves in the document."""
    if "$ref" in schema:  # with the keywords beside it (minProperties)
        inlined = dict(components[schema["$ref"].rsplit("/", 1)[1]])
        inlined.update((k, v) for k, v in schema.items() if k != "$ref")
        return inlined
    return schema


def _referenced(document: dict, components: dict) -> set[str]:
    """The components the document refers to, directly or through other components."""
    found: set[str] = set()
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    pending.append(components[name])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _responses(route, success: dict) -> dict:
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
    codes.append("DAEMON_STOPPING")  # every route: still running when a stopping daemon's grace ends (daemon.stopping)
    if route.roles and "FORBIDDEN" not in codes:
        codes.append("FORBIDDEN")
    if route.passthrough:
        responses["default"] = {
            "description": "the provider's own answer, whatever its status",
            "content": {route.content_type: {"schema": success}},
        }
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(STATUS_OF[code], []).append(code)
    for status, names in sorted(by_status.items()):
        if route.passthrough:  # the provider may answer this status too, with its own body and content type
            responses[str(status)] = {
                "description": f"{', '.join(names)}; or the provider's own answer with this status",
                "content": {"*/*": {"schema": {"anyOf": [ERROR, success]}}},
            }
            continue
        responses[str(status)] = {
            "description": ", ".join(names),
            "content": {"application/json": {"schema": ERROR}},
        }
    return responses


async def openapi_handler(request: web.Request) -> web.Response:
    return json_response(document(request.app[ROUTES]))
