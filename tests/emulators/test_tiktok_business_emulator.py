"""The TikTok emulator's TikTok API for Business token endpoints (tt_user/oauth2/): JSON bodies, the {code,
message, request_id, data} envelope, single-use codes, rotating refresh tokens, and tokens that only the Business
API takes. The daemon's use of them: tests/oauth/test_tiktok_business.py."""

from __future__ import annotations

from .testkit import call

REDIRECT = "https://app.example/integrations/oauth/callback/tiktok"
SCOPES = ["user.info.basic", "video.list", "comment.list", "comment.list.manage"]


def test_tt_user_token_exchange_refresh_and_what_the_tokens_reach(fresh_emulators):
    p, env = fresh_emulators["TIKTOK"], fresh_emulators.env()
    base = env["TIKTOK_BUSINESS_URL"].rstrip("/") + "/open_api/v1.3/"
    app = {"client_id": p.client_id, "client_secret": p.client_secret}
    code = p.new_code(client_id=p.client_id, redirect_uri=REDIRECT, scope=SCOPES).value
    exchange = {**app, "grant_type": "authorization_code", "auth_code": code, "redirect_uri": REDIRECT}

    as_form = call("POST", base + "tt_user/oauth2/token/", form=exchange)
    assert as_form.status == 200 and as_form.json()["code"] == 40002  # JSON only, errors with HTTP 200
    wrong = call("POST", base + "tt_user/oauth2/token/", json_body={**exchange, "client_secret": "nope"})
    assert wrong.json()["code"] == 40101
    got = call("POST", base + "tt_user/oauth2/token/", json_body=exchange).json()
    assert got["code"] == 0 and got["request_id"], got
    data = got["data"]
    assert set(data) == {
        "access_token",
        "expires_in",
        "open_id",
        "refresh_token",
        "refresh_token_expires_in",
        "scope",
        "token_type",
    }
    assert data["open_id"] == p.account["open_id"] and data["scope"].split(",") == SCOPES
    again = call("POST", base + "tt_user/oauth2/token/", json_body=exchange).json()
    assert again["code"] == 40131  # a code is single-use

    business = {"Access-Token": data["access_token"]}
    whoami = call("GET", base + "business/get/", params={"business_id": data["open_id"]}, headers=business).json()
    assert whoami["code"] == 0 and whoami["data"]["display_name"] == p.account["display_name"]
    login_kit = call(
        "GET", env["TIKTOK_API_URL"] + "/v2/user/info/", params={"fields": "open_id"}, bearer=data["access_token"]
    )
    assert login_kit.status == 401 and login_kit.json()["error"]["code"] == "access_token_invalid"

    refresh = {**app, "grant_type": "refresh_token", "refresh_token": data["refresh_token"]}
    renewed = call("POST", base + "tt_user/oauth2/refresh_token/", json_body=refresh).json()
    assert renewed["code"] == 0 and renewed["data"]["refresh_token"] != data["refresh_token"]
    reused = call("POST", base + "tt_user/oauth2/refresh_token/", json_body=refresh).json()
    assert reused["code"] == 40105  # rotated: the old refresh token is dead
