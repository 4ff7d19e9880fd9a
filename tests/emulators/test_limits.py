"""Provider limits the emulators enforce: YouTube's daily project quota, Shopify's query cost and REST buckets."""

from __future__ import annotations

import datetime as dt

from .cases import SHOP, api_url, exchange, start
from .testkit import call
from .youtube_quota import PACIFIC

GRAPHQL = "/admin/api/2025-10/graphql.json"
PRODUCTS = {
    "query": "query P($first: Int!) { products(first: $first) { pageInfo { hasNextPage endCursor } nodes { id } } }",
    "variables": {"first": 50},
}


def _youtube_token(emu) -> str:
    yt = emu["YOUTUBE"]
    return yt.issue(yt.new_grant(["https://www.googleapis.com/auth/youtube.readonly"]), "access", 3600).value


def _channels(emu, token):
    return call(
        "GET",
        api_url(emu, "YOUTUBE") + "/youtube/v3/channels",
        params={"part": "snippet", "mine": "true"},
        bearer=token,
    )


def test_youtube_counts_quota_units_per_day_and_resets_at_midnight_pacific(fresh_emulators):
    emu, yt = fresh_emulators, fresh_emulators["YOUTUBE"]
    assert yt.quota_left() == 10_000  # Google's default allowance
    token = _youtube_token(emu)
    yt.set_daily_quota(3)
    for _ in range(3):  # a list call costs 1 unit
        assert _channels(emu, token).status == 200
    assert (
        call("GET", api_url(emu, "YOUTUBE") + "/youtube/v3/channels", params={"part": "snippet"}, bearer=token).status
        == 403
    )  # even an invalid request is refused once the quota is spent
    spent = _channels(emu, token)
    assert spent.status == 403
    error = spent.json()["error"]
    assert (error["code"], error["errors"][0]["reason"], error["errors"][0]["domain"]) == (
        403,
        "quotaExceeded",
        "youtube.quota",
    )
    assert yt.quota_left() == 0
    # The quota comes back at the next midnight in Pacific time, not 24 h after the first call.
    now = dt.datetime.fromtimestamp(emu.now(), PACIFIC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), PACIFIC)
    emu.advance_clock((midnight - now).total_seconds() - 5)
    assert _channels(emu, token).status == 403
    emu.advance_clock(10)
    assert _channels(emu, _youtube_token(emu)).status == 200 and yt.quota_left() == 2  # (the first token expired)


def test_a_video_insert_costs_1600_units(fresh_emulators):
    emu, yt = fresh_emulators, fresh_emulators["YOUTUBE"]
    grant = yt.new_grant(["https://www.googleapis.com/auth/youtube.upload"])
    token = yt.issue(grant, "access", 3600).value
    yt.set_daily_quota(1599)
    started = call(
        "POST",
        api_url(emu, "YOUTUBE") + "/upload/youtube/v3/videos",
        params={"uploadType": "resumable", "part": "snippet,status"},
        json_body={"snippet": {"title": "t"}, "status": {"privacyStatus": "private"}},
        bearer=token,
        headers={"X-Upload-Content-Length": "10", "X-Upload-Content-Type": "video/mp4"},
    )
    assert started.status == 403 and started.json()["error"]["errors"][0]["reason"] == "quotaExceeded"
    assert yt.quota_left() == 1599  # a refused request costs nothing


def test_shopify_graphql_cost_is_a_leaky_bucket(fresh_emulators):
    emu, shop = fresh_emulators, fresh_emulators["SHOPIFY"]
    token = exchange(emu, "SHOPIFY", start(emu, "SHOPIFY")[0]).json()["access_token"]
    headers = {"X-Shopify-Access-Token": token}
    shop.set_records("products", [{"id": f"gid://shopify/Product/{i}"} for i in range(60)])
    shop.set_query_bucket(100, 1)  # 100 points, 1 back per second: a 52-point page fits once
    first = call("POST", api_url(emu, "SHOPIFY") + GRAPHQL, json_body=PRODUCTS, headers=headers).json()
    cost = first["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (52, 52)
    assert cost["throttleStatus"]["maximumAvailable"] == 100 and cost["throttleStatus"]["restoreRate"] == 1
    assert 48 <= cost["throttleStatus"]["currentlyAvailable"] < 49
    throttled = call("POST", api_url(emu, "SHOPIFY") + GRAPHQL, json_body=PRODUCTS, headers=headers)
    assert throttled.status == 200 and "data" not in throttled.json()
    assert throttled.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert throttled.json()["extensions"]["cost"]["actualQueryCost"] is None
    emu.advance_clock(5)  # the bucket refills with the emulators' clock: 48 + 5 >= 52
    assert "data" in call("POST", api_url(emu, "SHOPIFY") + GRAPHQL, json_body=PRODUCTS, headers=headers).json()
    assert shop.calls["throttled"] == 1


def test_shopify_rest_call_limit_bucket(fresh_emulators):
    emu, shop = fresh_emulators, fresh_emulators["SHOPIFY"]
    token = exchange(emu, "SHOPIFY", start(emu, "SHOPIFY")[0]).json()["access_token"]
    url = api_url(emu, "SHOPIFY") + "/admin/api/2025-10/shop.json"
    shop.set_rest_bucket(3, 0.01)
    limits = [call("GET", url, headers={"X-Shopify-Access-Token": token}) for _ in range(4)]
    assert [r.status for r in limits] == [200, 200, 200, 429]
    assert [r.headers["X-Shopify-Shop-Api-Call-Limit"] for r in limits] == ["1/3", "2/3", "3/3", "3/3"]
    assert limits[-1].headers["Retry-After"] == "2.0"
    emu.advance_clock(1000)  # leaked out (the 1 h token still valid)
    assert call("GET", url, headers={"X-Shopify-Access-Token": token}).headers["X-Shopify-Shop-Api-Call-Limit"] == "1/3"
    assert SHOP in url
