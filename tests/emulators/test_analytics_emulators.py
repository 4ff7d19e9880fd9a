"""The emulators' analytics endpoints refuse what the providers refuse: a reporting window over the documented
span or too far back, a missing permission, a bad metric; and answer the documented shapes."""

from __future__ import annotations

from .testkit import call

DAY = 86400
IG_INSIGHTS = "instagram_business_manage_insights"


def _token(emu, *scope: str, **data) -> str:
    return emu.issue(emu.new_grant(list(scope)), "access", 3600, **data).value


def test_instagram_insights_windows_permission_and_metrics(fresh_emulators):
    emu, env = fresh_emulators["INSTAGRAM"], fresh_emulators.env()
    url, now = (
        env["INSTAGRAM_API_URL"] + "/me/insights",
        int(fresh_emulators.now()),
    )  # the shared clock, which earlier tests may have moved on
    token = _token(emu, "instagram_business_basic", IG_INSIGHTS)
    ask = {"metric": "reach,views", "period": "day", "metric_type": "total_value"}
    ok = call("GET", url, params={**ask, "since": now - 30 * DAY, "until": now}, bearer=token)
    assert ok.status == 200 and [m["total_value"]["value"] for m in ok.json()["data"]] == [
        emu.account_insights["reach"],
        emu.account_insights["views"],
    ]
    over = call("GET", url, params={**ask, "since": now - 31 * DAY, "until": now}, bearer=token)
    assert over.status == 400 and over.json()["error"]["code"] == 100 and "30 days" in over.json()["error"]["message"]
    old = call("GET", url, params={**ask, "since": now - 800 * DAY, "until": now - 790 * DAY}, bearer=token)
    assert old.status == 400 and "2 years" in old.json()["error"]["message"]
    bad = call("GET", url, params={**ask, "metric": "impressions", "since": now - DAY, "until": now}, bearer=token)
    assert bad.status == 400 and bad.json()["error"]["code"] == 100
    plain = _token(emu, "instagram_business_basic")
    refused = call("GET", url, params={**ask, "since": now - DAY, "until": now}, bearer=plain)
    assert refused.status == 403 and refused.json()["error"]["code"] == 10


def test_facebook_page_insights_need_the_page_token_and_read_insights_within_93_days(fresh_emulators):
    emu, env = fresh_emulators["FACEBOOK"], fresh_emulators.env()
    emu.set_records("pages", [{"id": "101", "name": "P", "insights": {"page_media_view": 7}}])
    url, now = (
        env["FACEBOOK_API_URL"] + "/101/insights",
        int(fresh_emulators.now()),
    )  # the shared clock, which earlier tests may have moved on
    scopes = ("pages_show_list", "pages_read_engagement", "read_insights")
    page = _token(emu, *scopes, page_id="101")
    ask = {"metric": "page_media_view", "period": "day"}
    ok = call("GET", url, params={**ask, "since": now - 3 * DAY, "until": now}, bearer=page)
    assert ok.status == 200 and [v["value"] for v in ok.json()["data"][0]["values"]] == [7, 7, 7]
    for retired in ("page_impressions", "page_impressions_unique", "page_media_view,page_impressions"):
        gone = call("GET", url, params={**ask, "metric": retired, "since": now - DAY, "until": now}, bearer=page)
        assert gone.status == 400 and gone.json()["error"]["code"] == 100, gone.text
        assert "valid insights metric" in gone.json()["error"]["message"]
    over = call("GET", url, params={**ask, "since": now - 94 * DAY, "until": now}, bearer=page)
    assert over.status == 400 and "93 days" in over.json()["error"]["message"]
    user = _token(emu, *scopes)  # a user token, not the page's
    assert call("GET", url, params={**ask, "since": now - DAY, "until": now}, bearer=user).json()["error"]["code"] == 10
    lacking = _token(emu, "pages_show_list", "pages_read_engagement", page_id="101")
    refused = call("GET", url, params={**ask, "since": now - DAY, "until": now}, bearer=lacking)
    assert refused.status == 403 and refused.json()["error"]["code"] == 10


def test_youtube_analytics_needs_its_scope_and_valid_dates(fresh_emulators):
    emu, env = fresh_emulators["YOUTUBE"], fresh_emulators.env()
    url = env["YOUTUBE_ANALYTICS_URL"] + "/v2/reports"
    ask = {"ids": "channel==MINE", "startDate": "2026-11-01", "endDate": "2026-11-28", "metrics": "views,likes"}
    token = _token(emu, "https://www.googleapis.com/auth/yt-analytics.readonly")
    ok = call("GET", url, params=ask, bearer=token).json()
    assert [h["name"] for h in ok["columnHeaders"]] == ["views", "likes"]
    assert ok["rows"] == [[emu.analytics_totals["views"], emu.analytics_totals["likes"]]]
    backwards = call("GET", url, params={**ask, "startDate": "2026-12-01"}, bearer=token)
    assert backwards.status == 400
    data_only = _token(emu, "https://www.googleapis.com/auth/youtube.readonly")
    refused = call("GET", url, params=ask, bearer=data_only)
    assert refused.status == 403 and refused.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"


def test_tiktok_stats_need_user_info_stats(fresh_emulators):
    emu, env = fresh_emulators["TIKTOK"], fresh_emulators.env()
    url = env["TIKTOK_API_URL"] + "/v2/user/info/"
    fields = {"fields": "open_id,follower_count"}
    ok = call("GET", url, params=fields, bearer=_token(emu, "user.info.basic", "user.info.stats")).json()
    assert ok["data"]["user"]["follower_count"] == emu.stats["follower_count"]
    refused = call("GET", url, params=fields, bearer=_token(emu, "user.info.basic"))
    assert refused.status == 401 and refused.json()["error"]["code"] == "scope_not_authorized"


def test_linkedin_post_analytics_is_for_approved_apps(fresh_emulators):
    emu, env = fresh_emulators["LINKEDIN"], fresh_emulators.env()
    url = env["LINKEDIN_API_URL"] + "/rest/memberCreatorPostAnalytics"
    headers = {"LinkedIn-Version": "202510", "X-Restli-Protocol-Version": "2.0.0"}
    ask = {"q": "me", "queryType": "IMPRESSION", "aggregation": "TOTAL"}
    refused = call("GET", url, params=ask, headers=headers, bearer=_token(emu, "openid", "profile"))
    assert refused.status == 403 and refused.json()["code"] == "ACCESS_DENIED"
    emu.approve_scopes("r_member_postAnalytics")
    token = _token(emu, "openid", "r_member_postAnalytics")
    ok = call("GET", url, params=ask, headers=headers, bearer=token).json()
    assert ok["elements"][0]["count"] == emu.post_analytics["IMPRESSION"]
    daily = call(
        "GET",
        url,
        params={**ask, "queryType": "MEMBERS_REACHED", "aggregation": "DAILY"},
        headers=headers,
        bearer=token,
    )
    assert daily.status == 400
