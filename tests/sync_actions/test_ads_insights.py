"""fetch_campaigns' metrics (issue 7): Meta Ads insights, TikTok Ads reports, Google Ads GAQL, against the emulators."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import pytest
from synckit import mint, read_all

from nexusctl import config
from nexusctl.errors import ConfigError, ProviderError, ProviderNotConfigured, RateLimited, TokenExpired
from nexusctl.providers.sync import ads
from nexusctl.providers.sync.base import Item

TODAY = dt.date(2026, 11, 25)
SINCE, UNTIL = "2026-10-26", "2026-11-24"  # the 30 full days before TODAY


@pytest.fixture
def fixed_today(monkeypatch):
    monkeypatch.setattr(ads, "_today", lambda: TODAY)


def test_the_window_is_the_last_30_full_days(fixed_today):
    assert ads.insights_window() == (SINCE, UNTIL)


def test_metrics_are_volatile_they_do_not_change_the_fingerprint():
    base = {"id": "1", "name": "a", "status": "ACTIVE"}
    one = Item("1", {**base, "insights": {"impressions": 10}}, volatile=("insights",))
    two = Item("1", {**base, "insights": {"impressions": 99}}, volatile=("insights",))
    assert one.fingerprint == two.fingerprint
    assert (
        Item("1", {**base, "status": "PAUSED", "insights": {}}, volatile=("insights",)).fingerprint != one.fingerprint
    )
    assert one.fingerprint == Item("1", dict(base)).fingerprint  # the metrics are all that is left out
    assert one.data["insights"] == {"impressions": 10}  # and they stay in the event payload


# --- Meta Ads -----------------------------------------------------------------------------------

ACCOUNTS = [
    {"id": "act_111", "account_id": "111", "name": "Main"},
    {"id": "act_222", "account_id": "222", "name": "Second"},
]


def _meta_campaigns():
    rows = [{"id": f"2385{i:010d}", "account_id": "111", "name": f"camp {i}", "status": "ACTIVE"} for i in range(130)]
    return rows + [
        {"id": f"2386{i:010d}", "account_id": "222", "name": f"other {i}", "status": "ACTIVE"} for i in range(7)
    ]


def _meta_insights():
    """Delivery for every third campaign of act_111 and the first of act_222; numbers tell the campaign."""
    rows = [
        {
            "campaign_id": f"2385{i:010d}",
            "impressions": 1000 + i,
            "clicks": 10 + i,
            "spend": f"{i}.50",
            "reach": 800 + i,
            "ctr": "1.25",
            "cpc": "0.33",
        }
        for i in range(0, 130, 3)
    ]
    rows.append({"campaign_id": "23860000000000", "impressions": 5, "clicks": 1, "spend": "0.07", "reach": 4})
    rows.append({"campaign_id": "23850000000001", "date_preset": "last_7d", "impressions": 1})  # another window
    return rows


def test_meta_ads_campaigns_carry_their_insights_without_extra_calls(fresh_emulators):
    emu = fresh_emulators["META_ADS"]
    emu.set_records("adaccounts", ACCOUNTS)
    emu.set_records("campaigns", _meta_campaigns())
    emu.set_records("insights", _meta_insights())
    token = mint(fresh_emulators, "META_ADS", ["ads_read"])
    pages, calls = read_all(fresh_emulators, "META_ADS", "fetch_campaigns", token=token)
    assert calls == 4 and emu.calls["adaccounts"] == 1 and emu.calls["campaigns"] == 3  # no insights calls
    assert [len(p.items) for p in pages] == [100, 30, 7]
    assert all(
        "insights.date_preset(last_30d){impressions,clicks,spend,reach,ctr,cpc,date_start,date_stop}" in f
        for f in emu.campaign_fields
    )
    items = {i.external_id: i for p in pages for i in p.items}
    since, until = emu.preset_dates("last_30d")
    for i in range(130):
        item = items[f"2385{i:010d}"]
        assert item.volatile == ("insights",)
        got = item.data["insights"]
        assert got["window"] == {"since": since, "until": until, "days": 30, "preset": "last_30d"} or i % 3
        if i % 3 == 0:  # on pages 1 and 2: the right numbers on the right campaign
            assert (got["impressions"], got["clicks"], got["spend"], got["reach"]) == (
                1000 + i,
                10 + i,
                f"{i}.50",
                800 + i,
            )
            assert got["ctr"] == 1.25 and got["cpc"] == "0.33"
        else:  # no delivery in the window (campaign 1's last_7d row is not last_30d's)
            assert (got["impressions"], got["clicks"], got["spend"], got["reach"]) == (0, 0, "0", 0)
            assert got["ctr"] is None and got["cpc"] is None
    other = items["23860000000000"].data
    assert other["accountId"] == "act_222" and other["insights"]["impressions"] == 5
    assert other["insights"]["spend"] == "0.07" and items["23860000000001"].data["insights"]["impressions"] == 0


def test_meta_ads_emulator_refuses_a_bad_insights_expansion(fresh_emulators):
    emu = fresh_emulators["META_ADS"]
    emu.set_records("adaccounts", ACCOUNTS)
    token = mint(fresh_emulators, "META_ADS", ["ads_read"])
    base = fresh_emulators.env()["META_ADS_API_URL"]
    for fields, message in (
        ("id,insights.date_preset(last_31d){clicks}", "date_preset must be one of"),
        ("id,insights{clicks,bogus}", "bogus is not valid for fields param"),
    ):
        url = f"{base}/act_111/campaigns?fields={urllib.request.quote(fields)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request)
        error = json.loads(caught.value.read())["error"]
        assert caught.value.code == 400 and error["code"] == 100 and message in error["message"]


# --- TikTok Ads ---------------------------------------------------------------------------------

ADV1, ADV2 = "7000000000000000001", "7000000000000000002"
META = {"advertiserIds": [ADV1, ADV2]}


def _tiktok_campaigns():
    rows = [{"campaign_id": f"17{i:017d}", "advertiser_id": ADV1, "campaign_name": f"tt {i}"} for i in range(150)]
    return rows + [{"campaign_id": f"18{i:017d}", "advertiser_id": ADV2, "campaign_name": f"b {i}"} for i in range(3)]


def _tiktok_reports():
    rows = [
        {
            "advertiser_id": ADV1,
            "campaign_id": f"17{i:017d}",
            "metrics": {
                "spend": f"{i}.25",
                "impressions": 100 + i,
                "clicks": i,
                "ctr": "2.5",
                "cpc": "0.10",
                "reach": 90 + i,
                "conversion": i // 10,
            },
        }
        for i in range(0, 150, 2)
    ]
    rows.append({"advertiser_id": ADV2, "campaign_id": f"18{2:017d}", "metrics": {"spend": "3", "impressions": 7}})
    return rows


def test_tiktok_ads_one_report_per_page_for_that_pages_campaigns(fresh_emulators, fixed_today):
    emu = fresh_emulators["TIKTOK_ADS"]
    emu.set_records("campaigns", _tiktok_campaigns())
    emu.set_records("reports", _tiktok_reports())
    token = mint(fresh_emulators, "TIKTOK_ADS", [])
    pages, calls = read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token=token, metadata=META)
    assert [len(p.items) for p in pages] == [100, 50, 3]
    assert emu.calls["campaigns"] == emu.calls["report"] == 3 and calls == 6
    for page, request in zip(pages, emu.report_requests, strict=True):
        assert request["report_type"] == "BASIC" and request["data_level"] == "AUCTION_CAMPAIGN"
        assert json.loads(request["dimensions"]) == ["campaign_id"]
        assert {"spend", "impressions", "clicks"} <= set(json.loads(request["metrics"]))
        assert (request["start_date"], request["end_date"]) == (SINCE, UNTIL)
        (rule,) = json.loads(request["filtering"])
        assert (rule["field_name"], rule["filter_type"]) == ("campaign_ids", "IN")
        assert json.loads(rule["filter_value"]) == [i.external_id for i in page.items]
    assert [r["advertiser_id"] for r in emu.report_requests] == [ADV1, ADV1, ADV2]
    items = {i.external_id: i.data for p in pages for i in p.items}
    for i in range(150):
        got = items[f"17{i:017d}"]["insights"]
        assert got["window"] == {"since": SINCE, "until": UNTIL, "days": 30}
        if i % 2 == 0:
            assert (got["spend"], got["impressions"], got["clicks"], got["reach"], got["conversions"]) == (
                f"{i}.25",
                100 + i,
                i,
                90 + i,
                i // 10,
            )
            assert got["ctr"] == 2.5 and got["cpc"] == "0.10"
        else:
            assert (got["spend"], got["impressions"], got["clicks"]) == ("0", 0, 0)
    assert items[f"18{2:017d}"]["insights"]["impressions"] == 7 and items[f"18{0:017d}"]["insights"]["spend"] == "0"


def test_tiktok_ads_report_errors_come_in_a_200_answer(fresh_emulators):
    emu = fresh_emulators["TIKTOK_ADS"]
    emu.set_records("campaigns", _tiktok_campaigns())
    token = mint(fresh_emulators, "TIKTOK_ADS", [])
    emu.rate_limit_next("report")  # code 40100
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token=token, metadata=META)
    emu.fail_next("report", 200, {"code": 40002, "message": "start_date: Not a valid date.", "data": {}})
    with pytest.raises(ProviderError, match=r"report/integrated/get failed \(code 40002\): start_date"):
        read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token=token, metadata=META)


def test_tiktok_ads_skips_the_report_for_an_empty_page(fresh_emulators):
    emu = fresh_emulators["TIKTOK_ADS"]
    token = mint(fresh_emulators, "TIKTOK_ADS", [])
    pages, calls = read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token=token, metadata=META)
    assert [len(p.items) for p in pages] == [0, 0] and calls == 2 and emu.calls["report"] == 0


# --- Google Ads ---------------------------------------------------------------------------------

CUST_A, CUST_B, MANAGER = "1234567890", "2345678901", "9999999999"


def _google(emu, *, page_size=3):
    emu.page_size = page_size
    emu.set_records("customers", [{"id": CUST_B}, {"id": MANAGER, "manager": True}, {"id": CUST_A}])
    rows = [
        {
            "customer_id": CUST_A,
            "id": 100 + i,
            "name": f"search {i}",
            "status": "ENABLED",
            "metrics": {"impressions": 1000 * i, "clicks": 10 * i, "costMicros": 1_250_000 * i, "conversions": i / 2},
        }
        for i in range(7)
    ]
    rows += [
        {"customer_id": CUST_B, "id": 500 + i, "name": f"pmax {i}", "status": "PAUSED", "metrics": {"impressions": 3}}
        for i in range(2)
    ]
    emu.set_records("campaigns", rows)


def _env(emu, **extra):
    return {"GOOGLE_ADS_DEVELOPER_TOKEN": emu.developer_token, **extra}


ADWORDS = ["https://www.googleapis.com/auth/adwords"]


def test_google_ads_pages_every_customers_campaigns_with_metrics_and_no_page_size(fresh_emulators, fixed_today):
    emu = fresh_emulators["GOOGLE_ADS"]
    _google(emu)
    token = mint(fresh_emulators, "GOOGLE_ADS", ADWORDS)
    pages, calls = read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu))
    # customers sorted: A (3+3+1 rows), B (2), the manager (metrics refused: skipped)
    assert [len(p.items) for p in pages] == [3, 3, 1, 2, 0]
    assert emu.calls["customers"] == 1 and emu.calls["search"] == 5 and calls == 6
    assert all("pageSize" not in s["body"] and "page_size" not in s["body"] for s in emu.searches)
    assert all(f"segments.date BETWEEN '{SINCE}' AND '{UNTIL}'" in s["body"]["query"] for s in emu.searches)
    assert [s["customer"] for s in emu.searches] == [CUST_A] * 3 + [CUST_B, MANAGER]
    assert [bool(s["body"].get("pageToken")) for s in emu.searches] == [False, True, True, False, False]
    assert pages[0].resume["customer"] == CUST_A and pages[0].resume["pageToken"]
    assert (pages[0].resume["since"], pages[0].resume["until"]) == (SINCE, UNTIL)
    assert pages[2].resume == {"customer": CUST_B, "index": 1, "pageToken": None, "since": SINCE, "until": UNTIL}
    assert pages[-1].resume is None
    items = [i for p in pages for i in p.items]
    assert [i.external_id for i in items] == [str(100 + i) for i in range(7)] + ["500", "501"]
    five = items[5].data
    assert five["customerId"] == CUST_A and five["name"] == "search 5" and five["status"] == "ENABLED"
    assert five["resourceName"] == f"customers/{CUST_A}/campaigns/105"
    assert five["insights"] == {
        "window": {"since": SINCE, "until": UNTIL, "days": 30},
        "impressions": 5000,
        "clicks": 50,
        "spend": "6.25",
        "costMicros": 6_250_000,
        "conversions": 2.5,
    }
    assert items[0].data["insights"]["impressions"] == 0 and items[0].data["insights"]["spend"] == "0"
    assert items[7].data["insights"]["impressions"] == 3 and items[7].volatile == ("insights",)
    assert all(s["login"] is None for s in emu.searches)


def test_google_ads_resumes_with_the_stored_page_token_and_window(fresh_emulators, fixed_today, monkeypatch):
    emu = fresh_emulators["GOOGLE_ADS"]
    _google(emu)
    token = mint(fresh_emulators, "GOOGLE_ADS", ADWORDS)
    first, _ = read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu), max_pages=1)
    monkeypatch.setattr(ads, "_today", lambda: TODAY + dt.timedelta(days=2))  # resumed two days later
    rest, _ = read_all(
        fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu), resume=first[0].resume
    )
    assert [len(p.items) for p in rest] == [3, 1, 2, 0] and rest[0].items[0].external_id == "103"
    assert f"BETWEEN '{SINCE}' AND '{UNTIL}'" in emu.searches[1]["body"]["query"]  # same query for the token
    # a page token the API no longer takes: that customer again from its first page, on a fresh window
    stale = {**first[0].resume, "pageToken": "bm9wZTpub3Bl"}
    again, _ = read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu), resume=stale)
    assert [len(p.items) for p in again] == [3, 3, 1, 2, 0] and again[0].items[0].external_id == "100"


def test_google_ads_sends_the_login_customer_id_and_validates_it(fresh_emulators):
    emu = fresh_emulators["GOOGLE_ADS"]
    _google(emu)
    token = mint(fresh_emulators, "GOOGLE_ADS", ADWORDS)
    read_all(
        fresh_emulators,
        "GOOGLE_ADS",
        "fetch_campaigns",
        token=token,
        env=_env(emu, GOOGLE_ADS_LOGIN_CUSTOMER_ID="999-999-9999"),
    )
    assert {s["login"] for s in emu.searches} == {MANAGER}
    for bad in ("12345", "123-456-789a", "12345678901"):
        with pytest.raises(ConfigError, match="GOOGLE_ADS_LOGIN_CUSTOMER_ID"):
            config.load({"GOOGLE_ADS_LOGIN_CUSTOMER_ID": bad, "NODE_ENV": "test", "ENCRYPTION_KEY": "A" * 43 + "="})
    assert "GOOGLE_ADS_DEVELOPER_TOKEN" in config.variable_names()
    assert "GOOGLE_ADS_LOGIN_CUSTOMER_ID" in config.variable_names()
    assert "GOOGLE_ADS_USERINFO_URL" in config.variable_names()
    settings = config.load(
        {"GOOGLE_ADS_DEVELOPER_TOKEN": "dev-Secret-123", "NODE_ENV": "test", "ENCRYPTION_KEY": "A" * 43 + "="}
    )
    assert "dev-Secret-123" not in repr(settings)


def test_google_ads_developer_token_missing_or_refused_names_the_variable(fresh_emulators):
    emu = fresh_emulators["GOOGLE_ADS"]
    _google(emu)
    token = mint(fresh_emulators, "GOOGLE_ADS", ADWORDS)
    with pytest.raises(ProviderNotConfigured, match="GOOGLE_ADS_DEVELOPER_TOKEN"):
        read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token)
    assert emu.calls["customers"] == 0
    wrong = "wrong-dev-token-4711"
    with pytest.raises(ProviderNotConfigured, match="GOOGLE_ADS_DEVELOPER_TOKEN.*DEVELOPER_TOKEN_INVALID") as caught:
        read_all(
            fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env={"GOOGLE_ADS_DEVELOPER_TOKEN": wrong}
        )
    assert wrong not in str(caught.value)
    emu.test_access_only = True
    with pytest.raises(ProviderError, match="test accounts only") as caught:
        read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu))
    assert emu.developer_token not in str(caught.value)


def test_google_ads_throttling_is_rate_limited(fresh_emulators):
    emu = fresh_emulators["GOOGLE_ADS"]
    _google(emu)
    token = mint(fresh_emulators, "GOOGLE_ADS", ADWORDS)
    emu.rate_limit_next("search")  # 429 RESOURCE_EXHAUSTED (quotaError)
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu))
    emu.rate_limit_next("customers")
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu))


def test_google_ads_errors_never_show_the_developer_token(fresh_emulators):
    emu = fresh_emulators["GOOGLE_ADS"]
    _google(emu)
    token = mint(fresh_emulators, "GOOGLE_ADS", ADWORDS)
    echo = {
        "error": {
            "code": 400,
            "message": "Request contains an invalid argument.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
                    "errors": [
                        {
                            "errorCode": {"queryError": "BAD_QUERY"},
                            "message": f"bad request with developer-token {emu.developer_token}",
                        }
                    ],
                }
            ],
        }
    }
    emu.fail_next("search", 400, echo)
    with pytest.raises(ProviderError, match="queryError BAD_QUERY") as caught:
        read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu))
    assert emu.developer_token not in str(caught.value) and "***" in str(caught.value)
    emu.fail_next("customers", 503, {"error": {"message": f"outage near {emu.developer_token}"}})
    with pytest.raises(ProviderError) as caught:
        read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token, env=_env(emu))
    assert emu.developer_token not in str(caught.value)
    with pytest.raises(TokenExpired) as caught:  # the OAuth token refused, no developer token shown
        read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token="ya29.dead", env=_env(emu))
    assert emu.developer_token not in str(caught.value)


def test_google_ads_emulator_refuses_page_size(fresh_emulators):
    emu = fresh_emulators["GOOGLE_ADS"]
    _google(emu)
    token = mint(fresh_emulators, "GOOGLE_ADS", ADWORDS)
    url = f"{fresh_emulators.env()['GOOGLE_ADS_API_URL']}/customers/{CUST_A}/googleAds:search"
    body = json.dumps({"query": "SELECT campaign.id FROM campaign", "pageSize": 100}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "developer-token": emu.developer_token,
            "Content-Type": "application/json",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    error = json.loads(caught.value.read())["error"]
    assert caught.value.code == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["errors"][0]["errorCode"] == {"requestError": "PAGE_SIZE_NOT_SUPPORTED"}
