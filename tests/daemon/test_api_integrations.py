"""The integration routes through the real app: auth matrix, ownership, bad input, envelopes."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nexusctl import config
from nexusctl.daemon.api_proxy import PATH as PROXY
from nexusctl.daemon.app import create_app
from nexusctl.daemon.routes import ROUTES
from nexusctl.db.models import Integration, IntegrationSyncLog, Webhook
from nexusctl.enums import Provider, SyncStatus

OWNER = uuid.UUID("6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60")
STRANGER = uuid.UUID("11111111-2222-4333-8444-555555555555")


def sign(claims=None, *, key=None, algorithm="HS256", **overrides):
    secret = key or config.jwt_signing_secret(config.load()).get()
    now = int(time.time())
    body = {"sub": str(OWNER), "iat": now, "exp": now + 300, **(claims or {}), **overrides}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm=algorithm)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(db_url, aiohttp_client, monkeypatch):
    monkeypatch.setenv("SLACK_CLIENT_ID", "matrix-client")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "matrix-secret")
    # Provider calls fail fast here (nothing listens on port 9): the matrix is about who gets in.
    monkeypatch.setenv("SENDGRID_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("INSTAGRAM_API_URL", "http://127.0.0.1:9")
    return await aiohttp_client(create_app(config.load()))


@pytest.fixture
def owned(make_integration, keyring):
    from nexusctl.db.models import WebhookDelivery
    from nexusctl.db.secrets import seal

    row = make_integration(user_id=OWNER, provider=Provider.INSTAGRAM, name="@owner", scope=["basic"])
    IntegrationSyncLog.create(integration=row, action="fetch_posts", status=SyncStatus.COMPLETED)
    hook = Webhook(integration=row, url="http://127.0.0.1:9/hook", events=["post.*"])
    seal(keyring, hook, "secret", "whsec_" + "A" * 43)
    hook.save(force_insert=True)
    row.hook_id = hook.id
    row.delivery_id = WebhookDelivery.create(webhook=hook, event="post.created", payload={"a": 1}, status="FAILED").id
    return row


def _requests(row_id, hook_id="h", delivery_id="d"):
    """One request per protected route, as its owner would make it."""
    return {
        ("POST", "/integrations/webhooks"): (
            "POST",
            "/integrations/webhooks",
            {"integrationId": str(row_id), "url": "http://127.0.0.1:9/x", "events": ["*"]},
        ),
        ("GET", "/integrations/webhooks"): ("GET", f"/integrations/webhooks?integrationId={row_id}", None),
        ("GET", "/integrations/webhooks/{webhookId}"): ("GET", f"/integrations/webhooks/{hook_id}", None),
        ("PATCH", "/integrations/webhooks/{webhookId}"): (
            "PATCH",
            f"/integrations/webhooks/{hook_id}",
            {"events": ["post.created"]},
        ),
        ("DELETE", "/integrations/webhooks/{webhookId}"): ("DELETE", f"/integrations/webhooks/{hook_id}", None),
        ("GET", "/integrations/webhooks/{webhookId}/deliveries"): (
            "GET",
            f"/integrations/webhooks/{hook_id}/deliveries",
            None,
        ),
        ("POST", "/integrations/webhooks/{webhookId}/test"): ("POST", f"/integrations/webhooks/{hook_id}/test", None),
        ("POST", "/integrations/webhooks/{webhookId}/rotate-secret"): (
            "POST",
            f"/integrations/webhooks/{hook_id}/rotate-secret",
            None,
        ),
        ("GET", "/integrations/webhooks/deliveries/{deliveryId}"): (
            "GET",
            f"/integrations/webhooks/deliveries/{delivery_id}",
            None,
        ),
        ("POST", "/integrations/webhooks/deliveries/{deliveryId}/redeliver"): (
            "POST",
            f"/integrations/webhooks/deliveries/{delivery_id}/redeliver",
            None,
        ),
        ("POST", "/integrations/{id}/events"): (
            "POST",
            f"/integrations/{row_id}/events",
            {"type": "post.created", "data": {}},
        ),
        ("GET", "/integrations/providers"): ("GET", "/integrations/providers", None),
        ("GET", "/integrations/user/{userId}"): ("GET", f"/integrations/user/{OWNER}", None),
        ("GET", "/integrations/{id}"): ("GET", f"/integrations/{row_id}", None),
        ("PATCH", "/integrations/{id}"): ("PATCH", f"/integrations/{row_id}", {"name": "renamed"}),
        ("DELETE", "/integrations/{id}"): ("DELETE", f"/integrations/{row_id}", None),
        ("GET", "/integrations/{id}/sync-logs"): ("GET", f"/integrations/{row_id}/sync-logs", None),
        ("GET", "/integrations/{id}/health"): ("GET", f"/integrations/{row_id}/health", None),
        ("GET", "/integrations/user/{userId}/health"): ("GET", f"/integrations/user/{OWNER}/health", None),
        ("POST", "/integrations/oauth/initiate"): (
            "POST",
            "/integrations/oauth/initiate",
            {"userId": str(OWNER), "provider": "SLACK", "redirectUri": "http://localhost:3000/connected"},
        ),
        ("POST", "/integrations/api-key"): (
            "POST",
            "/integrations/api-key",
            {"userId": str(OWNER), "provider": "SENDGRID", "apiKey": "SG.matrix.key"},
        ),
        ("POST", "/integrations/{id}/refresh"): ("POST", f"/integrations/{row_id}/refresh", None),
        ("POST", "/integrations/{id}/sync"): ("POST", f"/integrations/{row_id}/sync", {"action": "fetch_posts"}),
        ("POST", "/integrations/events"): (
            "POST",
            "/integrations/events",
            {"events": [{"integrationId": str(row_id), "type": "post.created"}]},
        ),
        ("POST", "/integrations/{id}/comments/{commentId}/replies"): (
            "POST",
            f"/integrations/{row_id}/comments/17900000000000001/replies",
            {"text": "thanks"},
        ),
        ("POST", "/integrations/events/ingest"): (
            "POST",
            "/integrations/events/ingest",
            {"type": "content.published", "data": {"userId": str(OWNER), "contentId": "c-1"}},
        ),
        **{
            (method, PROXY): (method, f"/integrations/{row_id}/proxy/me", None)
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        },
    }


# These reach a provider, unreachable here: a caller who gets in sees PROVIDER_ERROR, not 200.
REACHES_PROVIDER = {"/integrations/api-key", "/integrations/{id}/refresh", PROXY}
# These refuse the fixture's integration past the auth check: its grant (["basic"]) lacks the comment scope.
PAST_AUTH = {"/integrations/{id}/comments/{commentId}/replies": (403, "MISSING_SCOPES")}


def test_every_protected_route_is_in_the_matrix():
    protected = {(r.method, r.path) for r in ROUTES if not r.public}
    assert protected == set(_requests("x"))


EXPIRED = {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}
CALLERS = {
    "no token": (None, 401),
    "garbage": ("not.a.jwt", 401),
    "expired": (lambda: sign(EXPIRED), 401),
    "wrong signature": (lambda: sign(key="another-secret-another-secret-xx"), 401),
    "no exp": (lambda: sign(exp=None), 401),
    "alg none": (lambda: jwt.encode({"sub": str(OWNER), "exp": int(time.time()) + 60}, None, algorithm="none"), 401),
    "other user": (lambda: sign(sub=str(STRANGER)), "denied"),
    "owner": (lambda: sign(), 200),
    "admin": (lambda: sign(sub=str(STRANGER), roles=["admin"]), 200),
    "admin naming itself": (lambda: sign(sub="ops-console", roles=["admin"]), 200),
    "service": (lambda: sign(sub="content-service", roles=["service"]), 200),
}


@pytest.mark.parametrize("route", sorted(_requests("x")), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("caller", list(CALLERS))
async def test_authorization_matrix(api, owned, route, caller):
    method, path, body = _requests(owned.id, owned.hook_id, owned.delivery_id)[route]
    token, expected = CALLERS[caller]
    if route[1] == "/integrations/events/ingest" and caller in ("owner", "other user"):
        expected = 403  # users cannot speak for the platform (user.deleted ...): service or admin only
    if route[1] == PROXY and caller.startswith("admin"):
        expected = "denied"  # the proxy acts as the user at their provider: the owner or the service role only
    headers = bearer(token() if callable(token) else token) if token else {}
    response = await api.request(method, path, json=body, headers=headers)
    payload = await response.json()
    if route[1] == "/integrations/events" and expected in ("denied", 200):
        # A batch answers each event: someone else's integration is refused alone, as not found.
        assert response.status == 202, payload
        (result,) = payload["data"]["results"]
        if expected == "denied":
            assert result["error"]["code"] == "INTEGRATION_NOT_FOUND", payload
        else:
            assert "error" not in result and result["integrationId"] == str(owned.id), payload
        return
    if expected == "denied":
        if route[1] == "/integrations/providers":
            expected = 200  # not user data
        elif route[1] in (
            "/integrations/user/{userId}",
            "/integrations/user/{userId}/health",
            "/integrations/oauth/initiate",
            "/integrations/api-key",
        ):
            expected = 403  # naming another user
        else:
            expected = 404  # someone else's integration does not exist for you
    if expected == 200 and route[1] in PAST_AUTH:
        assert (response.status, payload["error"]["code"]) == PAST_AUTH[route[1]], payload
        return
    if expected == 200 and route[1] in REACHES_PROVIDER:
        assert response.status == 502 and payload["error"]["code"] == "PROVIDER_ERROR", payload
        return
    if expected == 200 and response.status in (201, 202):
        expected = response.status  # created / queued
    if expected == 404 and "webhook" in route[1]:
        assert response.status == 404 and payload["error"]["code"] in (
            "WEBHOOK_NOT_FOUND",
            "DELIVERY_NOT_FOUND",
            "INTEGRATION_NOT_FOUND",
        ), payload
        return
    assert response.status == expected, payload
    assert payload["success"] is (expected in (200, 201, 202))
    if expected == 404:
        assert payload["error"]["code"] == "INTEGRATION_NOT_FOUND"
        assert Integration.select().where(Integration.id == owned.id).exists()


async def test_list_filters_and_pages(api, make_integration):
    rows = [
        make_integration(user_id=OWNER, provider=Provider.SLACK if i % 2 else Provider.DISCORD, is_active=i != 0)
        for i in range(5)
    ]
    headers = bearer(sign())
    response = await api.get(
        f"/integrations/user/{OWNER}", params={"provider": "SLACK", "isActive": "true"}, headers=headers
    )
    body = await response.json()
    assert [d["id"] for d in body["data"]] == [str(rows[3].id), str(rows[1].id)]
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await api.get(f"/integrations/user/{OWNER}", params=params, headers=headers)).json()
        seen += [d["id"] for d in page["data"]]
        cursor = page["paging"]["nextCursor"]
        if not page["paging"]["hasMore"]:
            break
    assert seen == [str(r.id) for r in reversed(rows)]


async def test_responses_carry_the_spec_fields_and_never_a_token(api, make_integration):
    row = make_integration(user_id=OWNER, access_token="API-LEAK-A", refresh_token="API-LEAK-R")
    response = await api.get(f"/integrations/{row.id}", headers=bearer(sign()))
    text = await response.text()
    data = (await response.json())["data"]
    assert {
        "id",
        "userId",
        "organizationId",
        "provider",
        "name",
        "isActive",
        "scope",
        "metadata",
        "lastSyncAt",
        "lastError",
        "expiresAt",
        "tokenType",
    } <= set(data)
    assert "API-LEAK" not in text and "nx1." not in text and "accessToken" not in text


async def test_patch_and_delete(api, owned):
    headers = bearer(sign())
    Webhook.create(integration=owned, url="https://example.com/h")
    patched = await api.patch(
        f"/integrations/{owned.id}", json={"isActive": False, "metadata": {"a": 1}}, headers=headers
    )
    data = (await patched.json())["data"]
    assert patched.status == 200 and data["isActive"] is False and data["metadata"] == {"a": 1}
    deleted = await api.delete(f"/integrations/{owned.id}", headers=headers)
    assert (await deleted.json())["data"]["webhooksDeleted"] == 2  # the fixture's and this one
    again = await api.get(f"/integrations/{owned.id}", headers=headers)
    assert again.status == 404


async def test_sync_logs_route(api, owned):
    response = await api.get(
        f"/integrations/{owned.id}/sync-logs", params={"status": "COMPLETED"}, headers=bearer(sign())
    )
    body = await response.json()
    assert response.status == 200 and [d["action"] for d in body["data"]] == ["fetch_posts"]
    assert body["paging"]["hasMore"] is False


async def test_providers_route_says_which_are_configured(db_url, monkeypatch, aiohttp_client):
    monkeypatch.setenv("SLACK_CLIENT_ID", "id")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "shh-secret")
    api = await aiohttp_client(create_app(config.load()))
    response = await api.get("/integrations/providers", headers=bearer(sign()))
    text = await response.text()
    data = {p["provider"]: p for p in (await response.json())["data"]}
    assert len(data) == 20 and data["SLACK"]["configured"] and not data["DISCORD"]["configured"]
    assert data["SHOPIFY"]["capabilities"] == ["products", "orders", "inventory"]
    # Slack commands and Discord webhooks: listed as actions with the scopes they need (issue 18).
    slack = {a["name"]: a for a in data["SLACK"]["actions"]}
    assert slack["slack.command"]["capability"] == "commands" and slack["slack.command"]["scopes"] == ["commands"]
    assert "/integrations/inbound/slack/commands" in slack["slack.command"]["how"]
    discord = {a["name"]: a for a in data["DISCORD"]["actions"]}
    assert discord["publish.webhook"] == {
        **discord["publish.webhook"],
        "capability": "webhooks",
        "scopes": ["webhook.incoming"],
        "optional": True,
    }
    assert data["SHOPIFY"]["actions"] == []
    assert "shh-secret" not in text


BAD = [
    ("GET", "/integrations/not-a-uuid", None, None, 400, "integrationId"),
    ("GET", "/integrations/user/bob", None, None, 400, "userId"),
    ("GET", f"/integrations/user/{OWNER}", {"provider": "MYSPACE"}, None, 400, "provider"),
    ("GET", f"/integrations/user/{OWNER}", {"isActive": "maybe"}, None, 400, "isActive"),
    ("GET", f"/integrations/user/{OWNER}", {"limit": "0"}, None, 400, "limit"),
    ("GET", f"/integrations/user/{OWNER}", {"limit": "ten"}, None, 400, "limit"),
    ("GET", f"/integrations/user/{OWNER}", {"cursor": "zzz"}, None, 400, "cursor"),
    # An unknown query parameter (?sort=, a cache-buster ?_=) is ignored, not refused:
    # tests/fault/test_api_security.py::test_an_unknown_query_parameter_is_ignored.
    ("PATCH", "ID", None, {"name": ""}, 400, "name"),
    ("PATCH", "ID", None, {"name": 5}, 400, "name"),
    ("PATCH", "ID", None, {"name": "evil\u001b]0;pwned\u0007\u001b[2J"}, 400, "name contains a control character"),
    ("PATCH", "ID", None, {"name": "csi\u009b2J"}, 400, "name contains a control character (\\u009b)"),
    # The bidi controls reorder what a reader sees after them ("\u202e" makes "gnp.exe" read "exe.png").
    ("PATCH", "ID", None, {"name": "a\u202eb"}, 400, "name contains a control character (\\u202e)"),
    ("PATCH", "ID", None, {"name": "a\u2066b"}, 400, "name contains a control character (\\u2066)"),
    ("PATCH", "ID", None, {"name": "a\u200fb"}, 400, "name contains a control character (\\u200f)"),
    ("PATCH", "ID", None, {"name": "a\u061cb"}, 400, "name contains a control character (\\u061c)"),
    # Beyond 100 years an interval was an OverflowError (a 500) computing the next run.
    ("PATCH", "ID", None, {"metadata": {"syncSchedule": "99999999999d"}}, 400, "syncSchedule"),
    ("PATCH", "ID", None, {"metadata": {"syncSchedule": "3000000d"}}, 400, "at most 100 years"),
    ("PATCH", "ID", None, {"isActive": "yes"}, 400, "isActive"),
    ("PATCH", "ID", None, {"metadata": [1]}, 400, "metadata"),
    ("PATCH", "ID", None, {"token": "x"}, 400, "token"),
    ("PATCH", "ID", None, {}, 400, "give at least one"),
    ("PATCH", "ID", None, [1, 2], 400, "JSON object"),
]


@pytest.mark.parametrize("method, path, params, body, status, mention", BAD)
async def test_bad_input_is_a_4xx_naming_the_field(api, owned, method, path, params, body, status, mention):
    path = f"/integrations/{owned.id}" if path == "ID" else path
    response = await api.request(method, path, params=params, json=body, headers=bearer(sign()))
    payload = await response.json()
    assert response.status == status and payload["error"]["code"] in ("VALIDATION_ERROR", "INVALID_PROVIDER")
    assert mention in payload["error"]["message"]


async def test_malformed_json_wrong_content_type_and_huge_bodies(api, owned):
    headers = bearer(sign())
    path = f"/integrations/{owned.id}"
    broken = await api.patch(path, data=b'{"name": ', headers={**headers, "Content-Type": "application/json"})
    assert broken.status == 400 and "not valid JSON" in (await broken.json())["error"]["message"]
    form = await api.patch(
        path, data=b"name=x", headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status == 400 and "Content-Type" in (await form.json())["error"]["message"]
    huge = await api.patch(
        path,
        data=b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert huge.status == 413 and (await huge.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert Integration.get_by_id(owned.id).name == "@owner"


@pytest.fixture
def rsa_keys(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "user-service.pub"
    path.write_bytes(pem)
    return private, path, pem


async def test_rs256_tokens_with_a_public_key(db_url, rsa_keys, monkeypatch, aiohttp_client):
    private, path, pem = rsa_keys
    monkeypatch.setenv("JWT_PUBLIC_KEY", str(path))
    api = await aiohttp_client(create_app(config.load()))
    good = await api.get(f"/integrations/user/{OWNER}", headers=bearer(sign(key=private, algorithm="RS256")))
    assert good.status == 200
    # Algorithm confusion: an HS256 token "signed" with the public key must not pass.
    forged = jwt.api_jws.PyJWS()
    forged._algorithms["HS256"].prepare_key = lambda key: key  # let PyJWT sign with PEM bytes, as an attacker would
    token = forged.encode(
        b'{"sub": "%s", "exp": %d}' % (str(OWNER).encode(), int(time.time()) + 60), pem, algorithm="HS256"
    )
    bad = await api.get(f"/integrations/user/{OWNER}", headers=bearer(token))
    assert bad.status == 401


async def test_issuer_and_audience_are_enforced_when_set(db_url, monkeypatch, aiohttp_client):
    monkeypatch.setenv("JWT_SECRET", "s" * 40)
    monkeypatch.setenv("JWT_ISSUER", "https://users.nexus")
    monkeypatch.setenv("JWT_AUDIENCE", "integration-service")
    api = await aiohttp_client(create_app(config.load()))
    path = f"/integrations/user/{OWNER}"
    right = sign(key="s" * 40, iss="https://users.nexus", aud="integration-service")
    assert (await api.get(path, headers=bearer(right))).status == 200
    for wrong in (
        sign(key="s" * 40, iss="https://evil", aud="integration-service"),
        sign(key="s" * 40, iss="https://users.nexus", aud="billing"),
        sign(key="s" * 40),
    ):
        assert (await api.get(path, headers=bearer(wrong))).status == 401


LENIENT = {
    "sub urn:uuid": {"sub": f"urn:uuid:{OWNER}"},
    "sub upper case": {"sub": str(OWNER).upper()},
    "sub in braces": {"sub": "{%s}" % OWNER},
    "sub without hyphens": {"sub": OWNER.hex},
    "upper-case sub with a role": {"sub": str(OWNER).upper(), "roles": ["service"]},
    "roles as a string": {"roles": "admin"},
    "roles as an object": {"roles": {"admin": True}},
    "a year's lifetime": {"iat": int(time.time()), "exp": int(time.time()) + 365 * 86400},
    "lifetime just over 24 h": {"iat": int(time.time()) - 60, "exp": int(time.time()) + 86400},
}


_NOW = int(time.time())
# A signed token whose dates are not JSON numbers of seconds was a 500 (exp - iat on a string).
BAD_DATES = {
    "exp as a numeric string": {"exp": str(_NOW + 300)},
    "iat as a numeric string": {"iat": str(_NOW)},
    "nbf as a numeric string": {"nbf": str(_NOW - 10)},
    "exp as text": {"exp": "tomorrow"},
    "nbf as text": {"nbf": "yesterday"},
    "exp true": {"exp": True},
    "iat true": {"iat": True},
    "exp null": {"exp": None, "iat": None},  # dropped by sign(): a missing exp
    "iat as an array": {"iat": [_NOW]},
    "exp NaN": {"exp": float("nan")},
    "iat NaN": {"iat": float("nan")},
    "exp infinite": {"exp": float("inf")},
    "exp beyond 9999": {"exp": 10**30, "iat": None},
    "exp beyond any float": {"exp": 10**400, "iat": None},
    "iat negative": {"iat": -1},
}


@pytest.mark.parametrize("case", list(BAD_DATES))
async def test_dates_that_are_not_numbers_are_401_not_500(api, case):
    response = await api.get(f"/integrations/user/{OWNER}", headers=bearer(sign(BAD_DATES[case])))
    payload = await response.json()
    assert response.status == 401 and payload["error"]["code"] == "UNAUTHORIZED", payload
    message = payload["error"]["message"]
    assert any(name in message for name in ("exp", "iat", "nbf")), message
    assert "not a JWT" not in message, message


async def test_fractional_dates_are_numbers_too(api):
    now = time.time()
    token = sign(iat=now - 0.5, nbf=now - 1.25, exp=now + 300.5)
    response = await api.get(f"/integrations/user/{OWNER}", headers=bearer(token))
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("case", list(LENIENT))
async def test_lenient_claims_are_refused(api, case):
    response = await api.get(f"/integrations/user/{OWNER}", headers=bearer(sign(LENIENT[case])))
    payload = await response.json()
    assert response.status == 401 and payload["error"]["code"] == "UNAUTHORIZED", payload
    message = payload["error"]["message"]
    assert any(word in message for word in ("sub", "roles", "JWT_MAX_AGE")), message


async def test_strict_claims_still_let_the_callers_in(api):
    path = f"/integrations/user/{OWNER}"
    now = int(time.time())
    for token in (
        sign(),  # canonical sub, iat + 5 min
        sign(iat=None, exp=now + 365 * 86400),  # no iat: its exp alone bounds it (documented)
        sign(iat=now, exp=now + 86400),  # exactly JWT_MAX_AGE
        sign(roles=[]),
        sign(sub="content-service", roles=["service"]),  # a service token names itself
        sign(sub=str(STRANGER), roles=["admin", "other"]),
    ):
        response = await api.get(path, headers=bearer(token))
        assert response.status == 200, await response.text()


async def test_jwt_max_age_is_configurable(db_url, monkeypatch, aiohttp_client):
    monkeypatch.setenv("JWT_MAX_AGE", "10m")
    api = await aiohttp_client(create_app(config.load()))
    path, now = f"/integrations/user/{OWNER}", int(time.time())
    assert (await api.get(path, headers=bearer(sign(iat=now, exp=now + 600)))).status == 200
    refused = await api.get(path, headers=bearer(sign(iat=now, exp=now + 900)))
    assert refused.status == 401 and "JWT_MAX_AGE (600 s)" in (await refused.json())["error"]["message"]


async def test_minted_tokens_work_against_the_daemon(cli, aiohttp_client):
    token = cli("token", "mint", "--user", OWNER, "--ttl", "60").stdout.strip()
    api = await aiohttp_client(create_app(config.load()))
    assert (await api.get(f"/integrations/user/{OWNER}", headers=bearer(token))).status == 200
    assert (await api.get(f"/integrations/user/{STRANGER}", headers=bearer(token))).status == 403
    service = cli("token", "mint", "--role", "service", "--subject", "content-service").stdout.strip()
    assert (await api.get(f"/integrations/user/{STRANGER}", headers=bearer(service))).status == 200
    refused = cli("token", "mint")
    assert refused.exit_code == 2 and "--user" in refused.stderr
    day = cli("token", "mint", "--user", OWNER, "--ttl", "86400").stdout.strip()  # the longest the daemon takes
    assert (await api.get(f"/integrations/user/{OWNER}", headers=bearer(day))).status == 200
    too_long = cli("token", "mint", "--user", OWNER, "--ttl", "86401")
    assert too_long.exit_code == 2 and "JWT_MAX_AGE" in too_long.stderr and not too_long.stdout
    tour = cli("token", "mint", "--role", "admin", "--subject", "tour").stdout.strip()  # README's first steps
    assert (await api.get(f"/integrations/user/{STRANGER}", headers=bearer(tour))).status == 200


def test_listed_actions_need_the_scopes_the_health_check_knows():
    """The catalog's actions and nexusctl/providers/scopes.py say the same; an optional scope is one initiate offers."""
    from nexusctl.config import APPROVAL_SCOPES
    from nexusctl.providers.adapters.tiktok import BUSINESS_ONLY, BUSINESS_SCOPES
    from nexusctl.providers.catalog import ACTIONS
    from nexusctl.providers.registry import SPECS
    from nexusctl.providers.scopes import NEEDS
    from nexusctl.providers.sync.registry import actions_of

    for provider, actions in ACTIONS.items():
        for action in actions:
            # NEEDS keys a sync action (fetch_analytics), publishing and replies by their names, the rest by capability.
            key = action.name if action.name in NEEDS[provider] else action.capability
            assert NEEDS[provider][key] == action.scopes, (provider, action.name)
            asked = SPECS[provider].optional_scopes if action.optional else SPECS[provider].scopes
            if provider is Provider.TIKTOK and action.name in BUSINESS_ONLY:  # a TikTok API for Business app's
                asked = BUSINESS_SCOPES
            approval = set(APPROVAL_SCOPES.get(provider, ()))  # asked for once the operator says the app has it
            assert set(action.scopes) <= set(asked) | approval, (provider, action.name)
            if set(action.scopes) & approval:
                assert "approval-only" in action.how, (provider, action.name)
    # The social providers advertising analytics have the action (the ad platforms' is fetch_campaigns' insights).
    for provider in (
        Provider.TIKTOK,
        Provider.INSTAGRAM,
        Provider.FACEBOOK,
        Provider.YOUTUBE,
        Provider.TWITTER,
        Provider.LINKEDIN,
    ):
        assert "fetch_analytics" in actions_of(provider), provider
        assert "fetch_analytics" in [a.name for a in ACTIONS[provider]], provider
    from nexusctl.providers.sync.comments import REPLIERS

    for provider in REPLIERS:  # every provider one can reply to comments on lists the reply with its scopes
        (reply,) = [a for a in ACTIONS[Provider(provider)] if a.name == "reply_comment"]
        assert reply.capability == "comments" and reply.scopes == NEEDS[Provider(provider)]["reply_comment"]


@pytest.mark.parametrize("events", [["webhook.failed"], ["post.*", "webhook.*"], ["webhook.delivered"]])
async def test_webhook_events_are_refused_on_create_and_update(api, owned, events):
    body = {"integrationId": str(owned.id), "url": "http://127.0.0.1:9/x", "events": events}
    created = await api.post("/integrations/webhooks", json=body, headers=bearer(sign()))
    payload = await created.json()
    assert created.status == 400 and payload["error"]["code"] == "VALIDATION_ERROR", payload
    assert "events list" in payload["error"]["message"] and "loop" in payload["error"]["message"]
    changed = await api.patch(
        f"/integrations/webhooks/{owned.hook_id}", json={"events": events}, headers=bearer(sign())
    )
    assert changed.status == 400 and (await changed.json())["error"]["code"] == "VALIDATION_ERROR"
    assert Webhook.get_by_id(owned.hook_id).events == ["post.*"]


async def test_the_webhooks_of_an_unknown_or_someone_elses_integration_are_integration_not_found(api, owned):
    """As the sync logs' list: an unknown integration is not an empty list ("no webhooks yet")."""
    unknown = "00000000-0000-0000-0000-000000000000"
    for row_id, token in ((unknown, sign()), (owned.id, sign(sub=str(STRANGER)))):
        answer = await api.get(f"/integrations/webhooks?integrationId={row_id}", headers=bearer(token))
        payload = await answer.json()
        assert answer.status == 404 and payload["error"]["code"] == "INTEGRATION_NOT_FOUND", payload
    # Someone else's answers exactly as one that does not exist (no existence leak), as the sync logs' list does.
    theirs = await api.get(f"/integrations/{owned.id}/sync-logs", headers=bearer(sign(sub=str(STRANGER))))
    assert theirs.status == 404 and (await theirs.json())["error"]["code"] == "INTEGRATION_NOT_FOUND"
    listed = await api.get(f"/integrations/webhooks?integrationId={owned.id}", headers=bearer(sign()))
    assert listed.status == 200 and [h["id"] for h in (await listed.json())["data"]] == [str(owned.hook_id)]
    admin = await api.get(f"/integrations/webhooks?integrationId={unknown}", headers=bearer(sign(roles=["admin"])))
    assert admin.status == 404 and (await admin.json())["error"]["code"] == "INTEGRATION_NOT_FOUND"


async def test_webhooks_per_integration_and_deliveries_per_emit_are_bounded(db_url, aiohttp_client, monkeypatch, owned):
    """100 webhooks, then one batch of 500 events, queued 50,000 deliveries in one transaction (4.9 s on SQLite)."""
    from nexusctl.db.models import OutboxEvent, WebhookDelivery

    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("WEBHOOKS_PER_INTEGRATION_MAX", "3")
    monkeypatch.setenv("EMIT_DELIVERIES_MAX", "5")
    api = await aiohttp_client(create_app(config.load()))
    body = {"integrationId": str(owned.id), "url": "http://127.0.0.1:9/x", "events": ["*"]}
    for _ in range(2):  # `owned` has one already
        made = await api.post("/integrations/webhooks", json=body, headers=bearer(sign()))
        assert made.status == 201, await made.text()
    refused = await api.post("/integrations/webhooks", json=body, headers=bearer(sign()))
    payload = await refused.json()
    assert refused.status == 400 and payload["error"]["code"] == "VALIDATION_ERROR", payload
    assert "WEBHOOKS_PER_INTEGRATION_MAX" in payload["error"]["message"] and "(3" in payload["error"]["message"]
    assert Webhook.select().where(Webhook.integration == owned.id).count() == 3
    # Someone else's integration is still not found, whatever its webhooks: the bound leaks nothing.
    theirs = await api.post("/integrations/webhooks", json=body, headers=bearer(sign(sub=str(STRANGER))))
    assert theirs.status == 404 and (await theirs.json())["error"]["code"] == "INTEGRATION_NOT_FOUND"

    def batch(n):
        return {"events": [{"integrationId": str(owned.id), "type": "post.created", "data": {}}] * n}

    before = (OutboxEvent.select().count(), WebhookDelivery.select().count())
    # Two events to 3 matching webhooks each: 6 deliveries, over the 5 one request may queue. Refused whole.
    too_many = await api.post("/integrations/events", json=batch(2), headers=bearer(sign()))
    payload = await too_many.json()
    assert too_many.status == 413 and payload["error"]["code"] == "PAYLOAD_TOO_LARGE", payload
    assert "6 deliveries" in payload["error"]["message"] and "(5, EMIT_DELIVERIES_MAX)" in payload["error"]["message"]
    assert (OutboxEvent.select().count(), WebhookDelivery.select().count()) == before  # nothing written
    one = await api.post("/integrations/events", json=batch(1), headers=bearer(sign()))
    assert one.status == 202 and (await one.json())["data"]["results"][0]["deliveriesQueued"] == 3


async def test_an_event_emitted_to_an_inactive_integration_is_refused(api, owned, make_integration):
    """An integration its owner switched off (or whose grant is gone) gets no events: 409 INTEGRATION_INACTIVE, as
    its proxy calls, nothing written. In a batch it is that event's refusal, the others go. Before, both were
    accepted and queued to its webhooks as if it were on. Switched on again, it gets them."""
    from nexusctl.db.models import OutboxEvent, WebhookDelivery

    off = await api.patch(f"/integrations/{owned.id}", json={"isActive": False}, headers=bearer(sign()))
    assert off.status == 200, await off.text()
    before = ({e.id for e in OutboxEvent.select()}, WebhookDelivery.select().count())
    one = await api.post(f"/integrations/{owned.id}/events", json={"type": "post.created"}, headers=bearer(sign()))
    payload = await one.json()
    assert one.status == 409 and payload["error"]["code"] == "INTEGRATION_INACTIVE", payload
    assert "inactive" in payload["error"]["message"] and "isActive: true" in payload["error"]["message"], payload
    other = make_integration(user_id=OWNER, provider=Provider.SLACK)
    items = [{"integrationId": str(i), "type": "post.created", "data": {}} for i in (owned.id, other.id)]
    batch = await api.post("/integrations/events", json={"events": items}, headers=bearer(sign()))
    body = (await batch.json())["data"]
    assert batch.status == 202 and (body["accepted"], body["refused"]) == (1, 1), body
    assert body["results"][0]["error"]["code"] == "INTEGRATION_INACTIVE", body
    assert str(owned.id) not in body["results"][0]["error"]["message"]  # the batch answers by index, as for 404
    assert body["results"][1]["deliveriesQueued"] == 0 and "error" not in body["results"][1], body
    # (The health job may write an integration.error about the integration meanwhile: not an emitted event.)
    emitted = OutboxEvent.select().where(OutboxEvent.type == "post.created")
    assert [e.integration_id for e in emitted if e.id not in before[0]] == [other.id]
    assert WebhookDelivery.select().count() == before[1]
    on = await api.patch(f"/integrations/{owned.id}", json={"isActive": True}, headers=bearer(sign()))
    assert on.status == 200, await on.text()
    again = await api.post(f"/integrations/{owned.id}/events", json={"type": "post.created"}, headers=bearer(sign()))
    assert again.status == 202 and (await again.json())["data"]["deliveriesQueued"] == 1
