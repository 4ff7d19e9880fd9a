"""The OAuth flow's client-side MUSTs (RFC 9700), tried as an attacker or a confused user would."""

from __future__ import annotations

import urllib.parse
import uuid

import pytest
from emulators.testkit import call
from test_connect_providers import dump

from nexusctl.core.oauth_states import STATE_TTL

FRONTEND = "http://app.nexus.test"  # the stack's FRONTEND_URL (tests/support/stack.py)


def _query(url: str) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def started(stack, provider="SLACK", user=None, **extra):
    user = user or uuid.uuid4()
    answer = stack.initiate(provider, user, **extra)
    assert answer.status == 200, answer.text
    return user, answer.json()["data"]


def at_provider(url: str) -> str:
    """Consent at the emulator; returns our callback URL it sends the browser to."""
    response = call("GET", url)
    assert response.status == 302, response.text
    return response.location


def _refused_to_frontend(response, provider: str) -> None:
    """No usable state: the browser goes back to FRONTEND_URL with status=error (never to a redirectUri the
    state would name), as for every other callback failure."""
    assert response.status == 302, (response.status, response.text[:300])
    assert response.location.startswith(FRONTEND + "?") or response.location.startswith(FRONTEND + "/?"), (
        response.location
    )
    assert _query(response.location) == {"status": "error", "code": "OAUTH_FAILED", "provider": provider}
    assert response.headers.get("Referrer-Policy") == "no-referrer"
    assert response.headers.get("Cache-Control") == "no-store"


def test_state_is_long_random_single_use_and_stored_hashed(stack, fresh_emulators):
    _, data = started(stack)
    assert len(data["state"]) >= 43 and _query(data["authorizationUrl"])["state"] == data["state"]
    assert data["state"] not in dump(stack)  # only its SHA-256 is kept
    callback = at_provider(data["authorizationUrl"])
    first = call("GET", callback)
    assert first.status == 302 and "status=success" in first.location
    replay = call("GET", callback)
    _refused_to_frontend(replay, "SLACK")


def test_states_live_in_redis_when_configured_else_in_the_table(stack, fresh_emulators):
    before = stack.sql("SELECT COUNT(*) FROM oauth_states")[0][0]
    _, data = started(stack)
    after = stack.sql("SELECT COUNT(*) FROM oauth_states")[0][0]
    if "REDIS_URL" in stack.env:
        import hashlib

        import redis

        client = redis.Redis.from_url(stack.env["REDIS_URL"])
        key = "nexusctl:oauth-state:" + hashlib.sha256(data["state"].encode()).hexdigest()
        assert after == before and 0 < client.ttl(key) <= 600
        assert data["state"].encode() not in client.get(key)
    else:
        assert after == before + 1
        (expires,) = stack.sql("SELECT expires_at FROM oauth_states ORDER BY created_at DESC LIMIT 1")[0]
        assert expires


def test_an_expired_state_fails(stack, fresh_emulators):
    _, data = started(stack)
    callback = at_provider(data["authorizationUrl"])
    # The user comes back after the state's ten minutes (the shared clock: the daemon's "now" moves on; in Redis
    # the record outlives its TTL's wall-clock seconds, and its own expiry says it is over).
    stack.emulators.advance_clock(STATE_TTL.total_seconds() + 60)
    _refused_to_frontend(call("GET", callback), "SLACK")


def test_a_state_from_another_provider_or_unknown_fails(stack, fresh_emulators):
    _, data = started(stack, "SLACK")
    callback = at_provider(data["authorizationUrl"])
    swapped = callback.replace("/callback/slack", "/callback/discord")
    _refused_to_frontend(call("GET", swapped), "DISCORD")
    unknown = call("GET", f"{stack.base}/integrations/oauth/callback/slack?code=abc&state=" + "x" * 43)
    _refused_to_frontend(unknown, "SLACK")
    _refused_to_frontend(call("GET", f"{stack.base}/integrations/oauth/callback/slack"), "SLACK")
    assert call("GET", callback).status == 302  # the crossed callback left the state to the right one
    bogus = call("GET", f"{stack.base}/integrations/oauth/callback/myspace?state=abc")
    assert bogus.status == 400 and bogus.json()["error"]["code"] == "INVALID_PROVIDER"


def test_a_user_who_says_no_lands_on_an_error_redirect(stack, fresh_emulators):
    stack.emulators["DISCORD"].deny_next_authorize("access_denied")
    user, data = started(stack, "DISCORD")
    final = call("GET", at_provider(data["authorizationUrl"]))
    assert final.status == 302
    assert _query(final.location) == {"status": "error", "code": "access_denied", "provider": "DISCORD"}
    assert stack.api("GET", f"/integrations/user/{user}", user=user).json()["data"] == []


def test_a_refused_code_exchange_lands_on_an_error_redirect(stack, fresh_emulators):
    stack.emulators["YOUTUBE"].fail_next("token", status=400, body={"error": "invalid_grant"})
    _, data = started(stack, "YOUTUBE")
    final = call("GET", at_provider(data["authorizationUrl"]))
    assert final.status == 302 and _query(final.location)["code"] == "OAUTH_FAILED"


def test_a_tampered_shopify_callback_is_refused(stack, fresh_emulators):
    _, data = started(stack, "SHOPIFY", shop="demo-store")
    callback = at_provider(data["authorizationUrl"])
    tampered = callback.replace("shop=demo-store.myshopify.com", "shop=evil-store.myshopify.com")
    assert tampered != callback
    final = call("GET", tampered)
    assert final.status == 302 and _query(final.location)["code"] == "OAUTH_FAILED"


@pytest.mark.parametrize(
    "redirect",
    [
        "https://evil.example/steal",
        "http://app.nexus.test.evil.example/x",
        "javascript:alert(1)",
        "//evil.example/x",
        "http://user:pw@app.nexus.test/x",
    ],
)
def test_no_open_redirector(stack, redirect):
    user = uuid.uuid4()
    answer = stack.api(
        "POST",
        "/integrations/oauth/initiate",
        user=user,
        body={"userId": str(user), "provider": "SLACK", "redirectUri": redirect},
    )
    assert answer.status == 400 and "redirectUri" in answer.json()["error"]["message"]


def test_initiate_bad_input(stack):
    user = uuid.uuid4()
    ok_body = {"userId": str(user), "provider": "SLACK", "redirectUri": "http://app.nexus.test/x"}
    cases = [
        ({**ok_body, "provider": "MYSPACE"}, 400, "provider"),
        ({**ok_body, "userId": "bob"}, 400, "userId"),
        ({**ok_body, "metadata": [1]}, 400, "metadata"),
        ({**ok_body, "extra": 1}, 400, "extra"),
        ({**ok_body, "provider": "SHOPIFY"}, 400, "shop"),
        ({**ok_body, "provider": "SHOPIFY", "shop": "evil.com"}, 400, "shop"),
        ({**ok_body, "provider": "WOOCOMMERCE", "storeUrl": "ftp://x"}, 400, "storeUrl"),
        ({**ok_body, "provider": "SENDGRID"}, 400, "API key"),
        ({k: v for k, v in ok_body.items() if k != "redirectUri"}, 400, "redirectUri"),
    ]
    for body, status, mention in cases:
        answer = stack.api("POST", "/integrations/oauth/initiate", user=user, body=body)
        assert answer.status == status and mention in answer.json()["error"]["message"], (body, answer.text)
        if body.get("provider") == "MYSPACE":
            assert answer.json()["error"]["code"] == "INVALID_PROVIDER"
    other = stack.api("POST", "/integrations/oauth/initiate", user=uuid.uuid4(), body=ok_body)
    assert other.status == 403
    service = stack.api(
        "POST", "/integrations/oauth/initiate", user="content-service", roles=("service",), body=ok_body
    )
    assert service.status == 200


def test_pkce_where_supported_and_nothing_secret_in_urls(stack, fresh_emulators):
    for provider, pkce in (("TWITTER", True), ("DISCORD", True), ("YOUTUBE", True), ("SLACK", False)):
        _, data = started(stack, provider)
        query = _query(data["authorizationUrl"])
        assert ("code_challenge" in query) is pkce, provider
        if pkce:
            assert query["code_challenge_method"] == "S256" and "code_verifier" not in query
        assert "client_secret" not in query


def test_no_secret_reaches_the_daemon_log(stack, fresh_emulators):
    user = uuid.uuid4()
    for provider in ("DISCORD", "SLACK", "TIKTOK_ADS", "SHOPIFY"):
        extra = {"shop": "demo-store"} if provider == "SHOPIFY" else {}
        assert stack.connect(provider, user, **extra)["status"] == "success"
    log = stack.logs()
    assert "integrations/oauth/callback" in log  # the access log saw the callbacks ...
    for provider in ("DISCORD", "SLACK", "TIKTOK_ADS", "SHOPIFY"):
        emu = stack.emulators[provider]
        secrets = [*emu.tokens, *emu.codes, emu.client_secret]
        assert not [s for s in secrets if s in log], provider  # ... but no code, token or client secret
