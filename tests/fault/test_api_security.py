"""The security tables, run against a real daemon: authorization, SSRF, OAuth state.

- Authorization matrix: every operation of the daemon's own /openapi.json with
  every kind of caller (no token, expired, wrong signature, the owner, another
  user, a service, an admin). Generated from the document, so a new route is in
  the matrix the day it is added; a route the matrix cannot build a valid
  request for fails here until VALUES learns its fields.
- SSRF: hostile webhook URLs are refused on create and on update, and a name
  that resolves to a private address only at delivery time gets no request.
- OAuth state: replayed, expired, another provider's, another user's, unknown
  and garbage states, and a missing code, each refused with no integration made.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import urllib.parse
import uuid

import pytest
from api_fixtures import api, receiver  # noqa: F401 - pytest fixtures
from apikit import (
    ALLOWED_HOST,
    ELEVATED,
    FORBIDDEN_HOST,
    FRONTEND,
    IDENTITIES,
    PUBLIC_ADDRESS,
    bearer,
    call,
    frontend_redirect,
    query_of,
    seed_world,
    wait_for,
)

from nexusctl.core.oauth_states import STATE_TTL
from nexusctl.daemon.openapi import document
from nexusctl.daemon.routes import ROUTES

DOC = document(ROUTES)  # what the daemon serves (test_the_daemon_serves_this_document checks it)
OPERATIONS = [(method.upper(), path) for path, ops in DOC["paths"].items() for method in ops]
ID_PARAMS = {"id": "INTEGRATION_NOT_FOUND", "webhookId": "WEBHOOK_NOT_FOUND", "deliveryId": "DELIVERY_NOT_FOUND"}
# The provider API proxy: the owner or the service role (an admin reads every user's rows, but does not act as
# them at their providers); its tail is the world's provider path (Discord's who-am-I), and what comes back is
# the provider's answer: 200 for the GET, 405 from Discord for the other methods on that path.
PROXY = "/integrations/{id}/proxy/{path}"
PROXY_PATH = "v10/users/@me"


def test_the_daemon_serves_this_document(api):  # noqa: F811
    served = call("GET", f"{api.base}/openapi.json")
    assert served.status == 200 and served.json() == json.loads(json.dumps(DOC))


# --- authorization matrix ------------------------------------------------------------------


def _values(daemon, world) -> dict:
    """A valid value for each request field the API has, by name (what a real caller would send)."""
    return {
        "userId": str(world.owner),
        "integrationId": world.integration,
        "redirectUri": frontend_redirect(),
        "apiKey": daemon.stack.emulators.sendgrid_key(),
        "url": daemon.receiver.url(path="/matrix"),
        "events": ["post.*"],
        "name": "renamed by the matrix",
        "data": {"userId": str(uuid.uuid4())},  # ingest: a user with nothing to delete
        "type": "post.created",  # unless the field has an enum (ingest), see _value
        "user_id": "x" * 43,
        "consumer_key": "ck_matrix",
        "consumer_secret": "cs_matrix",  # an unknown state
    }


def _value(name: str, schema: dict, values: dict):
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:  # a one-value enum, as pydantic writes it (the API-key providers: SENDGRID)
        return schema["const"]
    if schema.get("type") == "array" and schema.get("items", {}).get("type") == "object":  # a batch of events
        return [{"integrationId": values["integrationId"], "type": values["type"]}]
    if name in values:
        return values[name]
    kind = schema.get("type")
    return {"string": "x", "integer": schema.get("minimum", 1), "boolean": True, "object": {}, "array": ["x"]}.get(
        kind if isinstance(kind, str) else "string"
    )


def _body(operation: dict, values: dict):
    if "requestBody" not in operation:
        return None
    [schema] = [media["schema"] for media in operation["requestBody"]["content"].values()]  # JSON, or Slack's form
    names = list(schema.get("required", []))
    if len(names) < schema.get("minProperties", 0):
        names += [n for n in schema["properties"] if n not in names][: schema["minProperties"] - len(names)]
    return {name: _value(name, schema["properties"][name], values) for name in names}


def _roles(operation: dict) -> set[str]:
    return {role for requirement in operation.get("security", []) for scopes in requirement.values() for role in scopes}


def _success(operation: dict) -> int:
    return min(int(status) for status in operation["responses"] if int(status) < 400)


def _send(daemon, world, method: str, path: str, who: str):
    operation = DOC["paths"][path][method.lower()]
    url = daemon.base + re.sub(
        r"{(\w+)}",
        lambda m: PROXY_PATH if m.group(1) == "path" else urllib.parse.quote(world.path_value(m.group(1)), safe=""),
        path,
    )
    body = _body(operation, _values(daemon, world))
    return call(method, url, json_body=body, headers=bearer(who, world.owner, world.other)), body


def _expected(operation: dict, path: str, body, who: str):
    """(status, error code or None) for a caller of the matrix; None: like an anonymous caller (public)."""
    if "security" not in operation:
        return None
    if who in ("none", "expired", "bad_signature"):
        return 401, "UNAUTHORIZED"
    roles = _roles(operation)
    if roles and who not in roles:
        return 403, "FORBIDDEN"
    if path == PROXY and who == "admin":
        return 404, "INTEGRATION_NOT_FOUND"
    if path == PROXY and who in ("owner", "service"):
        return (200 if operation is DOC["paths"][PROXY].get("get") else 405), None
    if who in ("owner", *ELEVATED):
        if "{commentId}" in path:  # the world's Discord integration has no comments: the caller got through to
            return 400, "VALIDATION_ERROR"  # the check (tests/oauth/test_comments.py: 201 for owner and service)
        return _success(operation), None
    # Another user: naming the owner is forbidden; the owner's rows do not exist for them.
    if "{userId}" in path or (body and "userId" in body):
        return 403, "FORBIDDEN"
    for name, code in ID_PARAMS.items():
        if "{" + name + "}" in path:
            return 404, code
    if body and "integrationId" in body:
        return 404, "INTEGRATION_NOT_FOUND"
    return _success(operation), None  # a collection: 200, without the owner's rows (checked below)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_authorization_matrix(api, method, path):  # noqa: F811
    operation = DOC["paths"][path][method.lower()]
    shared = api.world
    anonymous = None
    wrong = []
    for who in IDENTITIES:
        # A caller who gets through to a write gets rows of their own, so each sees the same state.
        mutates = method != "GET" and who in ("owner", *ELEVATED)
        world = seed_world(api.stack, api.receiver) if mutates else shared
        response, body = _send(api, world, method, path, who)
        payload = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
        found = payload.get("error") if isinstance(payload, dict) else None
        error = found.get("code") if isinstance(found, dict) else None  # a provider's own error (the proxy) may differ
        assert response.status < 500, (method, path, who, response.status, response.text[:300])
        expected = _expected(operation, path, body, who)
        if expected is None:  # public: the token changes nothing
            anonymous = anonymous or (response.status, error)
            if (response.status, error) != anonymous:
                wrong.append(f"{who}: {response.status} {error}, anonymous got {anonymous}")
            continue
        status, code = expected
        if response.status != status or (code is not None and error != code):
            wrong.append(f"{who}: {response.status} {error} {response.text[:200]}, expected {status} {code}")
        if who == "other" and status < 400:
            leaked = [v for v in (shared.integration, shared.webhook, shared.delivery) if v in response.text]
            if leaked:
                wrong.append(f"other: the owner's rows {leaked} are in the answer")
        if who == "other" and method == "DELETE":  # refused, so the owner's row is still there
            still = call(
                "GET",
                api.base
                + path.replace("{id}", shared.integration)
                .replace("{webhookId}", shared.webhook)
                .replace("{path}", PROXY_PATH),
                headers=bearer("owner", shared.owner, shared.other),
            )
            if still.status != 200:
                wrong.append(f"other: after the refused DELETE the owner gets {still.status}")
    assert not wrong, f"{method} {path}:\n  " + "\n  ".join(wrong)


# --- SSRF ----------------------------------------------------------------------------------

# DNS names the fake DNS answers (tests/fault/apikit.py): names that point inside.
HOSTILE_NAMES = {
    "loop.fault.test": ["127.0.0.1"],
    "private.fault.test": ["10.0.0.5"],
    "metadata.fault.test": ["169.254.169.254"],
    "v6loop.fault.test": ["::1"],
    "ula.fault.test": ["fd00::1"],
    "mapped.fault.test": ["::ffff:127.0.0.1"],
}
# (url, what the refusal says)
HOSTILE_URLS = [
    ("http://127.0.0.1:{port}/hook", "loopback"),
    ("http://localhost:{port}/hook", "loopback"),
    ("http://127.0.0.2/hook", "loopback"),
    ("http://0.0.0.0:{port}/hook", "unspecified"),
    ("http://10.1.2.3/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://100.64.0.1/hook", "CGNAT"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.10.10/hook", "link-local"),
    ("http://[::1]:{port}/hook", "loopback"),
    ("http://[::]/hook", "unspecified"),
    ("http://[fc00::1]/hook", "unique-local"),
    ("http://[fd12:3456::1]/hook", "unique-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fe80::1%25lo]/hook", "zone id"),
    ("http://[::ffff:127.0.0.1]:{port}/hook", "loopback"),
    ("http://[::ffff:7f00:1]/hook", "loopback"),
    ("http://[::ffff:169.254.169.254]/hook", "metadata"),
    ("http://[::ffff:10.0.0.1]/hook", "private"),
    ("http://[64:ff9b::7f00:1]/hook", "NAT64"),
    ("http://2130706433:{port}/hook", "it means 127.0.0.1"),
    ("http://017700000001/hook", "it means 127.0.0.1"),
    ("http://0177.0.0.1/hook", "it means 127.0.0.1"),
    ("http://0x7f000001/hook", "it means 127.0.0.1"),
    ("http://0x7f.0.0.1/hook", "it means 127.0.0.1"),
    ("http://127.1/hook", "it means 127.0.0.1"),
    ("http://127.0.0.1./hook", "it means 127.0.0.1"),
    ("http://0xa9fea9fe/hook", "it means 169.254.169.254"),
    ("http://2852039166/hook", "it means 169.254.169.254"),
    ("http://loop.fault.test:{port}/hook", "resolves to an address that is not allowed"),
    ("http://private.fault.test/hook", "resolves to an address that is not allowed"),
    ("http://metadata.fault.test/hook", "resolves to an address that is not allowed"),
    ("http://v6loop.fault.test/hook", "resolves to an address that is not allowed"),
    ("http://ula.fault.test/hook", "resolves to an address that is not allowed"),
    ("http://mapped.fault.test/hook", "resolves to an address that is not allowed"),
    ("http://nowhere.fault.test/hook", "does not resolve"),
    ("http://user:pass@127.0.0.77:{port}/hook", "credentials"),
    ("http://127.0.0.77:{port}@127.0.0.1:{port}/hook", "credentials"),
    ("http://evil@127.0.0.1/hook", "credentials"),
    ("http://@127.0.0.77:{port}/hook", "credentials"),
    ("http://127.0.0.77:{port}\\@127.0.0.1/hook", "not a valid URL"),
    ("ftp://127.0.0.77/hook", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("gopher://127.0.0.1:6379/_INFO", "http or https"),
    ("javascript:alert(1)", "http or https"),
    ("data:text/plain,hello", "http or https"),
    ("//127.0.0.77/hook", "http or https"),
    ("http://127.0.0.77:0/hook", "port 0"),
    ("http://127.0.0.1\t/hook", "whitespace"),
    ("http://127.0.0.77:{port}/ho\nok", "whitespace"),
    ("", "required"),
]


def _hostile(daemon):
    for name, addresses in HOSTILE_NAMES.items():
        daemon.dns.set(name, *addresses)
    return [(url.replace("{port}", str(daemon.receiver.port)), why) for url, why in HOSTILE_URLS]


def _owner(daemon) -> dict:
    return bearer("owner", daemon.world.owner, daemon.world.other)


def test_hostile_webhook_urls_are_refused_on_create_and_update(api):  # noqa: F811
    before = call("GET", f"{api.base}/integrations/webhooks/{api.world.webhook}", headers=_owner(api)).json()["data"]
    wrong = []
    for url, why in _hostile(api):
        made = call(
            "POST",
            f"{api.base}/integrations/webhooks",
            headers=_owner(api),
            json_body={"integrationId": api.world.integration, "url": url, "events": ["*"]},
        )
        changed = call(
            "PATCH",
            f"{api.base}/integrations/webhooks/{api.world.webhook}",
            headers=_owner(api),
            json_body={"url": url},
        )
        for verb, response in (("create", made), ("update", changed)):
            error = response.json().get("error") or {}
            if response.status != 400 or error.get("code") != "VALIDATION_ERROR" or why not in error.get("message", ""):
                wrong.append(f"{verb} {url!r}: {response.status} {response.text[:200]} (expected 400 '{why}')")
    assert not wrong, "\n".join(wrong)
    after = call("GET", f"{api.base}/integrations/webhooks/{api.world.webhook}", headers=_owner(api)).json()["data"]
    assert after["url"] == before["url"]
    listed = call(
        "GET", f"{api.base}/integrations/webhooks?integrationId={api.world.integration}", headers=_owner(api)
    ).json()["data"]
    assert [hook["id"] for hook in listed] == [api.world.webhook]  # nothing hostile was stored
    assert api.receiver.paths(FORBIDDEN_HOST) == []


def test_the_allowed_address_and_names_resolving_to_it_are_accepted(api):  # noqa: F811
    """The control: the same requests with an address the daemon may reach get through."""
    api.dns.set("good.fault.test", ALLOWED_HOST)
    for url in (api.receiver.url(path="/control"), f"http://good.fault.test:{api.receiver.port}/control"):
        made = call(
            "POST",
            f"{api.base}/integrations/webhooks",
            headers=_owner(api),
            json_body={"integrationId": api.world.integration, "url": url, "events": ["ssrf.control"]},
        )
        assert made.status == 201, made.text
        call("DELETE", f"{api.base}/integrations/webhooks/{made.json()['data']['id']}", headers=_owner(api))


def _hook(daemon, url: str, event: str) -> str:
    made = call(
        "POST",
        f"{daemon.base}/integrations/webhooks",
        headers=_owner(daemon),
        json_body={"integrationId": daemon.world.integration, "url": url, "events": [event]},
    )
    assert made.status == 201, made.text
    return made.json()["data"]["id"]


def _emit(daemon, event: str) -> None:
    emitted = call(
        "POST",
        f"{daemon.base}/integrations/{daemon.world.integration}/events",
        headers=_owner(daemon),
        json_body={"type": event, "data": {}},
    )
    assert emitted.status == 202, emitted.text


def _attempted(daemon, hook_id: str) -> dict:
    """The webhook's first delivery once its first attempt is over."""

    def done():
        rows = call("GET", f"{daemon.base}/integrations/webhooks/{hook_id}/deliveries", headers=_owner(daemon)).json()[
            "data"
        ]
        return rows[0] if rows and rows[0]["attempts"] >= 1 and rows[0]["status"] != "PENDING" else None

    return wait_for(done, what=f"the first attempt of webhook {hook_id}")


@pytest.mark.parametrize("inside", ["127.0.0.1", "169.254.169.254", "10.0.0.5", "::1"])
def test_a_name_rebound_to_a_private_address_gets_no_delivery(api, inside):  # noqa: F811
    """Public when stored, private when delivered (DNS rebinding): the delivery is not made."""
    name = "rebind-" + re.sub(r"[^0-9a-f]+", "-", inside).strip("-") + ".fault.test"
    path = f"/rebind/{api.kind}/{inside}"
    api.dns.set(name, PUBLIC_ADDRESS)  # nothing connects here: the create check only resolves
    hook = _hook(api, f"http://{name}:{api.receiver.port}{path}", "rebind.test")
    api.dns.set(name, inside)
    _emit(api, "rebind.test")
    delivery = _attempted(api, hook)
    assert delivery["status"] == "RETRYING" and delivery["deliveredAt"] is None, delivery
    assert "SSRF" in (delivery["error"] or "") and "not allowed" in delivery["error"], delivery["error"]
    assert inside not in delivery["error"], delivery["error"]  # where the name points is not told
    assert path not in api.receiver.paths()
    # The control: pointed at the allowed address, the same delivery arrives.
    api.dns.set(name, ALLOWED_HOST)
    again = call("POST", f"{api.base}/integrations/webhooks/deliveries/{delivery['id']}/redeliver", headers=_owner(api))
    assert again.status == 202, again.text
    wait_for(lambda: path in api.receiver.paths(ALLOWED_HOST), what="the redelivery to the allowed address")
    assert path not in api.receiver.paths(FORBIDDEN_HOST)
    call("DELETE", f"{api.base}/integrations/webhooks/{hook}", headers=_owner(api))


def test_a_name_with_private_and_allowed_addresses_is_only_sent_to_the_allowed_one(api):  # noqa: F811
    name, path = "mixed.fault.test", f"/mixed/{api.kind}"
    api.dns.set(name, FORBIDDEN_HOST, ALLOWED_HOST)
    hook = _hook(api, f"http://{name}:{api.receiver.port}{path}", "mixed.test")
    _emit(api, "mixed.test")
    assert _attempted(api, hook)["status"] == "DELIVERED"
    assert path in api.receiver.paths(ALLOWED_HOST) and path not in api.receiver.paths(FORBIDDEN_HOST)
    call("DELETE", f"{api.base}/integrations/webhooks/{hook}", headers=_owner(api))


def test_a_redirect_to_loopback_is_not_followed(api):  # noqa: F811
    path = f"/bounced/{api.kind}"
    hook = _hook(api, api.receiver.url(path="/redirect" + path), "redirect.test")
    _emit(api, "redirect.test")
    delivery = _attempted(api, hook)
    assert delivery["status"] == "RETRYING" and delivery["attemptLog"][0]["statusCode"] == 302, delivery
    assert "/redirect" + path in api.receiver.paths(ALLOWED_HOST)
    assert path not in api.receiver.paths(FORBIDDEN_HOST)
    call("DELETE", f"{api.base}/integrations/webhooks/{hook}", headers=_owner(api))


# --- OAuth state ---------------------------------------------------------------------------


def _start(daemon, provider: str, user: uuid.UUID) -> dict:
    answer = daemon.stack.initiate(provider, user)
    assert answer.status == 200, answer.text
    return answer.json()["data"]


def _consent(data: dict) -> str:
    """The emulator's consent page sends the browser to our callback: its URL."""
    at_provider = call("GET", data["authorizationUrl"])
    assert at_provider.status == 302, at_provider.text
    return at_provider.location


def _connected(daemon, user: uuid.UUID) -> list:
    listed = call("GET", f"{daemon.base}/integrations/user/{user}", headers=bearer("owner", user, uuid.uuid4()))
    assert listed.status == 200, listed.text
    return listed.json()["data"]


def _refused(daemon, response, mention: str = "") -> None:
    """No usable state: back to FRONTEND_URL with status=error&code=OAUTH_FAILED, as every other callback failure,
    never to a redirectUri the state names (it was not validated); why is in the daemon's log."""
    assert response.status == 302, (response.status, response.location, response.text[:300])
    assert response.location.split("?")[0].rstrip("/") == FRONTEND and not response.location.startswith(
        frontend_redirect()
    ), response.location
    query = query_of(response.location)
    assert (query["status"], query["code"]) == ("error", "OAUTH_FAILED") and "integrationId" not in query, query
    assert response.headers.get("Referrer-Policy") == "no-referrer"
    assert mention in daemon.stack.logs()


def _error_redirect(response) -> dict:
    """A usable state but a failed connection: back to the caller's redirectUri with status=error."""
    assert response.status == 302 and response.location.startswith(frontend_redirect() + "?"), (
        response.status,
        response.location,
        response.text[:300],
    )
    query = query_of(response.location)
    assert query["status"] == "error" and "integrationId" not in query, query
    return query


def _with_query(url: str, **changes) -> str:
    parts = urllib.parse.urlsplit(url)
    query = {**dict(urllib.parse.parse_qsl(parts.query)), **changes}
    return urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}))
    )


def test_a_replayed_state_is_refused(api):  # noqa: F811
    user = uuid.uuid4()
    callback = _consent(_start(api, "DISCORD", user))
    first = call("GET", callback)
    assert first.status == 302 and query_of(first.location)["status"] == "success", first.location
    _refused(api, call("GET", callback), "unknown or already used")
    assert len(_connected(api, user)) == 1


def test_an_expired_state_is_refused(api):  # noqa: F811
    user = uuid.uuid4()
    data = _start(api, "DISCORD", user)
    callback = _consent(data)
    # The user comes back after the state's ten minutes: time passes on the clock the daemon shares with the
    # emulators (in Redis the record outlives its TTL's wall-clock seconds; its own expiry says it is over).
    api.stack.emulators.advance_clock(STATE_TTL.total_seconds() + 60)
    _refused(api, call("GET", callback), "expired")
    assert _connected(api, user) == []


def test_a_state_from_another_provider_is_refused(api):  # noqa: F811
    user = uuid.uuid4()
    callback = _consent(_start(api, "SLACK", user))
    _refused(api, call("GET", callback.replace("/callback/slack", "/callback/discord")), "another provider")
    # Checked before consumed: the wrong callback cannot burn the state of the right one.
    right = call("GET", callback)
    assert right.status == 302 and query_of(right.location)["status"] == "success", right.location
    _refused(api, call("GET", callback), "unknown or already used")
    assert len(_connected(api, user)) == 1


def test_a_state_from_another_users_flow_does_not_connect_either(api):  # noqa: F811
    """Alice's state with Bob's code (and the reverse): the PKCE verifier of one flow cannot redeem the other's code."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    to_alice, to_bob = _consent(_start(api, "DISCORD", alice)), _consent(_start(api, "DISCORD", bob))
    alice_state, bob_code = query_of(to_alice)["state"], query_of(to_bob)["code"]
    bob_state, alice_code = query_of(to_bob)["state"], query_of(to_alice)["code"]
    for state, code in ((alice_state, bob_code), (bob_state, alice_code)):
        assert _error_redirect(call("GET", _with_query(to_alice, state=state, code=code)))["code"] == "OAUTH_FAILED"
    assert _connected(api, alice) == [] and _connected(api, bob) == []


@pytest.mark.parametrize(
    "state", ["x" * 43, "", " ", "%00", "../../etc/passwd", "é" * 20, "a" * 4000, "' OR 1=1 --", "null"]
)
def test_unknown_or_garbage_states_are_refused(api, state):  # noqa: F811
    user = uuid.uuid4()
    callback = _consent(_start(api, "DISCORD", user))
    _refused(api, call("GET", _with_query(callback, state=state or None)))
    assert _connected(api, user) == []
    assert call("GET", callback).status == 302  # the real state was not touched by the garbage


def test_a_callback_without_a_code_or_without_a_state_connects_nothing(api):  # noqa: F811
    user = uuid.uuid4()
    callback = _consent(_start(api, "DISCORD", user))
    _refused(api, call("GET", _with_query(callback, state=None)), "no state")
    query = _error_redirect(call("GET", _with_query(callback, code=None)))
    assert query["code"] == "OAUTH_FAILED" and query["provider"] == "DISCORD"
    _refused(api, call("GET", callback), "unknown or already used")  # the state went with the failed attempt
    assert _connected(api, user) == []


# --- malformed HTTP ------------------------------------------------------------------------


def test_unparsable_http_is_a_400_and_one_log_line_without_the_request(api):  # noqa: F811
    token = bearer("owner", api.world.owner, api.world.other)["Authorization"]
    host, port = urllib.parse.urlsplit(api.base).hostname, urllib.parse.urlsplit(api.base).port
    for raw in (
        f"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\x00\r\n\r\n".encode(),
        b"GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    ):
        with socket.create_connection((host, port), timeout=10) as conn:
            conn.sendall(raw)
            status_line = conn.recv(200).split(b"\r\n", 1)[0]
            assert status_line.split()[1:2] == [b"400"], (raw[:40], status_line)
    # A request line longer than aiohttp reads (8190 bytes) gets the API's JSON error, as every route answers.
    user = api.world.owner
    long = call(
        "GET",
        f"{api.base}/integrations/user/{user}/health?cursor={'x' * 9000}",
        headers=bearer("owner", api.world.owner, api.world.other),
    )
    assert long.status == 400 and long.headers["Content-Type"].startswith("application/json"), long.text
    assert long.json()["error"]["code"] == "VALIDATION_ERROR" and long.json()["success"] is False
    # aiohttp itself logs a first request that is not HTTP at all (TLS) at DEBUG only.
    log = wait_for(
        lambda: (text := api.stack.logs()).count("malformed HTTP request") >= 2 and text, what="the log lines"
    )
    assert "Traceback" not in log and token.split()[1] not in log


# --- emitted events cannot speak for the platform ------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        "user.deleted",
        "content.published",
        "integration.connected",
        "integration.disconnected",
        "webhook.delivered",
        "slack.command",
    ],
)
def test_an_emitted_event_cannot_take_a_reserved_name(api, event):  # noqa: F811
    """Found by the fuzzer on PostgreSQL: POST /integrations/{id}/events with type user.deleted was relayed
    to the event bus, and this service's own consumer deleted the user's integrations; with
    data.userId it named any other user."""
    victim = seed_world(api.stack, api.receiver)
    emitted = call(
        "POST",
        f"{api.base}/integrations/{api.world.integration}/events",
        headers=_owner(api),
        json_body={"type": event, "data": {"userId": str(victim.owner)}},
    )
    assert emitted.status == 400, emitted.text
    assert emitted.json()["error"]["code"] == "VALIDATION_ERROR" and "reserved" in emitted.json()["error"]["message"]
    assert (
        call(
            "GET", f"{api.base}/integrations/{victim.integration}", headers=bearer("owner", victim.owner, victim.other)
        ).status
        == 200
    )


def test_an_emitted_event_is_about_the_callers_own_integration(api):  # noqa: F811
    victim = seed_world(api.stack, api.receiver)
    emitted = call(
        "POST",
        f"{api.base}/integrations/{api.world.integration}/events",
        headers=_owner(api),
        json_body={
            "type": "spoof.attempt",
            "data": {"userId": str(victim.owner), "integrationId": victim.integration, "x": 1},
        },
    )
    assert emitted.status == 202, emitted.text
    (data,) = api.stack.sql("SELECT data FROM outbox_events WHERE id = %s", emitted.json()["data"]["id"])[0:1][0]
    data = json.loads(data) if isinstance(data, str) else data
    assert (data["userId"], data["integrationId"], data["x"]) == (str(api.world.owner), api.world.integration, 1)


# --- input no database can store -----------------------------------------------------------

# Raw JSON bodies (PostgreSQL refuses U+0000; no database encodes a lone surrogate; a header cannot carry
# a control character): found by the fuzzer as 500s.
UNSTORABLE = [
    ("PATCH", "/integrations/{id}", r'{"metadata": {"a": "x\u0000y"}}', "NUL"),
    ("PATCH", "/integrations/{id}", r'{"metadata": {"k\u0000": 1}}', "NUL"),
    ("PATCH", "/integrations/{id}", r'{"name": "x\u0000"}', "NUL"),
    ("PATCH", "/integrations/{id}", r'{"metadata": {"a": ["\ud800"]}}', "surrogate"),
    ("PATCH", "/integrations/webhooks/{webhookId}", r'{"metadata": {"a": "\u0000"}}', "NUL"),
    ("POST", "/integrations/{id}/events", r'{"type": "post.created", "data": {"caption": "\u0000"}}', "NUL"),
    (
        "POST",
        "/integrations/oauth/initiate",
        '{"userId": "{owner}", "provider": "DISCORD", '
        '"redirectUri": "http://app.nexus.test/x", "metadata": {"a": "\\udfff"}}',
        "surrogate",
    ),
    # A control character in an API key went into the provider call's Authorization header: aiohttp refused it, 500.
    (
        "POST",
        "/integrations/api-key",
        '{"userId": "{owner}", "provider": "SENDGRID", "apiKey": "SG.a\\u0001b"}',
        "apiKey",
    ),
    (
        "POST",
        "/integrations/api-key",
        '{"userId": "{owner}", "provider": "SENDGRID", "apiKey": "SG.a\\u007fb"}',
        "apiKey",
    ),
    ("PATCH", "/integrations/{id}", '{"metadata": ' + "[" * 100000 + "]" * 100000 + "}", "not valid JSON"),
    ("PATCH", "/integrations/{id}", '{"metadata": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}", "nested deeper"),
    # Numbers JSON cannot carry: Python's json.loads takes NaN and Infinity and reads 1e999 as inf (500s).
    ("PATCH", "/integrations/{id}", '{"metadata": {"a": NaN}}', "metadata contains a number"),
    ("PATCH", "/integrations/{id}", '{"metadata": {"a": [1, Infinity]}}', "metadata contains a number"),
    ("PATCH", "/integrations/webhooks/{webhookId}", '{"metadata": {"a": -Infinity}}', "metadata contains a number"),
    ("POST", "/integrations/{id}/events", '{"type": "post.created", "data": {"n": 1e999}}', "data contains a number"),
    ("POST", "/integrations/{id}/events", '{"type": "post.created", "data": {"n": -1e999}}', "data contains a number"),
    ("POST", "/integrations/events/ingest", '{"type": "user.deleted", "data": {"n": NaN}}', "data contains a number"),
    (
        "POST",
        "/integrations/oauth/callback/woocommerce/keys",
        '{"key_id": Infinity, "user_id": "x"}',
        "body contains a number",
    ),
    (
        "POST",
        "/integrations/oauth/initiate",
        '{"userId": "{owner}", "provider": "DISCORD", '
        '"redirectUri": "http://app.nexus.test/x", "metadata": {"n": 1E400}}',
        "metadata contains a number",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "raw", "mention"), UNSTORABLE, ids=[f"{m} {p} {why}" for m, p, _, why in UNSTORABLE]
)
def test_text_that_cannot_be_stored_or_sent_is_a_400(api, method, path, raw, mention):  # noqa: F811
    url = api.base + re.sub(r"{(\w+)}", lambda m: api.world.path_value(m.group(1)), path)
    body = raw.replace("{owner}", str(api.world.owner)).encode()
    who = bearer("service", api.world.owner, api.world.other) if path.endswith("/ingest") else _owner(api)
    answer = call(method, url, data=body, headers={**who, "Content-Type": "application/json"})
    assert answer.status == 400, (answer.status, answer.text[:300])
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and mention in error["message"], error
    still = call("GET", f"{api.base}/integrations/{api.world.integration}", headers=_owner(api))
    assert still.status == 200 and "\\u0000" not in still.text


# --- deletes racing the delivery worker ----------------------------------------------------


@pytest.mark.parametrize("target", ["integration", "webhook"])
def test_deleting_while_deliveries_are_recorded_never_fails(api, target):  # noqa: F811
    """Found by the fuzzer on PostgreSQL: a DELETE that cascaded integration -> webhooks -> deliveries
    while the worker recorded attempts (deliveries, then webhooks) deadlocked into a 500."""
    failures = []
    for round_ in range(12):  # it failed in 3 of 25 rounds before the fix
        owner = str(uuid.uuid4())
        headers = bearer("owner", owner, uuid.uuid4())
        made = call(
            "POST",
            f"{api.base}/integrations/api-key",
            headers=headers,
            json_body={"userId": owner, "provider": "SENDGRID", "apiKey": api.stack.emulators.sendgrid_key()},
        )
        integration = made.json()["data"]["id"]
        path = f"/race/{api.kind}/{target}/{round_}"
        hook = call(
            "POST",
            f"{api.base}/integrations/webhooks",
            headers=headers,
            json_body={"integrationId": integration, "url": api.receiver.url(path=path), "events": ["*"]},
        ).json()["data"]["id"]
        for n in range(8):
            call(
                "POST",
                f"{api.base}/integrations/{integration}/events",
                headers=headers,
                json_body={"type": "race.test", "data": {"n": n}},
            )
        wait_for(lambda: path in api.receiver.paths(), what="a delivery in flight")  # noqa: B023
        url = f"/integrations/{integration}" if target == "integration" else f"/integrations/webhooks/{hook}"
        deleted = call("DELETE", api.base + url, headers=headers)
        if deleted.status != 200:
            failures.append((round_, deleted.status, deleted.text[:200]))
    assert not failures, failures
    assert "Traceback" not in api.stack.logs()


@pytest.mark.postgres
def test_a_deadlock_victim_is_run_again(pg_database, postgres_url):
    """retry_deadlocks, which the deletes use, against a real PostgreSQL deadlock.

    Which side PostgreSQL aborts depends on whose deadlock check runs first (each backend checks
    deadlock_timeout after it began to wait). The adversary's session waits 10 s before checking, so we
    are the victim unless the machine stalls for seconds; either way each transaction's effect lands at
    most once, ours exactly once, and when we were the victim we ran again. The adversary takes its second
    lock only once PostgreSQL shows our session waiting for a lock (pg_stat_activity), not after a sleep."""
    import threading

    import psycopg2
    from psycopg2 import errors as pg_errors

    from nexusctl.db.database import retry_deadlocks

    pg_database.execute_sql("CREATE TABLE fault_locks (id int PRIMARY KEY, n int)")
    pg_database.execute_sql("INSERT INTO fault_locks VALUES (1, 0), (2, 0)")
    other, watcher = psycopg2.connect(postgres_url), psycopg2.connect(postgres_url)
    watcher.autocommit = True
    holds_one, holds_two = threading.Event(), threading.Event()
    ours: list[int] = []  # our session's backend pid
    adversary_lost = []

    def waiting_for_a_lock() -> bool:
        with watcher.cursor() as cur:
            cur.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", ours)
            return cur.fetchone() == ("Lock",)

    def adversary():  # locks 1, then 2: the opposite order, and it starts waiting after us
        try:
            with other, other.cursor() as cur:
                cur.execute("SET LOCAL deadlock_timeout = '10s'")  # we check first: we are the victim
                cur.execute("UPDATE fault_locks SET n = n + 1 WHERE id = 1")
                holds_one.set()
                holds_two.wait(10)
                wait_for(waiting_for_a_lock, 10, "our session to wait for row 1")
                cur.execute("UPDATE fault_locks SET n = n + 1 WHERE id = 2")
        except pg_errors.DeadlockDetected:
            adversary_lost.append(True)  # PostgreSQL picked the adversary after all: rolled back

    tries = []

    def transaction():
        tries.append(1)
        with pg_database.atomic():
            pg_database.execute_sql("UPDATE fault_locks SET n = n + 10 WHERE id = 2")
            if len(tries) == 1:
                ours.append(pg_database.execute_sql("SELECT pg_backend_pid()").fetchone()[0])
                holds_one.wait(10)
                holds_two.set()
            pg_database.execute_sql("UPDATE fault_locks SET n = n + 10 WHERE id = 1")

    thread = threading.Thread(target=adversary)
    thread.start()
    retry_deadlocks(transaction)
    thread.join(15)
    other.close()
    watcher.close()
    rows = pg_database.execute_sql("SELECT n FROM fault_locks ORDER BY id").fetchall()
    if adversary_lost:  # we won the deadlock: ran once, the adversary's effect is gone
        assert len(tries) == 1 and rows == [(10,), (10,)]
    else:  # we were the victim and ran again (a loaded machine may need more than one rerun)
        assert len(tries) >= 2 and rows == [(11,), (11,)]


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "abc",  # one segment
        f"{_b64(bytes([0xFF, 0xFE]))}.e30.x",  # a header that is not UTF-8
        f"{_b64(b'not json')}.e30.x",  # a header that is not JSON
        f"{_b64(b'[1]')}.e30.x",  # JSON, not an object
        _b64(b'{"alg":"HS256"}') + "." + _b64(bytes([0xFF])) + ".%%%",  # a payload and signature that are not base64
    ],
    ids=["segments", "utf8", "json", "array", "base64"],
)
def test_an_undecodable_bearer_token_gets_one_fixed_answer(api, token):  # noqa: F811
    """Whatever PyJWT's decoder said (codec, JSON, padding errors) stays out of the answer."""
    answer = call(
        "GET", f"{api.base}/integrations/user/{api.world.owner}", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status == 401
    assert answer.json()["error"] == {"code": "UNAUTHORIZED", "message": "invalid token: not a well-formed JWT"}


def test_a_token_signed_with_another_key_is_told_its_signature_does_not_verify(api):  # noqa: F811
    """A well-formed JWT under the wrong key was told "not a well-formed JWT" (PyJWT's InvalidSignatureError is a
    DecodeError): true of neither, and no help to whoever set up the key."""
    answer = call(
        "GET", f"{api.base}/integrations/user/{api.world.owner}", headers=bearer("bad_signature", api.world.owner, None)
    )
    assert answer.status == 401
    assert answer.json()["error"] == {"code": "UNAUTHORIZED", "message": "invalid token: the signature does not verify"}


def _with_two_authorizations(daemon, path: str, first: str, second: str):
    parts = urllib.parse.urlsplit(daemon.base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path)
        conn.putheader("Authorization", first)
        conn.putheader("Authorization", second)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_two_authorization_headers_are_refused_whichever_comes_first(api):  # noqa: F811
    """The first was used: with a proxy in front that checked the other, a request could pass as someone else."""
    owner = bearer("owner", api.world.owner, api.world.other)["Authorization"]
    other = bearer("other", api.world.owner, api.world.other)["Authorization"]
    for path in (f"/integrations/user/{api.world.owner}", f"/integrations/{api.world.integration}/proxy/users/@me"):
        for first, second in ((owner, other), (other, owner), (owner, owner), (owner, "Bearer nonsense")):
            status, body = _with_two_authorizations(api, path, first, second)
            assert status == 401, (path, status, body)
            assert body["error"]["code"] == "UNAUTHORIZED" and "more than one Authorization" in body["error"]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/integrations/user/{owner}",
        "/integrations/user/{owner}?limit=1",
        "/integrations/webhooks",
        "/integrations/{integration}",
        "/health",
        "/ready",
    ],
)
def test_an_unknown_query_parameter_is_ignored(api, path):  # noqa: F811
    """A cache-buster (`?_=...`, as jQuery adds) or a tracking parameter changes nothing: same status, same data."""
    world = api.world
    url = api.base + path.format(owner=world.owner, integration=world.integration)
    headers = bearer("owner", world.owner, world.other)
    plain = call("GET", url, headers=headers)
    busted = call("GET", url + ("&" if "?" in url else "?") + "_=1733356800&utm_source=mail", headers=headers)
    assert plain.status == 200, plain.text
    assert busted.status == 200, busted.text
    assert busted.json()["data"] == plain.json()["data"]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/health", None),
        ("GET", "/ready", None),
        ("GET", "/integrations/user/{owner}", None),
        ("GET", "/integrations/no-such-route/x", None),
        ("GET", "/integrations/{integration}?limit=x", None),
        ("POST", "/integrations/oauth/initiate", b"{"),
    ],
)
def test_every_json_answer_ends_with_a_newline(api, method, path, body):  # noqa: F811
    """/health, /ready, data and errors alike: `curl` output leaves the prompt on its own line."""
    world = api.world
    url = api.base + path.format(owner=world.owner, integration=world.integration)
    answer = call(
        method,
        url,
        headers={**bearer("owner", world.owner, world.other), "Content-Type": "application/json"},
        data=body,
    )
    assert answer.headers.get("Content-Type", "").startswith("application/json")
    assert answer.body.endswith(b"}\n") and json.loads(answer.body) is not None


# --- the text log cannot be forged ------------------------------------------------------------


def test_control_characters_in_a_request_path_are_escaped_in_the_text_log(api):  # noqa: F811
    """The path is logged percent-decoded: %0a was a real newline (a forged log line), %1b a terminal escape."""
    marker = uuid.uuid4().hex
    forged = f"info: GET /integrations/{marker}-forged 200 0.1ms"
    path = f"/integrations/{marker}%0a" + urllib.parse.quote(forged, safe="") + "%0d%1b[2J%c2%85%e2%80%a8%e2%80%aeend"
    answer = call("GET", api.base + path, headers=_owner(api))
    assert answer.status == 400, answer.text  # not a UUID
    lines = wait_for(
        lambda: [line for line in api.stack.logs().splitlines() if marker in line] or None,
        what="the request's log line",
    )
    assert len(lines) == 1, lines  # one request, one line: nothing after the newline became a line of its own
    (line,) = lines
    assert f"{marker}\\x0a{forged}\\x0d\\x1b[2J\\x85\\u2028\\u202eend" in line, line
    assert not any(ch in api.stack.logs() for ch in ("\x1b", "\r", "\x85", "\u2028", "\u202e"))


# --- metadata is bounded by size as well as keys ----------------------------------------------

MANY_KEYS = {f"k{i}": i for i in range(51)}
HUGE_VALUE = {"note": "x" * (16 * 1024)}
METADATA_WRITES = [
    (
        "POST",
        "/integrations/oauth/initiate",
        {"userId": "{owner}", "provider": "DISCORD", "redirectUri": "http://app.nexus.test/x"},
    ),
    ("POST", "/integrations/api-key", {"userId": "{owner}", "provider": "SENDGRID", "apiKey": "{sendgrid}"}),
    ("PATCH", "/integrations/{id}", {}),
    ("POST", "/integrations/webhooks", {"integrationId": "{id}", "url": "{hook}", "events": ["post.*"]}),
    ("PATCH", "/integrations/webhooks/{webhookId}", {}),
]


def _metadata_write(api, method, path, body, metadata):  # noqa: F811
    fill = {
        "{owner}": str(api.world.owner),
        "{id}": api.world.integration,
        "{hook}": api.receiver.url(),
        "{sendgrid}": api.stack.emulators.sendgrid_key(),
    }
    body = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    url = api.base + re.sub(r"{(\w+)}", lambda m: api.world.path_value(m.group(1)), path)
    return call(method, url, json_body={**body, "metadata": metadata}, headers=_owner(api))


@pytest.mark.parametrize(("method", "path", "body"), METADATA_WRITES, ids=[f"{m} {p}" for m, p, _ in METADATA_WRITES])
@pytest.mark.parametrize(
    "metadata",
    [MANY_KEYS, HUGE_VALUE, {"a": [{"b": "x" * 9000}, "y" * 9000]}],
    ids=["51 keys", "one 16 KB value", "nested 18 KB"],
)
def test_metadata_over_its_bound_is_a_413_on_every_write(api, method, path, body, metadata):  # noqa: F811
    answer = _metadata_write(api, method, path, body, metadata)
    assert answer.status == 413, (answer.status, answer.text[:300])
    error = answer.json()["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE" and "metadata" in error["message"], error


@pytest.mark.parametrize(("method", "path", "body"), METADATA_WRITES, ids=[f"{m} {p}" for m, p, _ in METADATA_WRITES])
def test_metadata_within_its_bound_is_kept(api, method, path, body):  # noqa: F811
    metadata = {f"k{i}": "v" * 300 for i in range(50)}  # 50 keys, ~15.6 KB
    answer = _metadata_write(api, method, path, body, metadata)
    assert answer.status in (200, 201), (answer.status, answer.text[:300])


def test_an_oauth_flow_with_oversized_metadata_leaves_no_pending_flow(api):  # noqa: F811
    """Refused before anything is kept: the flow store (Redis with PostgreSQL, the oauth_states table on
    SQLite) holds the accepted flow only."""
    if api.kind == "postgres":
        import redis

        from nexusctl.core.oauth_states import REDIS_PREFIX

        client = redis.Redis.from_url(api.stack.env["REDIS_URL"])
        flows = lambda: len(list(client.scan_iter(f"{REDIS_PREFIX}*")))  # noqa: E731
    else:
        import sqlite3

        path = api.stack.database_url.removeprefix("sqlite:///")

        def flows() -> int:
            with sqlite3.connect(path) as conn:
                return conn.execute("SELECT COUNT(*) FROM oauth_states").fetchone()[0]

    before = flows()
    assert _metadata_write(api, *METADATA_WRITES[0], {"small": 1}).status == 200 and flows() == before + 1
    answer = _metadata_write(api, *METADATA_WRITES[0], HUGE_VALUE)
    assert answer.status == 413 and flows() == before + 1
