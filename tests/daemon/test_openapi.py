"""/openapi.json describes the running app, and fuzzed requests get answers that match it."""

from __future__ import annotations

import http.client
import json
import re
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter
from support.receivers import ThreadedApp
from support.tokens import configured_secret, mint

from nexusctl import config
from nexusctl.core.serializers import integration_to_dict, sync_log_to_dict
from nexusctl.daemon import responses
from nexusctl.daemon.app import create_app
from nexusctl.daemon.openapi import document
from nexusctl.daemon.routes import ROUTES

DOC = document(ROUTES)


def resolve(schema, components=DOC["components"]["schemas"]):
    """Inline the document's $refs so a plain validator can use a response schema."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return resolve(components[schema["$ref"].rsplit("/", 1)[1]])
        return {k: resolve(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [resolve(v) for v in schema]
    return schema


async def test_document_is_served_without_a_token(db_url, aiohttp_client):
    client = await aiohttp_client(create_app(config.load()))
    response = await client.get("/openapi.json")
    body = await response.json()
    assert response.status == 200 and body["openapi"] == "3.1.0"
    assert body == json.loads(json.dumps(DOC))


def test_every_registered_route_is_described(db_url):
    app = create_app(config.load())
    registered = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}
    described = {(method, path) for path, ops in DOC["paths"].items() for method in ops}
    assert registered == described
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (method, path)
            first = op["responses"][next(iter(op["responses"]))]
            if "content" not in first:  # a redirect: documented by its Location header
                assert "Location" in first["headers"], (method, path)
                continue
            success = next(iter(first["content"].values()))["schema"]
            if path not in (
                "/openapi.json",
                "/metrics",
                "/integrations/inbound/slack/commands",
                "/integrations/{id}/proxy/{path}",
            ):  # own formats (the proxy: the provider's)
                assert success["properties"]["data"], f"{method} {path} has no data schema"


def test_schemas_are_valid_json_schema():
    for _path, ops in DOC["paths"].items():
        for op in ops.values():
            for response in op["responses"].values():
                for media in response.get("content", {}).values():
                    Draft202012Validator.check_schema(resolve(media["schema"]))
            if "requestBody" in op:
                for media in op["requestBody"]["content"].values():  # JSON, or the form Slack posts
                    Draft202012Validator.check_schema(media["schema"])


def test_response_schemas_match_the_serializers(database, make_integration):
    from nexusctl.db.models import IntegrationSyncLog

    row = make_integration(scope=["a"])
    log = IntegrationSyncLog.create(integration=row, action="fetch_posts")
    for model, value in ((responses.Integration, integration_to_dict(row)), (responses.SyncLog, sync_log_to_dict(log))):
        schema = TypeAdapter(model).json_schema()
        Draft202012Validator(schema).validate(json.loads(json.dumps(value)))
        assert set(schema["properties"]) == set(value)
        TypeAdapter(model).validate_json(json.dumps(value))  # pydantic reads the answer as the model says


# --- fuzzing a live server ---------------------------------------------------


class LiveServer(ThreadedApp):
    """The daemon's app on a port of its own, for hypothesis to fuzz over real sockets."""

    def __init__(self):
        super().__init__(lambda: create_app(config.load()), timeout=20)

    def request(self, method, path, body: bytes | None, headers: dict):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data


@pytest.fixture
def live(db_url, make_integration, monkeypatch):
    from nexusctl.enums import Provider as P

    for provider in P:  # no provider is reachable: nothing leaves this machine
        for kind in ("AUTH", "TOKEN", "API", "REVOKE"):
            monkeypatch.setenv(f"{provider.value}_{kind}_URL", "http://127.0.0.1:9/")
    owner = uuid.uuid4()
    row = make_integration(user_id=owner)
    server = LiveServer()
    secret = configured_secret()
    tokens = {
        "owner": mint(owner, secret=secret),
        "admin": mint(uuid.uuid4(), "admin", secret=secret),
        "stranger": mint(uuid.uuid4(), secret=secret),
        "none": None,
        "garbage": "abc.def.ghi",
    }
    yield server, {"owner": str(owner), "id": str(row.id)}, tokens
    server.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
segments = st.sampled_from(
    [
        "{id}",
        "{owner}",
        "slack",
        "WOOCOMMERCE",
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "%00",
        "..",
        "ünï",
    ]
)
bodies = st.one_of(
    st.none(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "userId": st.sampled_from(["{owner}", "x"]) | json_values,
            "provider": st.sampled_from(["SLACK", "SENDGRID", "SHOPIFY", "x"]),
            "redirectUri": st.sampled_from(["http://localhost:3000/x", "https://evil.example/x", "//evil"]),
            "user_id": json_values,
            "consumer_key": json_values,
            "name": json_values,
            "isActive": json_values,
            "metadata": json_values,
            "extra": json_values,
        },
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)
queries = st.dictionaries(
    st.sampled_from(
        ["provider", "isActive", "limit", "cursor", "status", "x", "state", "code", "error", "user_id", "success"]
    ),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="&#%"), max_size=12),
    max_size=3,
)


def _expected_schema(method: str, template: str | None, status: int):
    if template is None:
        return resolve(DOC["components"]["schemas"]["Error"])
    responses = DOC["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template} answered undocumented {status}"
    return resolve(responses[str(status)]["content"]["application/json"]["schema"])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    segment=segments,
    body=bodies,
    query=queries,
    who=st.sampled_from(["owner", "admin", "stranger", "none", "garbage"]),
    content_type=st.sampled_from(["application/json", "text/plain", None]),
)
def test_fuzzed_requests_never_get_a_5xx_and_match_the_document(live, route, segment, body, query, who, content_type):
    from urllib.parse import quote, urlencode

    server, ids, tokens = live
    value = segment.format(**ids)
    path = (
        route.path.replace("{id}", quote(value, safe=""))
        .replace("{userId}", quote(value, safe=""))
        .replace("{provider}", quote(value, safe=""))
    )
    if query:
        path += "?" + urlencode(query)
    headers = {}
    if tokens[who]:
        headers["Authorization"] = f"Bearer {tokens[who]}"
    if content_type and body is not None:
        headers["Content-Type"] = content_type
    status, raw = server.request(route.method, path, body if route.method in ("PATCH", "POST") else None, headers)
    event(f"{route.method} {status}")
    # 502 PROVIDER_ERROR is the one documented 5xx: the provider (unreachable here) failed, not us.
    upstream = status == 502 and json.loads(raw)["error"]["code"] == "PROVIDER_ERROR"
    assert status < 500 or upstream, (route.method, path, raw[:300])
    if (route.path == "/ready" and status == 503) or route.content_type != "application/json":
        return
    if 300 <= status < 400:  # the OAuth callback's redirects (no usable state: to FRONTEND_URL): no JSON body
        assert str(status) in DOC["paths"][route.path][route.method.lower()]["responses"], (route.path, status)
        return
    payload = json.loads(raw)
    template = route.path if status not in (404, 405) or payload.get("error", {}).get("code") != "NOT_FOUND" else None
    Draft202012Validator(_expected_schema(route.method, template, status)).validate(payload)


# --- every documented body field is checked, and a refusal names it -----------------------------------------

WRONG = {"string": 12345, "boolean": "yes", "integer": "x", "object": [1], "array": "x"}


def _bodies():
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            media = op.get("requestBody", {}).get("content", {}).get("application/json")
            if media is None or "/oauth/callback/" in path:  # WooCommerce's keys are read leniently, on purpose
                continue
            yield method.upper(), path, media["schema"]


@pytest.mark.parametrize(("method", "path", "schema"), list(_bodies()), ids=lambda v: v if isinstance(v, str) else "")
async def test_a_wrong_value_in_any_body_field_is_a_400_naming_it(db_url, aiohttp_client, method, path, schema):
    client = await aiohttp_client(create_app(config.load()))
    url = re.sub(r"{\w+}", lambda m: "c1" if m.group(0) == "{commentId}" else str(uuid.uuid4()), path)
    headers = {"Authorization": f"Bearer {mint(uuid.uuid4(), 'admin', secret=configured_secret())}"}
    required = {name: _valid(schema["properties"][name]) for name in schema.get("required", [])}
    for name, field in schema["properties"].items():
        kind = field.get("type") or resolve(field).get("type") or "string"  # a provider: an enum of strings
        answer = await client.request(method, url, json={**required, name: WRONG[kind]}, headers=headers)
        body = await answer.json()
        assert answer.status == 400 and body["error"]["code"] == "VALIDATION_ERROR", (name, body)
        assert body["error"]["message"].startswith(name), (name, body)
    unknown = await client.request(method, url, json={**required, "zzz": 1}, headers=headers)
    assert (await unknown.json())["error"]["message"] == "unknown field(s): zzz"


def _valid(field: dict):
    field = resolve(field)
    if "enum" in field or "const" in field:
        return field.get("enum", [field.get("const")])[0]
    if field.get("format") == "uuid":
        return str(uuid.uuid4())
    if field.get("type") == "array":
        return [_valid(field["items"])] if field["items"].get("type") != "object" else [{}]
    if "pattern" in field:
        return "post.created"
    return {"string": "x", "object": {}, "boolean": True}[field["type"]]
