"""The provider API proxy through a real daemon, against the emulators, on SQLite and PostgreSQL.

Connections are made the way users make them (the browser-style OAuth flow, SendGrid's API key); then
another service calls ``/integrations/{id}/proxy/{path}`` with provider paths only. This module's daemon
sweeps tokens hourly (not every second as the suite's default), so a token about to expire is still about
to expire when the proxy sees it.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
import urllib.parse
import uuid
from pathlib import Path

import jwt
import pytest
from emulators.testkit import call
from test_connect_providers import tenant_of
from test_refresh_flows import alive_tokens

from nexusctl.enums import Provider

# provider -> (method, path, query, expected (dotted key path -> predicate or value))
WHOAMI = {
    "TIKTOK": ("GET", "/v2/user/info/", "fields=open_id,display_name", "data.user.open_id"),
    "INSTAGRAM": ("GET", "/me", "fields=user_id,username", "user_id"),
    "FACEBOOK": ("GET", "/me", "fields=id,name", "id"),
    "YOUTUBE": ("GET", "/youtube/v3/channels", "part=snippet&mine=true", "items.0.id"),
    "TWITTER": ("GET", "/2/users/me", "", "data.id"),
    "LINKEDIN": ("GET", "/v2/userinfo", "", "sub"),
    "HUBSPOT": ("GET", "/account-info/v3/details", "", "portalId"),
    "SALESFORCE": ("GET", "/services/oauth2/userinfo", "", "user_id"),
    "SHOPIFY": ("GET", "/admin/api/2025-10/shop.json", "", "shop.myshopify_domain"),
    "WOOCOMMERCE": ("GET", "/wp-json/", "", "name"),
    "META_ADS": ("GET", "/me", "fields=id,name", "id"),
    "GOOGLE_ADS": ("GET", "/customers:listAccessibleCustomers", "", "resourceNames"),
    "TIKTOK_ADS": ("GET", "/open_api/v1.3/user/info/", "", "data.id"),
    "MAILCHIMP": ("GET", "/3.0/", "", "account_id"),
    "SENDGRID": ("GET", "/v3/user/username", "", "username"),
    "STRIPE": ("GET", "/v1/account", "", "id"),
    "PAYPAL": ("GET", "/v1/identity/openidconnect/userinfo", "schema=openid", "user_id"),
    "ZAPIER": ("GET", "/v1/profiles/me", "", "id"),
    "SLACK": ("POST", "/auth.test", "", "team_id"),
    "DISCORD": ("GET", "/v10/users/@me", "", "id"),
}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    env = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32", "REFRESH_SWEEP_INTERVAL": "3600",
           "GOOGLE_ADS_DEVELOPER_TOKEN": emulators["GOOGLE_ADS"].developer_token}
    with stack_launcher(request.param, tmp_path_factory.mktemp("proxy-stack"), emulators, pg_template,
                        extra_env=env) as stack:
        yield stack


def connected(stack, provider: str, user=None) -> tuple[uuid.UUID, str]:
    user = user or uuid.uuid4()
    if provider == "SENDGRID":
        made = stack.api("POST", "/integrations/api-key", user=user,
                         body={"userId": str(user), "provider": "SENDGRID", "apiKey": stack.emulators.sendgrid_key()})
        assert made.status == 201, made.text
        return user, made.json()["data"]["id"]
    result = stack.connect(provider, user, **tenant_of(stack, provider))
    assert result["status"] == "success", result
    return user, result["integrationId"]


def proxy(stack, integration: str, method: str, path: str, *, user=None, roles=(), query: str = "", body=None,
          headers=None):
    url = f"/integrations/{integration}/proxy{path}" + (f"?{query}" if query else "")
    return stack.api(method, url, user=user, roles=roles, body=body, headers=headers)


def dig(value, dotted: str):
    for key in dotted.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def bearer(stack, user, *roles) -> str:
    claims = {"sub": str(user), "exp": int(time.time()) + 3600, **({"roles": list(roles)} if roles else {})}
    return "Bearer " + jwt.encode(claims, stack.env["JWT_SECRET"], algorithm="HS256")


def raw_request(stack, method: str, target: str, *, user, headers=None, body: bytes | None = None):
    """A request whose target goes on the wire exactly as written (no client normalising it)."""
    parts = urllib.parse.urlsplit(stack.base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {"Authorization": bearer(stack, user), **(headers or {})}.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            conn.send(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# --- who am I, for each of the 20 ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", [p.value for p in Provider])
def test_who_am_i_through_the_proxy_for_every_provider(stack, provider):
    user, integration = connected(stack, provider)
    method, path, query, field = WHOAMI[provider]
    got = proxy(stack, integration, method, path, user=user, query=query)
    assert got.status == 200, (provider, got.status, got.text[:300])
    assert dig(got.json(), field) not in (None, ""), (provider, got.text[:300])
    assert got.headers.get("X-Nexus-Provider") == provider
    assert "Set-Cookie" not in got.headers
    # Another platform service (the service role) may call it too; the token it sent never reaches the provider.
    service = proxy(stack, integration, method, path, user="content-service", roles=("service",), query=query)
    assert service.status == 200, service.text[:300]
