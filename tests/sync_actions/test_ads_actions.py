"""fetch_campaigns of Meta Ads, TikTok Ads and Google Ads against their emulators."""

from __future__ import annotations

import pytest
from synckit import mint, read_all

from nexusctl.errors import ProviderError, ProviderNotConfigured, RateLimited, TokenExpired

# --- Meta Ads -----------------------------------------------------------------------------------

ACCOUNTS = [
    {"id": "act_111", "account_id": "111", "name": "Main"},
    {"id": "act_222", "account_id": "222", "name": "Second"},
]


def _meta_campaigns():
    rows = [
        {
            "id": f"2385{i:010d}",
            "account_id": "111",
            "name": f"camp {i}",
            "status": "ACTIVE" if i % 2 else "PAUSED",
            "effective_status": "ACTIVE",
            "objective": "OUTCOME_SALES",
            "daily_budget": str(1000 + i),
            "created_time": "2026-09-01T00:00:00+0000",
            "updated_time": "2026-11-01T00:00:00+0000",
        }
        for i in range(130)
    ]
    rows += [{"id": f"2386{i:010d}", "account_id": "222", "name": f"other {i}", "status": "ACTIVE"} for i in range(7)]
    return rows


def test_meta_ads_reads_the_campaigns_of_every_ad_account(fresh_emulators):
    emu = fresh_emulators["META_ADS"]
    emu.set_records("adaccounts", ACCOUNTS)
    emu.set_records("campaigns", _meta_campaigns())
    token = mint(fresh_emulators, "META_ADS", ["ads_read"])
    pages, calls = read_all(fresh_emulators, "META_ADS", "fetch_campaigns", token=token)
    assert emu.calls["adaccounts"] == 1 and emu.calls["campaigns"] == 3 and calls == 4
    assert [len(p.items) for p in pages] == [100, 30, 7]
    assert [i.external_id for p in pages for i in p.items] == [c["id"] for c in _meta_campaigns()]
    assert pages[1].resume == {"container": "act_222", "index": 1, "after": None} and pages[-1].resume is None
    data = pages[0].items[3].data
    assert data["accountId"] == "act_111" and data["status"] == "ACTIVE" and data["dailyBudget"] == "1003"
    assert pages[2].items[0].data["accountId"] == "act_222"


def test_meta_ads_resumes_and_maps_errors(fresh_emulators):
    emu = fresh_emulators["META_ADS"]
    emu.set_records("adaccounts", ACCOUNTS)
    emu.set_records("campaigns", _meta_campaigns())
    token = mint(fresh_emulators, "META_ADS", ["ads_management"])
    first, _ = read_all(fresh_emulators, "META_ADS", "fetch_campaigns", token=token, max_pages=1)
    rest, calls = read_all(fresh_emulators, "META_ADS", "fetch_campaigns", token=token, resume=first[0].resume)
    assert calls == 3 and [len(p.items) for p in rest] == [30, 7]
    assert rest[0].items[0].external_id == "23850000000100"
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "META_ADS", "fetch_campaigns", token="EAABdead")
    emu.rate_limit_next("campaigns", retry_after=300)  # code 17, estimated_time_to_regain_access 5 (minutes)
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "META_ADS", "fetch_campaigns", token=token)
    assert limited.value.retry_after == 300
    with pytest.raises(ProviderError, match="ads_read") as caught:  # code 200: the permission is missing
        read_all(
            fresh_emulators,
            "META_ADS",
            "fetch_campaigns",
            token=mint(fresh_emulators, "META_ADS", ["business_management"]),
        )
    assert not isinstance(caught.value, TokenExpired)


# --- TikTok Ads ---------------------------------------------------------------------------------

ADV1, ADV2 = "7000000000000000001", "7000000000000000002"


def _tiktok_campaigns():
    rows = [
        {
            "campaign_id": f"17{i:017d}",
            "advertiser_id": ADV1,
            "campaign_name": f"tt {i}",
            "objective_type": "TRAFFIC",
            "operation_status": "ENABLE",
            "secondary_status": "CAMPAIGN_STATUS_ENABLE",
            "budget": 50.0 + i,
            "budget_mode": "BUDGET_MODE_DAY",
            "create_time": "2026-10-01 10:00:00",
            "modify_time": "2026-10-02 10:00:00",
        }
        for i in range(250)
    ]
    rows += [{"campaign_id": f"18{i:017d}", "advertiser_id": ADV2, "campaign_name": f"b {i}"} for i in range(3)]
    rows += [{"campaign_id": "1900", "advertiser_id": "7999", "campaign_name": "not ours"}]
    return rows


META = {"advertiserIds": [ADV1, ADV2]}


def test_tiktok_ads_reads_every_advertisers_campaigns_page_by_page(fresh_emulators):
    emu = fresh_emulators["TIKTOK_ADS"]
    emu.set_records("campaigns", _tiktok_campaigns())
    token = mint(fresh_emulators, "TIKTOK_ADS", [])
    pages, calls = read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token=token, metadata=META)
    assert 4 == emu.calls["campaigns"] == emu.calls["report"] and calls == 8  # one report per page (insights)
    assert [len(p.items) for p in pages] == [100, 100, 50, 3]
    assert [i.external_id for p in pages for i in p.items] == [c["campaign_id"] for c in _tiktok_campaigns()[:-1]]
    assert [p.resume for p in pages] == [
        {"advertiser": ADV1, "page": 2},
        {"advertiser": ADV1, "page": 3},
        {"advertiser": ADV2, "page": 1},
        None,
    ]
    data = dict(pages[0].items[1].data)
    assert data.pop("insights")["impressions"] == 0  # no report rows: zeros (tests/sync_actions/test_ads_insights.py)
    assert data == {
        "id": "1700000000000000001",
        "advertiserId": ADV1,
        "name": "tt 1",
        "objective": "TRAFFIC",
        "status": "ENABLE",
        "secondaryStatus": "CAMPAIGN_STATUS_ENABLE",
        "budget": 51.0,
        "budgetMode": "BUDGET_MODE_DAY",
        "createTime": "2026-10-01 10:00:00",
        "modifyTime": "2026-10-02 10:00:00",
    }


def test_tiktok_ads_resumes_at_the_stored_advertiser_and_page(fresh_emulators):
    emu = fresh_emulators["TIKTOK_ADS"]
    emu.set_records("campaigns", _tiktok_campaigns())
    token = mint(fresh_emulators, "TIKTOK_ADS", [])
    rest, calls = read_all(
        fresh_emulators,
        "TIKTOK_ADS",
        "fetch_campaigns",
        token=token,
        metadata=META,
        resume={"advertiser": ADV1, "page": 3},
    )
    assert calls == 4 and [len(p.items) for p in rest] == [50, 3]  # campaign/get + report per page
    assert rest[0].items[0].external_id == "1700000000000000200"


def test_tiktok_ads_errors_come_in_a_200_answer(fresh_emulators):
    emu = fresh_emulators["TIKTOK_ADS"]
    token = mint(fresh_emulators, "TIKTOK_ADS", [])
    with pytest.raises(TokenExpired):  # code 40105
        read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token="nope", metadata=META)
    emu.rate_limit_next("campaigns")  # code 40100
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token=token, metadata=META)
    with pytest.raises(ProviderError, match=r"code 40001.*No permission") as caught:
        read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token=token, metadata={"advertiserIds": ["7999"]})
    assert not isinstance(caught.value, TokenExpired)
    with pytest.raises(ProviderError, match="no advertiser ids"):
        read_all(fresh_emulators, "TIKTOK_ADS", "fetch_campaigns", token=token, metadata={})


# --- Google Ads ---------------------------------------------------------------------------------


def test_google_ads_refuses_clearly_without_a_developer_token(fresh_emulators):
    token = mint(fresh_emulators, "GOOGLE_ADS", ["https://www.googleapis.com/auth/adwords"])
    with pytest.raises(ProviderNotConfigured, match="developer token.*GOOGLE_ADS_DEVELOPER_TOKEN"):
        read_all(fresh_emulators, "GOOGLE_ADS", "fetch_campaigns", token=token)
    assert fresh_emulators["GOOGLE_ADS"].calls["customers"] == 0  # refused before any call
