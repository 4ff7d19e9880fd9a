"""The emulators' shared interface and strictness, across all providers.

Per-provider flows (authorize -> token -> who-am-I -> refresh -> revoke) live
in test_flows_*.py; this file checks what every provider shares: the env and
URL rule, authorize validation, code handling, and the test controls.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from . import Emulators
from .cases import (
    CHECKS_REDIRECT,
    OAUTH,
    PKCE,
    SCOPE_EITHER,
    SCOPE_SEP,
    SHOP,
    api_url,
    authorize_request,
    exchange,
    start,
    succeeded,
)
from .testkit import REDIRECT, basic, call, pkce

ALL = [
    "TIKTOK",
    "INSTAGRAM",
    "FACEBOOK",
    "YOUTUBE",
    "TWITTER",
    "LINKEDIN",
    "HUBSPOT",
    "SALESFORCE",
    "SHOPIFY",
    "WOOCOMMERCE",
    "META_ADS",
    "GOOGLE_ADS",
    "TIKTOK_ADS",
    "MAILCHIMP",
    "SENDGRID",
    "STRIPE",
    "PAYPAL",
    "ZAPIER",
    "SLACK",
    "DISCORD",
]
NO_REVOKE = {"INSTAGRAM", "SALESFORCE", "WOOCOMMERCE", "MAILCHIMP", "SENDGRID", "ZAPIER"}


# --- interface ----------------------------------------------------------------


def test_env_names_follow_the_contract(emulators):
    env = emulators.env()
    expected = set()
    for name in ALL:
        expected |= {f"{name}_CLIENT_ID", f"{name}_CLIENT_SECRET"}
        if name not in ("WOOCOMMERCE", "SENDGRID", "SALESFORCE"):
            expected |= {f"{name}_AUTH_URL", f"{name}_TOKEN_URL", f"{name}_API_URL"}
        if name == "SALESFORCE":
            expected |= {f"{name}_AUTH_URL", f"{name}_TOKEN_URL"}
        if name == "SENDGRID":
            expected.add(f"{name}_API_URL")
        if name not in NO_REVOKE:
            expected.add(f"{name}_REVOKE_URL")
    expected.add("GOOGLE_ADS_USERINFO_URL")  # its API URL is the Google Ads API; who-am-I is OpenID userinfo
    expected.add("YOUTUBE_ANALYTICS_URL")  # YouTube Analytics (fetch_analytics) has its own host
    expected.add("TIKTOK_BUSINESS_URL")  # TikTok API for Business (TIKTOK_APP=business: comments)
    # ... an app of its own at TikTok, with its own credentials (its app id and secret)
    expected |= {"TIKTOK_BUSINESS_CLIENT_ID", "TIKTOK_BUSINESS_CLIENT_SECRET"}
    expected.add("SLACK_SIGNING_SECRET")  # Slack signs the slash commands it sends the app with it
    expected.add("NEXUSCTL_CLOCK_FILE")  # the clock the product shares with the emulators (advance_clock)
    assert set(env) == expected
    assert all(v for v in env.values())


def test_urls_map_real_hosts_under_the_provider_prefix(emulators):
    env, base = emulators.env(), emulators.base_url
    assert env["TIKTOK_TOKEN_URL"] == f"{base}/tiktok/open.tiktokapis.com/v2/oauth/token/"
    assert env["TIKTOK_ADS_API_URL"] == f"{base}/tiktok_ads/business-api.tiktok.com"
    assert env["SHOPIFY_AUTH_URL"] == f"{base}/shopify/{{shop}}/admin/oauth/authorize"
    assert env["SHOPIFY_REVOKE_URL"] == f"{base}/shopify/{{shop}}/admin/api_permissions/current.json"
    assert env["HUBSPOT_REVOKE_URL"] == f"{base}/hubspot/api.hubapi.com/oauth/v1/refresh-tokens"
    assert env["SLACK_REVOKE_URL"] == f"{base}/slack/slack.com/api/auth.revoke"
    assert env["FACEBOOK_REVOKE_URL"] == env["FACEBOOK_API_URL"] + "/me/permissions"
    assert not any(v.endswith("/") for k, v in env.items() if k.endswith("_API_URL"))
    assert emulators.woocommerce_store_url == f"{base}/woocommerce/shop.example"
    assert base.startswith("http://127.0.0.1:")


def test_credentials_look_like_the_providers(emulators):
    assert emulators["STRIPE"].client_id.startswith("ca_")
    assert emulators["STRIPE"].client_secret.startswith("sk_test_")
    assert emulators["YOUTUBE"].client_id.endswith(".apps.googleusercontent.com")
    assert emulators["YOUTUBE"].client_id != emulators["GOOGLE_ADS"].client_id
    assert emulators["FACEBOOK"].client_id != emulators["META_ADS"].client_id
    key = emulators.sendgrid_key()
    assert key.startswith("SG.") and key.count(".") == 2 and emulators["SENDGRID"].valid_access(key)


def test_rotation_is_only_an_app_setting_where_it_is_one(fresh_emulators):
    assert fresh_emulators["SALESFORCE"].rotation is False
    assert fresh_emulators["SLACK"].rotation is True
    fresh_emulators["SALESFORCE"].rotation = True
    assert fresh_emulators["SALESFORCE"].rotation is True
    with pytest.raises(AttributeError):
        fresh_emulators["DISCORD"].rotation = False


def test_start_stop_and_context_manager():
    with Emulators() as emu:
        base = emu.base_url
        resp = call("GET", f"{base}/nosuch/x")
        assert resp.status == 404
    with pytest.raises(OSError):
        call("GET", f"{base}/tiktok/www.tiktok.com/v2/auth/authorize/")


def test_unknown_routes_and_methods(emulators):
    base = emulators.base_url
    assert call("GET", f"{base}/tiktok/open.tiktokapis.com/v2/oauth/token").status == 404  # no trailing slash
    assert call("GET", f"{base}/tiktok/open.tiktokapis.com/v2/oauth/token/").status == 405
    assert call("GET", f"{base}/shopify/%7Bshop%7D/admin/oauth/authorize").status == 404
    assert call("GET", f"{base}/shopify/evil.example.com/admin/oauth/authorize").status == 404


# --- authorize strictness (every OAuth provider) --------------------------------


@pytest.mark.parametrize("name", OAUTH)
def test_authorize_consents_with_code_and_state(fresh_emulators, name):
    query, _ = start(fresh_emulators, name, state="xyz")
    assert query["state"] == "xyz" and query["code"]
    if name == "TIKTOK_ADS":
        assert query["auth_code"] == query["code"]
    assert fresh_emulators[name].calls["authorize"] == 1


@pytest.mark.parametrize("name", OAUTH)
def test_authorize_refuses_bad_requests_without_redirecting(fresh_emulators, name):
    url, good = authorize_request(fresh_emulators, name)
    client_param = {"TIKTOK": "client_key", "TIKTOK_ADS": "app_id"}.get(name, "client_id")
    bad_requests = [
        {k: v for k, v in good.items() if k != "state"},
        {k: v for k, v in good.items() if k != "redirect_uri"},
        {**good, "redirect_uri": "not a url"},
        {**good, client_param: "someone-else"},
        {k: v for k, v in good.items() if k != client_param},
    ]
    if "response_type" in good:
        bad_requests.append({**good, "response_type": "token"})
    bad_requests.append({**good, "code_challenge": pkce()[1], "code_challenge_method": "plain"})
    if "scope" in good and name not in SCOPE_EITHER and len(good["scope"].split(SCOPE_SEP[name])) > 1:
        other = " " if SCOPE_SEP[name] == "," else ","
        bad_requests.append({**good, "scope": good["scope"].replace(SCOPE_SEP[name], other)})
    for params in bad_requests:
        resp = call("GET", url, params=params)
        assert resp.status == 400, (name, params, resp.status, resp.body[:200])
        assert "Location" not in resp.headers
    assert fresh_emulators[name].codes == {}


@pytest.mark.parametrize("name", OAUTH)
def test_authorize_refuses_a_redirect_uri_the_app_did_not_register(fresh_emulators, name):
    url, good = authorize_request(fresh_emulators, name, challenge=pkce()[1] if name in PKCE else None)
    for other in (REDIRECT + "/other", REDIRECT.replace("https:", "http:"), "https://evil.example/oauth/callback"):
        resp = call("GET", url, params={**good, "redirect_uri": other})
        assert resp.status == 400, (name, other, resp.status, resp.body[:200])
        assert "Location" not in resp.headers and resp.json()["error"] == "redirect_uri_mismatch"
    assert fresh_emulators[name].codes == {}
    fresh_emulators[name].register_redirect(REDIRECT + "/other")  # registered in the app's settings: accepted
    try:
        assert call("GET", url, params={**good, "redirect_uri": REDIRECT + "/other"}).status == 302
    finally:
        fresh_emulators[name].unregister_redirect(REDIRECT + "/other")


def test_twitter_requires_pkce(fresh_emulators):
    url, params = authorize_request(fresh_emulators, "TWITTER")
    assert call("GET", url, params=params).status == 400


@pytest.mark.parametrize("name", OAUTH)
def test_deny_next_authorize_redirects_with_the_error(fresh_emulators, name):
    fresh_emulators[name].deny_next_authorize()
    url, params = authorize_request(
        fresh_emulators, name, state="s-deny", challenge=pkce()[1] if name in PKCE else None
    )
    resp = call("GET", url, params=params)
    assert resp.status == 302 and resp.location.startswith(REDIRECT)
    query = resp.redirect_params()
    assert query["error"] == "access_denied" and query["state"] == "s-deny" and "code" not in query
    query, _ = start(fresh_emulators, name)  # only the next one is denied
    assert "code" in query


# --- codes (every OAuth provider) ------------------------------------------------


@pytest.mark.parametrize("name", OAUTH)
def test_codes_are_single_use(fresh_emulators, name):
    query, verifier = start(fresh_emulators, name)
    assert succeeded(name, exchange(fresh_emulators, name, query, verifier))
    again = exchange(fresh_emulators, name, query, verifier)
    assert not succeeded(name, again), again.body


@pytest.mark.parametrize("name", OAUTH)
def test_codes_expire(fresh_emulators, name):
    query, verifier = start(fresh_emulators, name)
    fresh_emulators.advance_clock(fresh_emulators[name].CODE_TTL + 1)
    assert not succeeded(name, exchange(fresh_emulators, name, query, verifier))


def test_code_lifetimes():
    from .automation import Zapier
    from .tiktok import TikTok, TikTokAds

    assert (TikTok.CODE_TTL, Zapier.CODE_TTL, TikTokAds.CODE_TTL) == (600, 120, 3600)


@pytest.mark.parametrize("name", OAUTH)
def test_wrong_client_secret_is_refused(fresh_emulators, name):
    query, verifier = start(fresh_emulators, name)
    assert not succeeded(name, exchange(fresh_emulators, name, query, verifier, secret="wrong-secret"))
    assert succeeded(name, exchange(fresh_emulators, name, query, verifier))  # the code survived


@pytest.mark.parametrize("name", sorted(CHECKS_REDIRECT))
def test_redirect_uri_must_match(fresh_emulators, name):
    query, verifier = start(fresh_emulators, name)
    resp = exchange(fresh_emulators, name, query, verifier, redirect_uri=REDIRECT + "/other")
    assert not succeeded(name, resp), resp.body


@pytest.mark.parametrize("name", sorted(PKCE))
def test_pkce_verifier_must_match(fresh_emulators, name):
    query, verifier = start(fresh_emulators, name)
    other, _ = pkce()
    assert not succeeded(name, exchange(fresh_emulators, name, query, other))
    assert not succeeded(name, exchange(fresh_emulators, name, query, None))
    assert succeeded(name, exchange(fresh_emulators, name, query, verifier))


# --- fault controls ------------------------------------------------------------


def _whoami(emu, name):
    """(method, url, endpoint) of the provider's identity call (no token needed for fault tests)."""
    base, api = emu.base_url, (lambda: api_url(emu, name))
    table = {
        "TIKTOK": ("GET", "/v2/user/info/?fields=open_id"),
        "INSTAGRAM": ("GET", "/me"),
        "FACEBOOK": ("GET", "/me"),
        "META_ADS": ("GET", "/me"),
        "YOUTUBE": ("GET", "/youtube/v3/channels?part=snippet&mine=true"),
        "TWITTER": ("GET", "/2/users/me"),
        "LINKEDIN": ("GET", "/v2/userinfo"),
        "HUBSPOT": ("GET", "/oauth/v1/access-tokens/nope"),
        "SHOPIFY": ("POST", "/admin/api/2025-10/graphql.json"),
        "TIKTOK_ADS": ("GET", "/open_api/v1.3/user/info/"),
        "SENDGRID": ("GET", "/v3/user/username"),
        "STRIPE": ("GET", "/v1/account"),
        "PAYPAL": ("GET", "/v1/identity/openidconnect/userinfo?schema=openid"),
        "ZAPIER": ("GET", "/v1/profiles/me"),
        "SLACK": ("POST", "/auth.test"),
        "DISCORD": ("GET", "/v10/users/@me"),
        "MAILCHIMP": ("GET", "/oauth2/metadata"),
    }
    if name == "SALESFORCE":
        return "GET", f"{base}/salesforce/na1.my.salesforce.com/services/oauth2/userinfo", "whoami"
    if name == "WOOCOMMERCE":
        return "GET", emu.woocommerce_store_url + "/wp-json/", "whoami"
    if name == "GOOGLE_ADS":  # its API URL is the Google Ads API; the identity call has its own
        return "GET", emu.env()["GOOGLE_ADS_USERINFO_URL"], "whoami"
    method, path = table[name]
    return method, api() + path, "metadata" if name == "MAILCHIMP" else "whoami"


RATE_LIMIT_FORMS = {
    "TIKTOK": (429, lambda b, h: b["error"]["code"] == "rate_limit_exceeded" and "x-ratelimit-reset" in h),
    "INSTAGRAM": (403, lambda b, h: b["error"]["code"] == 4),
    "FACEBOOK": (403, lambda b, h: b["error"]["code"] == 4 and "X-App-Usage" in h),
    "META_ADS": (400, lambda b, h: b["error"]["code"] == 17 and "X-Business-Use-Case-Usage" in h),
    "YOUTUBE": (
        403,
        lambda b, h: (
            b["error"]["errors"][0]["reason"] == "rateLimitExceeded" and "Retry after" in b["error"]["message"]
        ),
    ),
    "GOOGLE_ADS": (429, lambda b, h: b["error"]["status"] == "RESOURCE_EXHAUSTED" and h["Retry-After"] == "30"),
    "TWITTER": (429, lambda b, h: b["status"] == 429 and int(h["x-rate-limit-reset"]) > time.time()),
    "LINKEDIN": (429, lambda b, h: b["status"] == 429),
    "HUBSPOT": (429, lambda b, h: b["errorType"] == "RATE_LIMIT" and h["X-HubSpot-RateLimit-Remaining"] == "0"),
    "SALESFORCE": (403, lambda b, h: b[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"),
    "SHOPIFY": (200, lambda b, h: b["errors"][0]["extensions"]["code"] == "THROTTLED"),
    "WOOCOMMERCE": (429, lambda b, h: h["Retry-After"] == "30"),
    "TIKTOK_ADS": (200, lambda b, h: b["code"] == 40100),
    "MAILCHIMP": (429, lambda b, h: b["status"] == 429 and not any(k.lower().startswith("x-ratelimit") for k in h)),
    "SENDGRID": (429, lambda b, h: h["X-RateLimit-Remaining"] == "0" and int(h["X-RateLimit-Reset"]) > time.time()),
    "STRIPE": (429, lambda b, h: b["error"]["code"] == "rate_limit"),
    "PAYPAL": (429, lambda b, h: b["name"] == "RATE_LIMIT_REACHED"),
    "ZAPIER": (429, lambda b, h: h["Retry-After"] == "30"),
    "SLACK": (429, lambda b, h: b == {"ok": False, "error": "ratelimited"} and h["Retry-After"] == "30"),
    "DISCORD": (429, lambda b, h: b["retry_after"] == 30.0 and h["Retry-After"] == "30"),
}


@pytest.mark.parametrize("name", ALL)
def test_rate_limit_next_answers_the_providers_own_form_once(fresh_emulators, name):
    method, url, endpoint = _whoami(fresh_emulators, name)
    fresh_emulators[name].rate_limit_next(endpoint, retry_after=30)
    resp = call(method, url, json_body={} if method == "POST" else None)
    status, check = RATE_LIMIT_FORMS[name]
    assert resp.status == status
    body = resp.json() if name != "WOOCOMMERCE" else None
    assert check(body, resp.headers), (resp.status, resp.body[:300], dict(resp.headers))
    after = call(method, url, json_body={} if method == "POST" else None)
    assert (after.status, after.body) != (resp.status, resp.body)
    assert fresh_emulators[name].calls[endpoint] == 2


@pytest.mark.parametrize("name", ALL)
def test_fail_next_plays_an_outage_once(fresh_emulators, name):
    method, url, endpoint = _whoami(fresh_emulators, name)
    p = fresh_emulators[name]
    p.fail_next(endpoint)
    p.fail_next(endpoint, status=502, body={"oops": True}, headers={"X-Test": "1"})
    first = call(method, url)
    second = call(method, url)
    third = call(method, url)
    assert first.status == 503
    assert second.status == 502 and second.json() == {"oops": True} and second.headers["X-Test"] == "1"
    assert third.status not in (502, 503)


def test_faults_target_one_endpoint(fresh_emulators):
    p = fresh_emulators["DISCORD"]
    p.fail_next("refresh", status=500)
    query, verifier = start(fresh_emulators, "DISCORD")
    assert succeeded("DISCORD", exchange(fresh_emulators, "DISCORD", query, verifier))  # "token" unaffected
    assert p.calls["token"] == 1 and p.calls["refresh"] == 0


def test_revoke_grants_kills_every_token(fresh_emulators):
    emu = fresh_emulators
    query, verifier = start(emu, "DISCORD")
    tokens = exchange(emu, "DISCORD", query, verifier).json()
    p = emu["DISCORD"]
    assert p.valid_access(tokens["access_token"]) and p.valid_refresh(tokens["refresh_token"])
    p.revoke_grants()
    assert not p.valid_access(tokens["access_token"]) and not p.valid_refresh(tokens["refresh_token"])
    resp = call(
        "POST",
        emu.env()["DISCORD_TOKEN_URL"],
        auth=(p.client_id, p.client_secret),
        form={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert (resp.status, resp.json()) == (400, {"error": "invalid_grant"})


def test_advance_clock_expires_access_tokens(fresh_emulators):
    emu = fresh_emulators
    query, verifier = start(emu, "DISCORD")
    tokens = exchange(emu, "DISCORD", query, verifier).json()
    me = api_url(emu, "DISCORD") + "/v10/users/@me"
    assert call("GET", me, bearer=tokens["access_token"]).status == 200
    emu.advance_clock(604800 + 1)
    assert call("GET", me, bearer=tokens["access_token"]).status == 401
    assert emu["DISCORD"].valid_refresh(tokens["refresh_token"])


async def test_delay_makes_concurrent_refreshes_overlap(fresh_emulators):
    """Two refreshes with one single-use refresh token, in flight together: exactly one wins."""
    emu = fresh_emulators
    query, verifier = start(emu, "DISCORD")
    refresh = exchange(emu, "DISCORD", query, verifier).json()["refresh_token"]
    p = emu["DISCORD"]
    p.delay("refresh", 3.0)
    headers = {"Authorization": basic(p.client_id, p.client_secret)}
    async with aiohttp.ClientSession() as session:

        async def one():
            async with session.post(
                emu.env()["DISCORD_TOKEN_URL"],
                headers=headers,
                data={"grant_type": "refresh_token", "refresh_token": refresh},
            ) as resp:
                return resp.status, await resp.json()

        began = time.monotonic()
        calls = [asyncio.ensure_future(one()), asyncio.ensure_future(one())]
        # Both are counted (at the gate, before the delay) while neither has answered: they overlap. A
        # condition, not a duration: how long each took depends on the machine.
        while p.calls["refresh"] < 2:
            assert not any(c.done() for c in calls), "a refresh answered before the other arrived"
            assert time.monotonic() - began < 30, "the two refreshes never arrived"
            await asyncio.sleep(0.01)  # polling the emulator's counter
        assert not any(c.done() for c in calls)
        results = await asyncio.gather(*calls)
    assert sorted(status for status, _ in results) == [200, 400]
    assert [body for status, body in results if status == 400] == [{"error": "invalid_grant"}]
    assert p.calls["refresh"] == 2
    p.delay("refresh", 0)
    began = time.monotonic()
    call("POST", emu.env()["DISCORD_TOKEN_URL"], form={"grant_type": "refresh_token"})
    assert time.monotonic() - began < 3.0  # the 3 s delay is gone (a bound far from any machine's speed)


def test_reset_restores_a_clean_state(emulators):
    p = emulators["TIKTOK"]
    p.account = {"open_id": "x"}
    p.fail_next("whoami")
    emulators.advance_clock(1000)
    before = emulators.now()
    emulators.reset()
    assert p.account["display_name"] == "Demo Creator" and not p.calls
    assert emulators.now() >= before  # the shared clock stays where it was: time never goes back
    method, url, _ = _whoami(emulators, "TIKTOK")
    assert call(method, url).status == 401


def test_the_shared_clock_never_goes_back(emulators):
    with pytest.raises(ValueError, match="only moves forward"):
        emulators.advance_clock(-1)


def test_no_emulator_crashed(emulators):
    assert emulators.errors == []
    assert SHOP.endswith(".myshopify.com")
