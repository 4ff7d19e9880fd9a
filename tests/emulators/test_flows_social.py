"""Full flows and quirks: TikTok, Instagram, Facebook, Meta Ads, YouTube, Google Ads, X, LinkedIn, Discord."""

from __future__ import annotations

import pytest

from .cases import api_url, authorize_request, exchange, start, token_url
from .testkit import REDIRECT, call, consent, pkce

# --- TikTok ---------------------------------------------------------------------


def test_tiktok_flow(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TIKTOK"]
    env, creds = emu.env(), {"client_key": p.client_id, "client_secret": p.client_secret}
    query, _ = start(emu, "TIKTOK")
    tokens = exchange(emu, "TIKTOK", query).json()
    assert set(tokens) == {
        "access_token",
        "expires_in",
        "open_id",
        "refresh_expires_in",
        "refresh_token",
        "scope",
        "token_type",
    }
    assert tokens["expires_in"] == 86400 and tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "user.info.basic,video.list" and tokens["open_id"] == p.account["open_id"]
    info = env["TIKTOK_API_URL"] + "/v2/user/info/"
    resp = call("GET", info, params={"fields": "open_id,display_name,avatar_url"}, bearer=tokens["access_token"])
    body = resp.json()
    assert resp.status == 200 and body["data"]["user"] == p.account and body["error"]["code"] == "ok"
    assert call("GET", info, params={"fields": "display_name"}, bearer=tokens["access_token"]).json()["data"] == {
        "user": {"display_name": "Demo Creator"}
    }
    refreshed = call(
        "POST",
        env["TIKTOK_TOKEN_URL"],
        form={**creds, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    ).json()
    assert refreshed["refresh_token"] != tokens["refresh_token"] and p.calls["refresh"] == 1
    old = call(
        "POST",
        env["TIKTOK_TOKEN_URL"],
        form={**creds, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert old.status == 200 and old.json()["error"] == "invalid_grant" and old.json()["log_id"]
    assert call("POST", env["TIKTOK_REVOKE_URL"], form={**creds, "token": refreshed["access_token"]}).status == 200
    resp = call("GET", info, params={"fields": "open_id"}, bearer=refreshed["access_token"])
    assert resp.status == 401 and resp.json()["error"]["code"] == "access_token_invalid"
    assert not p.valid_refresh(refreshed["refresh_token"])


def test_tiktok_token_endpoint_quirks(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TIKTOK"]
    url = token_url(emu, "TIKTOK")
    query, _ = start(emu, "TIKTOK")
    form = {
        "client_key": p.client_id,
        "client_secret": p.client_secret,
        "code": query["code"],
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
    }
    as_id = {("client_id" if k == "client_key" else k): v for k, v in form.items()}
    assert call("POST", url, form=as_id).json()["error"] == "invalid_client"
    basic = call(
        "POST",
        url,
        form={k: v for k, v in form.items() if not k.startswith("client")},
        auth=(p.client_id, p.client_secret),
    )
    assert basic.status == 200 and basic.json()["error"] == "invalid_client"
    assert call("POST", url, json_body=form).json()["error"] == "invalid_request"
    p.error_status = 400
    try:
        assert call("POST", url, form={**form, "client_secret": "x"}).status == 400
    finally:
        p.error_status = 200
    assert "access_token" in call("POST", url, form=form).json()


def test_tiktok_whoami_needs_fields_and_scope(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TIKTOK"]
    url, params = authorize_request(emu, "TIKTOK")
    query = consent(url, {**params, "scope": "video.list"})
    token = exchange(emu, "TIKTOK", query).json()["access_token"]
    info = api_url(emu, "TIKTOK") + "/v2/user/info/"
    assert (
        call("GET", info, params={"fields": "open_id"}, bearer=token).json()["error"]["code"] == "scope_not_authorized"
    )
    assert call("GET", info, bearer=token).status in (400, 401)
    assert p.calls["whoami"] == 2


# --- TikTok Ads -------------------------------------------------------------------


def test_tiktok_ads_flow(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TIKTOK_ADS"]
    env = emu.env()
    query, _ = start(emu, "TIKTOK_ADS")
    resp = exchange(emu, "TIKTOK_ADS", query)
    body = resp.json()
    assert resp.status == 200 and body["code"] == 0 and body["message"] == "OK" and body["request_id"]
    assert set(body["data"]) == {"access_token", "advertiser_ids", "scope"}
    assert body["data"]["advertiser_ids"] == p.advertiser_ids
    token = body["data"]["access_token"]
    info = env["TIKTOK_ADS_API_URL"] + "/open_api/v1.3/user/info/"
    resp = call("GET", info, headers={"Access-Token": token})
    assert resp.status == 200 and resp.json()["code"] == 0 and resp.json()["data"] == p.account
    bearer = call("GET", info, bearer=token)
    assert bearer.status == 200 and bearer.json()["code"] == 40104
    emu.advance_clock(400 * 86400)  # long-term token: never expires
    assert call("GET", info, headers={"Access-Token": token}).json()["code"] == 0
    revoke = call(
        "POST",
        env["TIKTOK_ADS_REVOKE_URL"],
        json_body={"app_id": p.client_id, "secret": p.client_secret, "access_token": token},
    )
    assert revoke.status == 200 and revoke.json()["code"] == 0
    gone = call("GET", info, headers={"Access-Token": token})
    assert gone.status == 200 and gone.json()["code"] == 40105


def test_tiktok_ads_wants_json_and_answers_errors_with_http_200(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TIKTOK_ADS"]
    url = token_url(emu, "TIKTOK_ADS")
    query, _ = start(emu, "TIKTOK_ADS")
    body = {"app_id": p.client_id, "secret": p.client_secret, "auth_code": query["auth_code"]}
    form = call("POST", url, form=body)
    assert form.status == 200 and form.json()["code"] == 40002
    bad = call("POST", url, json_body={**body, "secret": "nope"})
    assert bad.status == 200 and bad.json()["code"] == 40101
    missing = call("POST", url, json_body={"app_id": p.client_id, "secret": p.client_secret})
    assert missing.json()["code"] == 40002 and "auth_code" in missing.json()["message"]
    assert call("POST", url, json_body=body).json()["code"] == 0
    reused = call("POST", url, json_body=body)
    assert reused.status == 200 and reused.json()["code"] == 40110


# --- Instagram --------------------------------------------------------------------


def test_instagram_flow_and_24h_refresh_rule(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["INSTAGRAM"]
    api = api_url(emu, "INSTAGRAM")
    query, _ = start(emu, "INSTAGRAM")
    short = exchange(emu, "INSTAGRAM", query).json()
    assert set(short) == {"access_token", "user_id", "permissions"}
    assert short["user_id"] == int(p.account["id"]) and "instagram_business_basic" in short["permissions"]
    me = call("GET", api + "/me", params={"fields": "user_id,username"}, bearer=short["access_token"]).json()
    assert me == {"user_id": p.account["user_id"], "username": "demo.creator", "id": p.account["id"]}
    via_query = call("GET", api + "/me", params={"fields": "username", "access_token": short["access_token"]})
    assert via_query.json()["username"] == "demo.creator"
    resp = call(
        "GET",
        api + "/access_token",
        params={
            "grant_type": "ig_exchange_token",
            "client_secret": p.client_secret,
            "access_token": short["access_token"],
        },
    )
    long = resp.json()
    assert long["token_type"] == "bearer" and long["expires_in"] == 5184000 and p.calls["exchange"] == 1
    refresh = {"grant_type": "ig_refresh_token", "access_token": long["access_token"]}
    early = call("GET", api + "/refresh_access_token", params=refresh)
    assert early.status == 400 and early.json()["error"]["code"] == 190
    assert early.json()["error"]["type"] == "OAuthException"
    emu.advance_clock(24 * 3600)
    renewed = call("GET", api + "/refresh_access_token", params=refresh).json()
    assert renewed["expires_in"] == 5184000 and renewed["access_token"] != long["access_token"]
    assert p.calls["refresh"] == 2
    short_refresh = call(
        "GET",
        api + "/refresh_access_token",
        params={"grant_type": "ig_refresh_token", "access_token": short["access_token"]},
    )
    assert short_refresh.status == 400  # the 1 h token has expired by now anyway
    emu.advance_clock(59 * 86400 + 1)  # the first long-lived token is now past its 60 days
    expired = call("GET", api + "/refresh_access_token", params=refresh)
    assert expired.status == 400 and expired.json()["error"]["error_subcode"] == 463
    assert call("GET", api + "/me", bearer=renewed["access_token"]).status == 200


def test_instagram_stories_take_one_image_or_video_and_no_caption(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["INSTAGRAM"]
    api, node = api_url(emu, "INSTAGRAM"), p.account["user_id"]
    token = p.issue(
        p.new_grant(["instagram_business_basic", "instagram_business_content_publish"]),
        "access",
        3600,
        value="IGAA-story",
        long=True,
    ).value
    image, video = "https://cdn.nexus.test/s.jpg", "https://cdn.nexus.test/s.mp4"
    for refused, words in (
        ({"image_url": image, "caption": "hi"}, "caption is not supported"),
        ({"image_url": image, "video_url": video}, "not both"),
        ({}, "image_url or video_url is required"),
    ):
        resp = call("POST", f"{api}/{node}/media", json_body={"media_type": "STORIES", **refused}, bearer=token)
        assert resp.status == 400 and words in resp.json()["error"]["message"], resp.json()
    clip = call(
        "POST", f"{api}/{node}/media", json_body={"media_type": "STORIES", "video_url": video}, bearer=token
    ).json()["id"]
    status = [
        call("GET", f"{api}/{clip}", params={"fields": "status_code"}, bearer=token).json()["status_code"]
        for _ in range(3)
    ]
    assert status == ["IN_PROGRESS", "IN_PROGRESS", "FINISHED"]
    story = call("POST", f"{api}/{node}/media_publish", json_body={"creation_id": clip}, bearer=token).json()["id"]
    listed = call(
        "GET", f"{api}/{node}/stories", params={"fields": "id,media_product_type,media_type"}, bearer=token
    ).json()["data"]
    assert listed == [{"id": story, "media_product_type": "STORY", "media_type": "VIDEO"}]
    assert call("GET", f"{api}/me/media", bearer=token).json()["data"] == []  # stories are not feed media
    assert call("GET", f"{api}/{node}/stories").status == 400  # a user token is needed


def test_instagram_token_errors_use_the_old_shape(fresh_emulators):
    emu = fresh_emulators
    query, _ = start(emu, "INSTAGRAM")
    bad = exchange(emu, "INSTAGRAM", query, secret="nope")
    assert bad.status == 400 and bad.json() == {
        "error_type": "OAuthException",
        "code": 400,
        "error_message": "Error validating client secret.",
    }
    assert exchange(emu, "INSTAGRAM", query).status == 200
    again = exchange(emu, "INSTAGRAM", query).json()
    assert again["error_message"] == "Matching code was not found or was already used"
    emu["INSTAGRAM"].revoke_grants()
    assert "INSTAGRAM_REVOKE_URL" not in emu.env()


# --- Facebook / Meta Ads -------------------------------------------------------------


@pytest.mark.parametrize("name", ["FACEBOOK", "META_ADS"])
def test_facebook_family_flow(fresh_emulators, name):
    emu, p = fresh_emulators, fresh_emulators[name]
    env, api = emu.env(), api_url(emu, name)
    query, verifier = start(emu, name)
    short = exchange(emu, name, query, verifier).json()
    assert short == {"access_token": short["access_token"], "token_type": "bearer", "expires_in": 5400}
    assert call("GET", api + "/me", params={"fields": "id,name"}, bearer=short["access_token"]).json() == p.account
    resp = call(
        "POST",
        env[f"{name}_TOKEN_URL"],
        form={
            "grant_type": "fb_exchange_token",
            "client_id": p.client_id,
            "client_secret": p.client_secret,
            "fb_exchange_token": short["access_token"],
        },
    )
    long = resp.json()
    assert set(long) == {"access_token", "token_type", "expires_in"} and long["expires_in"] == 5184000
    assert p.calls["exchange"] == 1 and p.calls["token"] == 1
    again = call(
        "GET",
        env[f"{name}_TOKEN_URL"],
        params={
            "grant_type": "fb_exchange_token",
            "client_id": p.client_id,
            "client_secret": p.client_secret,
            "fb_exchange_token": long["access_token"],
        },
    )
    assert again.status == 200 and p.calls["exchange"] == 2
    revoke = call("DELETE", env[f"{name}_REVOKE_URL"], bearer=long["access_token"])
    assert revoke.json() == {"success": True}
    dead = call("GET", api + "/me", bearer=again.json()["access_token"])
    assert dead.status == 400 and dead.json()["error"]["code"] == 190
    assert dead.json()["error"]["error_subcode"] == 458 and "WWW-Authenticate" in dead.headers


def test_facebook_errors_and_isolation(fresh_emulators):
    emu = fresh_emulators
    query, verifier = start(emu, "FACEBOOK")
    wrong_redirect = exchange(emu, "FACEBOOK", query, verifier, redirect_uri=REDIRECT + "x").json()["error"]
    assert (wrong_redirect["code"], wrong_redirect["error_subcode"]) == (100, 36008)
    bad_secret = exchange(emu, "FACEBOOK", query, verifier, secret="x").json()["error"]
    assert (bad_secret["code"], bad_secret["type"]) == (1, "OAuthException")
    token = exchange(emu, "FACEBOOK", query, verifier).json()["access_token"]
    used = exchange(emu, "FACEBOOK", query, verifier).json()["error"]
    assert used["error_subcode"] == 36009
    assert call("GET", api_url(emu, "META_ADS") + "/me", bearer=token).json()["error"]["code"] == 190
    emu.advance_clock(5401)
    expired = call("GET", api_url(emu, "FACEBOOK") + "/me", bearer=token).json()["error"]
    assert expired["error_subcode"] == 463


def test_facebook_lists_each_user_only_their_own_pages(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["FACEBOOK"]
    api = api_url(emu, "FACEBOOK")
    p.set_records(
        "pages",
        [
            {"id": "501", "name": "A's", "admins": ["1001"]},
            {"id": "502", "name": "B's", "admins": ["1002"]},
            {"id": "503", "name": "Everyone's"},
        ],
    )
    p.sign_in_as(id="1001", name="Alice")
    token = exchange(emu, "FACEBOOK", *start(emu, "FACEBOOK")).json()["access_token"]
    p.grants[-1].scope += ["pages_manage_posts", "pages_read_engagement"]
    assert call("GET", api + "/me", params={"fields": "id,name"}, bearer=token).json() == {
        "id": "1001",
        "name": "Alice",
    }
    pages = call("GET", api + "/me/accounts", params={"fields": "id,name,access_token"}, bearer=token).json()["data"]
    assert [pg["id"] for pg in pages] == ["501", "503"] and all("admins" not in pg for pg in pages)
    # Alice's page token does not post on Bob's page.
    refused = call("POST", api + "/502/feed", params={"access_token": pages[0]["access_token"]}, form={"message": "x"})
    assert refused.status == 403 and refused.json()["error"]["code"] == 200 and p.records_of("posts") == []


# --- Google -------------------------------------------------------------------------


def test_youtube_flow(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["YOUTUBE"]
    env = emu.env()
    query, verifier = start(emu, "YOUTUBE")
    tokens = exchange(emu, "YOUTUBE", query, verifier).json()
    assert set(tokens) == {"access_token", "expires_in", "refresh_token", "scope", "token_type"}
    assert tokens["expires_in"] == 3599 and tokens["token_type"] == "Bearer"
    channels = env["YOUTUBE_API_URL"] + "/youtube/v3/channels"
    listing = call(
        "GET", channels, params={"part": "snippet,contentDetails", "mine": "true"}, bearer=tokens["access_token"]
    ).json()
    assert listing["items"][0]["id"] == p.account["id"]
    assert listing["items"][0]["snippet"]["title"] == "Demo Channel"
    assert listing["items"][0]["contentDetails"]["relatedPlaylists"]["uploads"] == p.account["uploads"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": p.client_id,
        "client_secret": p.client_secret,
    }
    refreshed = call("POST", env["YOUTUBE_TOKEN_URL"], form=form).json()
    assert "refresh_token" not in refreshed and refreshed["expires_in"] == 3599
    assert call("POST", env["YOUTUBE_TOKEN_URL"], form=form).status == 200  # not rotated
    assert call("POST", env["YOUTUBE_REVOKE_URL"], form={"token": refreshed["access_token"]}).status == 200
    assert call("GET", channels, params={"part": "id", "mine": "true"}, bearer=tokens["access_token"]).status == 401
    dead = call("POST", env["YOUTUBE_TOKEN_URL"], form=form)
    assert (dead.status, dead.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )


def test_google_offline_access_verifier_and_scopes(fresh_emulators):
    emu = fresh_emulators
    url, params = authorize_request(emu, "GOOGLE_ADS")
    online = {k: v for k, v in params.items() if k != "access_type"}
    tokens = exchange(emu, "GOOGLE_ADS", consent(url, online)).json()
    assert "refresh_token" not in tokens
    userinfo = emu.env()["GOOGLE_ADS_USERINFO_URL"]  # GOOGLE_ADS_API_URL is the Google Ads API
    assert call("GET", userinfo, bearer=tokens["access_token"]).json()["email"] == "ads@example.com"
    unneeded = exchange(emu, "GOOGLE_ADS", consent(url, online), verifier=pkce()[0]).json()
    assert unneeded == {"error": "invalid_grant", "error_description": "code_verifier or verifier is not needed."}
    p = emu["GOOGLE_ADS"]
    basic = call(
        "POST",
        token_url(emu, "GOOGLE_ADS"),
        auth=(p.client_id, p.client_secret),
        form={"grant_type": "authorization_code", "code": consent(url, online)["code"], "redirect_uri": REDIRECT},
    )
    assert basic.status == 200
    ads_only = consent(url, {**online, "scope": "https://www.googleapis.com/auth/adwords"})
    token = exchange(emu, "GOOGLE_ADS", ads_only).json()["access_token"]
    assert call("GET", userinfo, bearer=token).status == 403
    assert call("GET", userinfo, bearer="ya29.bogus").status == 401


# --- X ------------------------------------------------------------------------------


def test_twitter_flow_rotation_and_family_kill(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TWITTER"]
    env = emu.env()
    query, verifier = start(emu, "TWITTER")
    in_body = call(
        "POST",
        env["TWITTER_TOKEN_URL"],
        form={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": p.client_id,
            "client_secret": p.client_secret,
        },
    )
    assert in_body.status == 401 and in_body.json()["error"] == "unauthorized_client"
    tokens = exchange(emu, "TWITTER", query, verifier).json()
    assert set(tokens) == {"token_type", "expires_in", "access_token", "scope", "refresh_token"}
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 7200
    me = env["TWITTER_API_URL"] + "/2/users/me"
    assert call("GET", me, params={"user.fields": "username,name"}, bearer=tokens["access_token"]).json() == {
        "data": p.account
    }
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    new = call("POST", env["TWITTER_TOKEN_URL"], form=refresh, auth=(p.client_id, p.client_secret)).json()
    assert new["refresh_token"] != tokens["refresh_token"]
    reuse = call("POST", env["TWITTER_TOKEN_URL"], form=refresh, auth=(p.client_id, p.client_secret))
    assert (reuse.status, reuse.json()) == (
        400,
        {"error": "invalid_request", "error_description": "Value passed for the token was invalid."},
    )
    assert not p.valid_refresh(new["refresh_token"])  # reuse killed the whole family
    assert call("GET", me, bearer=new["access_token"]).status == 401


def test_twitter_revoke_and_offline_access(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TWITTER"]
    env = emu.env()
    url, params = authorize_request(emu, "TWITTER")
    verifier, challenge = pkce()
    query = consent(
        url, {**params, "scope": "tweet.read users.read", "code_challenge": challenge, "code_challenge_method": "S256"}
    )
    tokens = exchange(emu, "TWITTER", query, verifier).json()
    assert "refresh_token" not in tokens
    revoke = call(
        "POST",
        env["TWITTER_REVOKE_URL"],
        auth=(p.client_id, p.client_secret),
        form={"token": tokens["access_token"], "token_type_hint": "access_token"},
    )
    assert revoke.json() == {"revoked": True}
    assert call("GET", env["TWITTER_API_URL"] + "/2/users/me", bearer=tokens["access_token"]).json()["status"] == 401


# --- LinkedIn -------------------------------------------------------------------------


def test_linkedin_flow_refresh_ttl_counts_down(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["LINKEDIN"]
    env = emu.env()
    query, _ = start(emu, "LINKEDIN")
    tokens = exchange(emu, "LINKEDIN", query).json()
    assert set(tokens) == {"access_token", "expires_in", "refresh_token", "refresh_token_expires_in", "scope"}
    assert tokens["expires_in"] == 5184000 and tokens["refresh_token_expires_in"] == 31536000
    userinfo = env["LINKEDIN_API_URL"] + "/v2/userinfo"
    assert call("GET", userinfo, bearer=tokens["access_token"]).json()["sub"] == p.account["sub"]
    emu.advance_clock(86400)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": p.client_id,
        "client_secret": p.client_secret,
    }
    refreshed = call("POST", env["LINKEDIN_TOKEN_URL"], form=form).json()
    assert refreshed["refresh_token"] == tokens["refresh_token"]
    assert refreshed["refresh_token_expires_in"] == 31536000 - 86400
    assert (
        call(
            "POST",
            env["LINKEDIN_TOKEN_URL"],
            form={k: v for k, v in form.items() if "client" not in k},
            auth=(p.client_id, p.client_secret),
        ).status
        == 401
    )
    assert (
        call(
            "POST",
            env["LINKEDIN_REVOKE_URL"],
            form={"client_id": p.client_id, "client_secret": p.client_secret, "token": refreshed["access_token"]},
        ).status
        == 200
    )
    dead = call("GET", userinfo, bearer=refreshed["access_token"])
    assert dead.status == 401 and dead.json()["serviceErrorCode"]
    emu.advance_clock(365 * 86400)
    expired = call("POST", env["LINKEDIN_TOKEN_URL"], form=form)
    assert expired.status == 400 and expired.json()["error"] == "invalid_grant"


# --- Discord -----------------------------------------------------------------------------


def test_discord_flow(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["DISCORD"]
    env = emu.env()
    query, verifier = start(emu, "DISCORD")
    tokens = exchange(emu, "DISCORD", query, verifier).json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert tokens["expires_in"] == 604800 and tokens["token_type"] == "Bearer"
    me = env["DISCORD_API_URL"] + "/v10/users/@me"
    assert call("GET", me, bearer=tokens["access_token"]).json()["global_name"] == "Demo User"
    body_creds = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": p.client_id,
        "client_secret": p.client_secret,
    }
    new = call("POST", env["DISCORD_TOKEN_URL"], form=body_creds).json()
    reuse = call("POST", env["DISCORD_TOKEN_URL"], form=body_creds)
    assert (reuse.status, reuse.json()) == (400, {"error": "invalid_grant"})
    revoke = call(
        "POST",
        env["DISCORD_REVOKE_URL"],
        auth=(p.client_id, p.client_secret),
        form={"token": new["access_token"], "token_type_hint": "access_token"},
    )
    assert revoke.status == 200
    assert call("GET", me, bearer=new["access_token"]).json() == {"message": "401: Unauthorized", "code": 0}
    assert not p.valid_refresh(new["refresh_token"])


def test_discord_pkce_verifier_length(fresh_emulators):
    emu = fresh_emulators
    url, params = authorize_request(emu, "DISCORD")
    short = "a" * 42
    from .oauth2 import s256

    query = consent(url, {**params, "code_challenge": s256(short), "code_challenge_method": "S256"})
    resp = exchange(emu, "DISCORD", query, short)
    assert resp.status == 400 and resp.json()["error"] == "invalid_request"


def test_discord_answers_for_the_account_that_consented_and_its_servers(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["DISCORD"]
    api = emu.env()["DISCORD_API_URL"]
    p.set_records(
        "guilds",
        [
            {"id": "91", "name": "Alice's", "owner_id": "1001", "members": {"1001": "2147483647"}},
            {"id": "92", "name": "Bob's", "owner_id": "1002", "members": {"1002": "8", "1001": "2048"}},
            {"id": "93", "name": "No bot", "owner_id": "1001", "members": {"1001": "2147483647"}, "bot": False},
        ],
    )
    p.set_records(
        "channels",
        [
            {"id": "9101", "name": "a", "guild_id": "91"},
            {"id": "9201", "name": "b", "guild_id": "92"},
            {"id": "9301", "name": "c", "guild_id": "93"},
        ],
    )
    p.sign_in_as(id="1001", username="alice")
    alice = exchange(emu, "DISCORD", *start(emu, "DISCORD")).json()["access_token"]
    p.sign_in_as(id="1002", username="bob")
    bob = exchange(emu, "DISCORD", *start(emu, "DISCORD")).json()["access_token"]
    assert call("GET", api + "/v10/users/@me", bearer=alice).json()["username"] == "alice"
    assert call("GET", api + "/v10/users/@me", bearer=bob).json()["username"] == "bob"

    # Each user sees their own servers, with their own permissions there; the bot sees the servers it is in.
    mine = call("GET", api + "/v10/users/@me/guilds", bearer=alice).json()
    assert [(g["id"], g["owner"], g["permissions"]) for g in mine] == [
        ("91", True, "2147483647"),
        ("92", False, "2048"),
        ("93", True, "2147483647"),
    ]
    assert set(mine[0]) == {"id", "name", "icon", "owner", "permissions", "features"}
    assert [g["id"] for g in call("GET", api + "/v10/users/@me/guilds", bearer=bob).json()] == ["92"]
    bot = {"Authorization": f"Bot {p.bot_token}"}
    assert [g["id"] for g in call("GET", api + "/v10/users/@me/guilds", headers=bot).json()] == ["91", "92"]

    # A channel, as the bot: its server when the bot is in it; Missing Access when not; never for a user token.
    assert call("GET", api + "/v10/channels/9201", headers=bot).json()["guild_id"] == "92"
    hidden = call("GET", api + "/v10/channels/9301", headers=bot)
    assert (hidden.status, hidden.json()) == (403, {"message": "Missing Access", "code": 50001})
    unknown = call("GET", api + "/v10/channels/9999", headers=bot)
    assert (unknown.status, unknown.json()["code"]) == (404, 10003)
    assert call("GET", api + "/v10/channels/9101", bearer=alice).status == 401
    post = call("POST", api + "/v10/channels/9301/messages", headers=bot, json_body={"content": "hi"})
    assert post.status == 403 and p.records_of("messages") == []


def test_linkedin_members_author_and_read_only_their_own_posts(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["LINKEDIN"]
    api = emu.env()["LINKEDIN_API_URL"]
    p.sign_in_as(sub="memberA")
    url, params = authorize_request(emu, "LINKEDIN")
    params["scope"] += " w_member_social r_member_social"
    refused = call("GET", url, params=params)  # r_member_social: Community Management API partners only
    assert refused.redirect_params()["error"] == "unauthorized_scope_error" and not p.grants
    p.approve_scopes("r_member_social")  # the app is a partner now
    tokens = exchange(emu, "LINKEDIN", consent(url, params)).json()
    assert tokens["scope"] == "openid,profile,email,w_member_social,r_member_social"
    headers = {
        "LinkedIn-Version": "202510",
        "X-Restli-Protocol-Version": "2.0.0",
        "Authorization": f"Bearer {tokens['access_token']}",
    }
    assert call("GET", api + "/v2/userinfo", bearer=tokens["access_token"]).json()["sub"] == "memberA"
    post = {
        "commentary": "hi",
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED"},
        "lifecycleState": "PUBLISHED",
    }
    as_other = call(
        "POST", api + "/rest/posts", headers=headers, json_body={**post, "author": f"urn:li:person:{p.account['sub']}"}
    )
    assert as_other.status == 403 and p.records_of("posts") == []
    assert (
        call("POST", api + "/rest/posts", headers=headers, json_body={**post, "author": "urn:li:person:memberA"}).status
        == 201
    )
    p.set_records("posts", p.records_of("posts") + [{"id": "urn:li:share:1", "author": "urn:li:person:memberB"}])
    listed = call(
        "GET", api + "/rest/posts", headers=headers, params={"q": "author", "author": "urn:li:person:memberA"}
    ).json()
    assert [r["author"] for r in listed["elements"]] == ["urn:li:person:memberA"]
