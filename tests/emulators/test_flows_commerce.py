"""Full flows and quirks: Shopify, WooCommerce, Stripe, PayPal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from .cases import SHOP, api_url, authorize_request, exchange, start, token_url
from .testkit import REDIRECT, CallbackSink, call

GRAPHQL = "/admin/api/2025-10/graphql.json"
SHOP_QUERY = {"query": "{ shop { name myshopifyDomain } }"}


# --- Shopify ----------------------------------------------------------------------------


def test_shopify_redirect_hmac_verifies(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SHOPIFY"]
    query, _ = start(emu, "SHOPIFY")
    assert query["shop"] == SHOP and query["timestamp"].isdigit()
    assert base64.b64decode(query["host"] + "==").decode() == "admin.shopify.com/store/demo"
    message = "&".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "hmac")
    assert query["hmac"] == hmac.new(p.client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert query["hmac"] != hmac.new(b"other", message.encode(), hashlib.sha256).hexdigest()


def test_shopify_flow_with_expiring_tokens(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SHOPIFY"]
    env, api = emu.env(), api_url(emu, "SHOPIFY")
    query, _ = start(emu, "SHOPIFY")
    tokens = exchange(emu, "SHOPIFY", query).json()
    assert set(tokens) == {"access_token", "scope", "expires_in", "refresh_token", "refresh_token_expires_in"}
    assert (tokens["expires_in"], tokens["refresh_token_expires_in"]) == (3600, 7776000)
    assert tokens["scope"] == "read_products,read_orders"
    shop = call("POST", api + GRAPHQL, json_body=SHOP_QUERY, headers={"X-Shopify-Access-Token": tokens["access_token"]})
    assert shop.json() == {"data": {"shop": {"name": "Demo Shop", "myshopifyDomain": SHOP}}}
    bearer = call("POST", api + GRAPHQL, json_body=SHOP_QUERY, bearer=tokens["access_token"])
    assert bearer.status == 401 and "Invalid API key or access token" in bearer.json()["errors"]
    other_shop = api.replace(SHOP, "other.myshopify.com")
    assert (
        call(
            "POST",
            other_shop + GRAPHQL,
            json_body=SHOP_QUERY,
            headers={"X-Shopify-Access-Token": tokens["access_token"]},
        ).status
        == 401
    )

    def refresh(value):
        return call(
            "POST",
            token_url(emu, "SHOPIFY"),
            form={
                "client_id": p.client_id,
                "client_secret": p.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": value,
            },
        )

    r0 = tokens["refresh_token"]
    first = refresh(r0).json()
    r1 = first["refresh_token"]
    assert r1 != r0 and p.valid_refresh(r0)  # the previous one lives until the new one is used
    second = refresh(r1).json()
    assert not p.valid_refresh(r0) and p.valid_refresh(r1) and p.valid_refresh(second["refresh_token"])
    dead = refresh(r0)
    assert dead.status == 400 and dead.json()["error"] == "invalid_grant"
    emu.advance_clock(3601)
    assert (
        call(
            "POST", api + GRAPHQL, json_body=SHOP_QUERY, headers={"X-Shopify-Access-Token": second["access_token"]}
        ).status
        == 401
    )
    third = refresh(second["refresh_token"]).json()
    revoke = call(
        "DELETE",
        env["SHOPIFY_REVOKE_URL"].replace("{shop}", SHOP),
        headers={"X-Shopify-Access-Token": third["access_token"]},
    )
    assert (revoke.status, revoke.json()) == (200, {})
    assert (
        call(
            "POST", api + GRAPHQL, json_body=SHOP_QUERY, headers={"X-Shopify-Access-Token": third["access_token"]}
        ).status
        == 401
    )
    assert refresh(third["refresh_token"]).status == 400


def test_shopify_retry_with_the_previous_refresh_token(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SHOPIFY"]
    query, _ = start(emu, "SHOPIFY")
    r0 = exchange(emu, "SHOPIFY", query).json()["refresh_token"]
    form = {"client_id": p.client_id, "client_secret": p.client_secret, "grant_type": "refresh_token"}
    lost = call("POST", token_url(emu, "SHOPIFY"), json_body={**form, "refresh_token": r0}).json()["refresh_token"]
    retry = call("POST", token_url(emu, "SHOPIFY"), json_body={**form, "refresh_token": r0}).json()["refresh_token"]
    assert not p.valid_refresh(lost) and p.valid_refresh(retry) and p.valid_refresh(r0)


def test_shopify_legacy_tokens_and_code_rules(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SHOPIFY"]
    query, _ = start(emu, "SHOPIFY")
    body = {"client_id": p.client_id, "client_secret": p.client_secret, "code": query["code"]}
    wrong_shop = call("POST", token_url(emu, "SHOPIFY").replace(SHOP, "other.myshopify.com"), json_body=body)
    assert wrong_shop.status == 400
    legacy = call("POST", token_url(emu, "SHOPIFY"), json_body=body).json()
    assert set(legacy) == {"access_token", "scope"}
    emu.advance_clock(400 * 86400)
    assert p.valid_access(legacy["access_token"])
    reused = call("POST", token_url(emu, "SHOPIFY"), json_body=body).json()
    assert reused["error_description"] == "The authorization code was not found or was already used"


def test_shopify_rest_rate_limit_uses_retry_after(fresh_emulators):
    emu = fresh_emulators
    emu["SHOPIFY"].rate_limit_next("token", retry_after=2)
    query, _ = start(emu, "SHOPIFY")
    resp = exchange(emu, "SHOPIFY", query)
    assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    assert exchange(emu, "SHOPIFY", query).status == 200


# --- WooCommerce --------------------------------------------------------------------------


def _wc_authorize(emu, callback_url, return_url="https://app.example.com/woo/done?conn=7", **extra):
    params = {
        "app_name": "Nexus",
        "scope": "read_write",
        "user_id": "conn-42",
        "return_url": return_url,
        "callback_url": callback_url,
        **extra,
    }
    return call("GET", emu.woocommerce_store_url + "/wc-auth/v1/authorize", params=params)


def test_woocommerce_posts_keys_then_redirects(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["WOOCOMMERCE"]
    with CallbackSink() as sink:
        resp = _wc_authorize(emu, sink.url)
    assert resp.status == 302 and resp.location == "https://app.example.com/woo/done?conn=7&success=1&user_id=conn-42"
    [(headers, raw)] = sink.received
    assert headers["Content-Type"].startswith("application/json")
    keys = json.loads(raw)
    assert set(keys) == {"key_id", "user_id", "consumer_key", "consumer_secret", "key_permissions"}
    assert keys["user_id"] == "conn-42" and keys["key_permissions"] == "read_write"
    assert keys["consumer_key"].startswith("ck_") and keys["consumer_secret"].startswith("cs_")
    assert p.calls["keys"] == 1 and p.calls["authorize"] == 1
    index = emu.woocommerce_store_url + "/wp-json/"
    site = call("GET", index, auth=(keys["consumer_key"], keys["consumer_secret"])).json()
    assert site["name"] == "Demo Woo Store" and site["url"] == emu.woocommerce_store_url
    bad = call("GET", index, auth=(keys["consumer_key"], "cs_wrong"))
    assert bad.status == 401 and bad.json()["data"] == {"status": 401}
    assert call("GET", index).json()["code"] == "woocommerce_rest_cannot_view"
    emu.advance_clock(10 * 365 * 86400)  # keys never expire
    assert (
        call(
            "GET", index, params={"consumer_key": keys["consumer_key"], "consumer_secret": keys["consumer_secret"]}
        ).status
        == 200
    )
    p.revoke_grants()
    assert call("GET", index, auth=(keys["consumer_key"], keys["consumer_secret"])).status == 401


def test_woocommerce_failed_delivery_deletes_the_key(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["WOOCOMMERCE"]
    for status in (500, 204):  # WooCommerce accepts exactly 200
        with CallbackSink(status=status) as sink:
            resp = _wc_authorize(emu, sink.url, return_url="https://app.example.com/woo/done")
        assert resp.status == 401 and "unable to send the consumer data" in resp.text
        keys = json.loads(sink.received[0][1])
        assert not p.valid_access(keys["consumer_key"])
    unreachable = _wc_authorize(emu, "http://127.0.0.1:9/nothing-listens-here")
    assert unreachable.status == 401
    p.fail_next("keys", status=500)
    with CallbackSink() as sink:
        assert _wc_authorize(emu, sink.url).status == 500
    assert sink.received == [] and p.calls["keys"] == 4


def test_woocommerce_validation_and_denial(fresh_emulators):
    emu = fresh_emulators
    missing = call("GET", emu.woocommerce_store_url + "/wc-auth/v1/authorize", params={"app_name": "Nexus"})
    assert missing.status == 401 and "Missing parameter" in missing.text
    assert _wc_authorize(emu, "https://cb.example/keys", scope="admin").status == 401
    emu["WOOCOMMERCE"].deny_next_authorize()
    denied = _wc_authorize(emu, "https://cb.example/keys", return_url="https://app.example.com/woo/done")
    assert denied.location == "https://app.example.com/woo/done?success=0&user_id=conn-42"


# --- Stripe -------------------------------------------------------------------------------


def test_stripe_flow(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["STRIPE"]
    env = emu.env()
    query, _ = start(emu, "STRIPE")
    assert query["code"]
    tokens = exchange(emu, "STRIPE", query).json()
    assert set(tokens) == {
        "access_token",
        "livemode",
        "refresh_token",
        "token_type",
        "stripe_publishable_key",
        "stripe_user_id",
        "scope",
    }
    assert tokens["livemode"] is False and tokens["stripe_user_id"] == p.account["id"]
    assert tokens["scope"] == "read_write" and tokens["stripe_publishable_key"].startswith("pk_test_")
    account_url = env["STRIPE_API_URL"] + "/v1/account"
    account = call("GET", account_url, bearer=tokens["access_token"]).json()
    assert account["business_profile"]["name"] == "Demo Merchant"
    assert account["settings"]["dashboard"]["display_name"] == "Demo Merchant"
    via_platform = call("GET", account_url, bearer=p.client_secret, headers={"Stripe-Account": p.account["id"]})
    assert via_platform.status == 200
    refreshed = call(
        "POST",
        token_url(emu, "STRIPE"),
        auth=(p.client_secret, ""),
        form={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    ).json()
    assert refreshed["refresh_token"] == tokens["refresh_token"]
    deauth = call(
        "POST",
        env["STRIPE_REVOKE_URL"],
        auth=(p.client_secret, ""),
        form={"client_id": p.client_id, "stripe_user_id": tokens["stripe_user_id"]},
    )
    assert deauth.json() == {"stripe_user_id": p.account["id"]}
    dead = call("GET", account_url, bearer=refreshed["access_token"])
    assert dead.status == 401 and dead.json()["error"]["code"] == "api_key_expired"
    again = call(
        "POST",
        env["STRIPE_REVOKE_URL"],
        form={"client_id": p.client_id, "client_secret": p.client_secret, "stripe_user_id": tokens["stripe_user_id"]},
    )
    assert again.status == 401 and again.json()["error"] == "invalid_client"


def test_stripe_code_reuse_revokes_its_tokens(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["STRIPE"]
    query, _ = start(emu, "STRIPE")
    tokens = exchange(emu, "STRIPE", query).json()
    reuse = exchange(emu, "STRIPE", query)
    assert reuse.status == 400 and "have been revoked" in reuse.json()["error_description"]
    assert not p.valid_access(tokens["access_token"])
    no_key = call("POST", token_url(emu, "STRIPE"), form={"grant_type": "authorization_code", "code": "ac_x"})
    assert no_key.status == 401 and no_key.json()["error"] == "invalid_client"
    url, params = authorize_request(emu, "STRIPE")
    assert call("GET", url, params={**params, "scope": "admin"}).status == 400


# --- PayPal -------------------------------------------------------------------------------


def test_paypal_flow(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["PAYPAL"]
    env = emu.env()
    query, _ = start(emu, "PAYPAL")
    in_body = call(
        "POST",
        env["PAYPAL_TOKEN_URL"],
        form={
            "grant_type": "authorization_code",
            "code": query["code"],
            "client_id": p.client_id,
            "client_secret": p.client_secret,
        },
    )
    assert (in_body.status, in_body.json()["error"]) == (401, "invalid_client")
    tokens = exchange(emu, "PAYPAL", query).json()
    assert set(tokens) == {"token_type", "expires_in", "refresh_token", "access_token", "scope", "nonce"}
    assert tokens["expires_in"] == 28800 and tokens["token_type"] == "Bearer"
    userinfo = env["PAYPAL_API_URL"] + "/v1/identity/openidconnect/userinfo"
    me = call("GET", userinfo, params={"schema": "openid"}, bearer=tokens["access_token"]).json()
    assert me["name"] == "Demo Buyer" and me["email"] == "buyer@example.com" and me["user_id"]
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    new = call("POST", env["PAYPAL_TOKEN_URL"], form=refresh, auth=(p.client_id, p.client_secret)).json()
    assert "refresh_token" not in new and new["access_token"] != tokens["access_token"]
    assert p.valid_refresh(tokens["refresh_token"])
    terminate = call(
        "POST",
        env["PAYPAL_REVOKE_URL"],
        auth=(p.client_id, p.client_secret),
        form={"token": tokens["refresh_token"], "token_type_hint": "REFRESH_TOKEN"},
    )
    assert terminate.status == 200
    assert call("GET", userinfo, params={"schema": "openid"}, bearer=new["access_token"]).status == 401
    dead = call("POST", env["PAYPAL_TOKEN_URL"], form=refresh, auth=(p.client_id, p.client_secret))
    assert dead.status == 400 and dead.json()["error"] == "invalid_grant"
    assert REDIRECT not in dead.text
