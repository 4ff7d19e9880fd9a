"""The TikTok emulator's TikTok API for Business token endpoints (tt_user/oauth2/): JSON bodies, the {code,
message, request_id, data} envelope, single-use codes, rotating refresh tokens, and tokens that only the Business
API takes. The daemon's use of them: tests/oauth/test_tiktok_business.py."""

from __future__ import annotations

from .cases import auth_url, token_url
from .testkit import REDIRECT as APP_REDIRECT  # registered for every emulated app
from .testkit import call, consent

REDIRECT = "https://app.example/integrations/oauth/callback/tiktok"
SCOPES = ["user.info.basic", "video.list", "comment.list", "comment.list.manage"]


def test_tt_user_token_exchange_refresh_and_what_the_tokens_reach(fresh_emulators):
    p, env = fresh_emulators["TIKTOK"], fresh_emulators.env()
    base = env["TIKTOK_BUSINESS_URL"].rstrip("/") + "/open_api/v1.3/"
    app = {"client_id": p.business_client_id, "client_secret": p.business_client_secret}
    code = p.new_code(client_id=p.business_client_id, redirect_uri=REDIRECT, scope=SCOPES).value
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


def test_the_login_kit_app_and_the_business_app_are_two_apps_each_refusing_the_others_client(fresh_emulators):
    """TikTok's Login Kit app (client key) and TikTok API for Business app (app id and secret) are registered apart,
    with credentials of their own: the consent takes either, each only with its own kind's scopes, and each token
    endpoint refuses the other app's client and the codes issued to it (so a service mixing them up fails here as
    it would at TikTok)."""
    p, env = fresh_emulators["TIKTOK"], fresh_emulators.env()
    assert env["TIKTOK_BUSINESS_CLIENT_ID"] == p.business_client_id != p.client_id
    assert env["TIKTOK_BUSINESS_CLIENT_SECRET"] == p.business_client_secret != p.client_secret
    base = env["TIKTOK_BUSINESS_URL"].rstrip("/") + "/open_api/v1.3/"
    consent_url = auth_url(fresh_emulators, "TIKTOK")

    def authorize(client_key: str, scopes) -> dict:
        params = {"client_key": client_key, "response_type": "code", "redirect_uri": APP_REDIRECT, "state": "s"}
        return consent(consent_url, {**params, "scope": ",".join(scopes)})

    kit_scopes = ["user.info.basic", "video.list", "video.publish"]
    refused = call(
        "GET",
        consent_url,
        params={
            "client_key": p.client_id,
            "response_type": "code",
            "redirect_uri": APP_REDIRECT,
            "state": "s",
            "scope": ",".join(SCOPES),
        },
    )
    assert refused.status == 400 and "comment.list" in refused.text  # Login Kit has no comment scopes
    refused = call(
        "GET",
        consent_url,
        params={
            "client_key": p.business_client_id,
            "response_type": "code",
            "redirect_uri": APP_REDIRECT,
            "state": "s",
            "scope": ",".join(kit_scopes),
        },
    )
    assert refused.status == 400 and "video.publish" in refused.text

    business_code = authorize(p.business_client_id, SCOPES)["code"]
    kit_code = authorize(p.client_id, kit_scopes)["code"]
    # The Login Kit app's client at the Business token endpoint: 40101, whatever the code.
    kit_app = {"client_id": p.client_id, "client_secret": p.client_secret}
    exchange = {"grant_type": "authorization_code", "redirect_uri": APP_REDIRECT}
    wrong = call("POST", base + "tt_user/oauth2/token/", json_body={**kit_app, **exchange, "auth_code": kit_code})
    assert wrong.json()["code"] == 40101, wrong.text
    # The Business app's client at Login Kit's token endpoint: invalid_client.
    form = {"client_key": p.business_client_id, "client_secret": p.business_client_secret, **exchange}
    wrong = call("POST", token_url(fresh_emulators, "TIKTOK"), form={**form, "code": business_code})
    assert wrong.json()["error"] == "invalid_client", wrong.text
    # A code issued to one app is no good to the other, even with that other app's right credentials.
    biz_app = {"client_id": p.business_client_id, "client_secret": p.business_client_secret}
    wrong = call("POST", base + "tt_user/oauth2/token/", json_body={**biz_app, **exchange, "auth_code": kit_code})
    assert wrong.json()["code"] == 40131, wrong.text
    form = {"client_key": p.client_id, "client_secret": p.client_secret, **exchange}
    wrong = call("POST", token_url(fresh_emulators, "TIKTOK"), form={**form, "code": business_code})
    assert wrong.json()["error"] == "invalid_grant", wrong.text
    # Each with its own app: both work.
    got = call("POST", base + "tt_user/oauth2/token/", json_body={**biz_app, **exchange, "auth_code": business_code})
    assert got.json()["code"] == 0, got.text
    got = call("POST", token_url(fresh_emulators, "TIKTOK"), form={**form, "code": kit_code})
    assert got.json().get("access_token"), got.text
