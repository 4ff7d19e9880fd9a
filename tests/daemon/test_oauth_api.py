"""The OAuth routes in-process: configuration problems and bad input answer clearly."""

from __future__ import annotations

import uuid

import pytest
from support.tokens import auth_header, configured_secret

from nexusctl import config
from nexusctl.daemon.app import create_app

USER = uuid.UUID("6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60")


def headers(sub=USER, **claims):
    return auth_header(sub, ttl=60, secret=configured_secret(), **claims)


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await aiohttp_client(create_app(config.load()))


async def test_an_unconfigured_provider_names_the_missing_variables(api):
    body = {"userId": str(USER), "provider": "tiktok", "redirectUri": "http://localhost:3000/x"}
    answer = await api.post("/integrations/oauth/initiate", json=body, headers=headers())
    payload = await answer.json()
    assert answer.status == 400 and payload["error"]["code"] == "PROVIDER_NOT_CONFIGURED"
    assert "TIKTOK_CLIENT_ID" in payload["error"]["message"] and "TIKTOK_CLIENT_SECRET" in payload["error"]["message"]


async def test_a_tiktok_kind_without_its_own_app_credentials_is_refused_up_front(db_url, aiohttp_client, monkeypatch):
    """TikTok's Login Kit app and TikTok API for Business app are two apps with credentials of their own: Login
    Kit's being set does not make a business connect possible (TikTok would refuse its code exchange)."""
    monkeypatch.setenv("TIKTOK_CLIENT_ID", "awlogin")
    monkeypatch.setenv("TIKTOK_CLIENT_SECRET", "login-kit-secret")
    api = await aiohttp_client(create_app(config.load()))
    body = {"userId": str(USER), "provider": "TIKTOK", "redirectUri": "http://localhost:3000/x"}
    business = {**body, "metadata": {"provider": {"tiktokApp": "business"}}}
    answer = await api.post("/integrations/oauth/initiate", json=business, headers=headers())
    payload = await answer.json()
    assert answer.status == 400 and payload["error"]["code"] == "PROVIDER_NOT_CONFIGURED", payload
    assert payload["error"]["message"] == (
        "TIKTOK (a TikTok API for Business app, tiktokApp business) is not configured: set "
        "TIKTOK_BUSINESS_CLIENT_ID and TIKTOK_BUSINESS_CLIENT_SECRET"
    )
    assert "login-kit-secret" not in await answer.text()
    kit = await api.post("/integrations/oauth/initiate", json=body, headers=headers())
    assert kit.status == 200, await kit.text()
    assert "client_key=awlogin" in (await kit.json())["data"]["authorizationUrl"]


async def test_half_configured_names_only_what_is_missing(db_url, aiohttp_client, monkeypatch):
    monkeypatch.setenv("DISCORD_CLIENT_ID", "123")
    api = await aiohttp_client(create_app(config.load()))
    body = {"userId": str(USER), "provider": "DISCORD", "redirectUri": "http://localhost:3000/x"}
    payload = await (await api.post("/integrations/oauth/initiate", json=body, headers=headers())).json()
    assert payload["error"]["message"] == "DISCORD is not configured: set DISCORD_CLIENT_SECRET"


async def test_allowed_origins_widen_the_redirect_allow_list(db_url, aiohttp_client, monkeypatch):
    monkeypatch.setenv("DISCORD_CLIENT_ID", "123")
    monkeypatch.setenv("DISCORD_CLIENT_SECRET", "s3cr3t-value")
    monkeypatch.setenv("ALLOWED_REDIRECT_ORIGINS", "https://admin.example.com")
    api = await aiohttp_client(create_app(config.load()))
    for uri, status in (
        ("https://admin.example.com/done", 200),
        ("http://localhost:3000/ok", 200),
        ("https://admin.example.com.evil.io/done", 400),
        ("http://admin.example.com/done", 400),
    ):
        body = {"userId": str(USER), "provider": "DISCORD", "redirectUri": uri}
        answer = await api.post("/integrations/oauth/initiate", json=body, headers=headers())
        text = await answer.text()
        assert answer.status == status, (uri, text)
        assert "s3cr3t-value" not in text


async def test_api_key_route_refuses_oauth_providers_and_bad_keys(api):
    cases = [
        ({"userId": str(USER), "provider": "SLACK", "apiKey": "x"}, "OAuth flow"),
        ({"userId": str(USER), "provider": "SENDGRID", "apiKey": "two words"}, "apiKey"),
        ({"userId": str(USER), "provider": "SENDGRID"}, "apiKey is required"),
    ]
    for body, mention in cases:
        answer = await api.post("/integrations/api-key", json=body, headers=headers())
        payload = await answer.json()
        assert answer.status == 400 and mention in payload["error"]["message"], payload


async def test_woocommerce_key_delivery_with_an_unknown_state_is_refused(api):
    body = {
        "key_id": 1,
        "user_id": "nope",
        "consumer_key": "ck_x",
        "consumer_secret": "cs_y",
        "key_permissions": "read_write",
    }
    answer = await api.post("/integrations/oauth/callback/woocommerce/keys", json=body)
    payload = await answer.json()
    assert answer.status == 400 and payload["error"]["code"] == "OAUTH_FAILED"
    assert "cs_y" not in await answer.text()
    wrong = await api.post("/integrations/oauth/callback/slack/keys", json=body)
    assert wrong.status == 400


async def test_an_unreachable_redis_is_a_clear_503(db_url, aiohttp_client, monkeypatch):
    monkeypatch.setenv("DISCORD_CLIENT_ID", "123")
    monkeypatch.setenv("DISCORD_CLIENT_SECRET", "s3cr3t-value")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")
    api = await aiohttp_client(create_app(config.load()))
    body = {"userId": str(USER), "provider": "DISCORD", "redirectUri": "http://localhost:3000/x"}
    answer = await api.post("/integrations/oauth/initiate", json=body, headers=headers())
    payload = await answer.json()
    assert answer.status == 503 and "REDIS_URL" in payload["error"]["message"]
    assert payload["error"]["code"] == "REDIS_UNAVAILABLE"  # not the database's code: the database is fine
