"""Full flows and quirks: HubSpot, Salesforce, Zapier, Slack, Mailchimp, SendGrid."""

from __future__ import annotations

import base64
import hashlib
import hmac

from .cases import authorize_request, exchange, start, token_url
from .testkit import REDIRECT, call, consent

# --- HubSpot ------------------------------------------------------------------------


def test_hubspot_flow(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["HUBSPOT"]
    env = emu.env()
    query, verifier = start(emu, "HUBSPOT")
    tokens = exchange(emu, "HUBSPOT", query, verifier).json()
    assert set(tokens) == {"token_type", "refresh_token", "access_token", "expires_in"}
    assert tokens["expires_in"] == 1800 and tokens["token_type"] == "bearer"
    info = call("GET", env["HUBSPOT_API_URL"] + "/oauth/v1/access-tokens/" + tokens["access_token"]).json()
    assert info["hub_domain"] == "demo.hubspot.com" and info["hub_id"] == 62515 and info["user"]
    assert info["token"] == tokens["access_token"] and "crm.objects.contacts.read" in info["scopes"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": p.client_id,
        "client_secret": p.client_secret,
    }
    refreshed = call("POST", env["HUBSPOT_TOKEN_URL"], form=form).json()
    assert refreshed["refresh_token"] == tokens["refresh_token"]  # not rotated
    assert call("POST", env["HUBSPOT_TOKEN_URL"], form=form).status == 200
    revoke = call("DELETE", env["HUBSPOT_REVOKE_URL"] + "/" + tokens["refresh_token"])
    assert revoke.status == 204 and revoke.body == b""
    dead = call("GET", env["HUBSPOT_API_URL"] + "/oauth/v1/access-tokens/" + refreshed["access_token"])
    assert dead.status == 401
    again = call("POST", env["HUBSPOT_TOKEN_URL"], form=form)
    assert again.status == 400 and again.json()["status"] == "BAD_REFRESH_TOKEN"


def test_hubspot_wants_everything_in_the_body(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["HUBSPOT"]
    query, verifier = start(emu, "HUBSPOT")
    basic = call(
        "POST",
        token_url(emu, "HUBSPOT"),
        auth=(p.client_id, p.client_secret),
        form={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert basic.status == 400 and basic.json()["status"] == "BAD_CLIENT_ID"
    wrong_redirect = exchange(emu, "HUBSPOT", query, verifier, redirect_uri="https://elsewhere.example/cb")
    assert wrong_redirect.json()["status"] == "BAD_REDIRECT_URI"
    assert exchange(emu, "HUBSPOT", query, verifier).status == 200
    assert exchange(emu, "HUBSPOT", query, verifier).json()["status"] == "BAD_AUTH_CODE"


# --- Salesforce -------------------------------------------------------------------------


def test_salesforce_flow_without_rotation(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SALESFORCE"]
    query, verifier = start(emu, "SALESFORCE")
    tokens = exchange(emu, "SALESFORCE", query, verifier).json()
    assert set(tokens) == {
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    instance = tokens["instance_url"]
    assert instance == f"{emu.base_url}/salesforce/na1.my.salesforce.com"
    assert tokens["issued_at"].isdigit() and len(tokens["issued_at"]) == 13
    expected = base64.b64encode(
        hmac.new(p.client_secret.encode(), (tokens["id"] + tokens["issued_at"]).encode(), hashlib.sha256).digest()
    ).decode()
    assert tokens["signature"] == expected
    creds = {"client_id": p.client_id, "client_secret": p.client_secret}
    intro = call(
        "POST",
        instance + "/services/oauth2/introspect",
        form={"token": tokens["access_token"], "token_type_hint": "access_token", **creds},
    ).json()
    assert intro["active"] is True and intro["exp"] > intro["iat"] and intro["scope"] == "api refresh_token"
    assert p.calls["introspect"] == 1
    user = call("GET", instance + "/services/oauth2/userinfo", bearer=tokens["access_token"]).json()
    assert user["name"] == "Demo Admin" and user["organization_id"] == p.account["organization_id"]
    assert call("GET", tokens["id"], bearer=tokens["access_token"]).json()["user_id"] == p.account["user_id"]
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **creds}
    refreshed = call("POST", token_url(emu, "SALESFORCE"), form=form).json()
    assert "refresh_token" not in refreshed and "expires_in" not in refreshed
    assert p.valid_refresh(tokens["refresh_token"])
    emu.advance_clock(7201)  # session timeout: the client learns it only by introspecting
    gone = call("POST", instance + "/services/oauth2/introspect", form={"token": refreshed["access_token"], **creds})
    assert gone.json() == {"active": False}
    stale = call("GET", instance + "/services/oauth2/userinfo", bearer=refreshed["access_token"])
    assert (stale.status, stale.text) == (403, "Bad_OAuth_Token")
    assert call("POST", instance + "/services/oauth2/revoke", form={"token": tokens["refresh_token"]}).status == 200
    dead = call("POST", token_url(emu, "SALESFORCE"), form=form)
    assert (dead.status, dead.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "expired access/refresh token"},
    )


def test_salesforce_rotation_setting(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SALESFORCE"]
    p.rotation = True
    query, verifier = start(emu, "SALESFORCE")
    tokens = exchange(emu, "SALESFORCE", query, verifier).json()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": p.client_id,
        "client_secret": p.client_secret,
    }
    new = call("POST", token_url(emu, "SALESFORCE"), form=form).json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert call("POST", token_url(emu, "SALESFORCE"), form=form).json()["error"] == "invalid_grant"
    basic = call(
        "POST",
        token_url(emu, "SALESFORCE"),
        auth=(p.client_id, p.client_secret),
        form={"grant_type": "refresh_token", "refresh_token": new["refresh_token"]},
    )
    assert basic.json()["error"] == "invalid_client_id"


# --- Zapier ---------------------------------------------------------------------------


def test_zapier_flow(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["ZAPIER"]
    env = emu.env()
    url, params = authorize_request(emu, "ZAPIER")
    assert call("GET", url, params={k: v for k, v in params.items() if k != "response_mode"}).status == 400
    query, _ = start(emu, "ZAPIER")
    tokens = exchange(emu, "ZAPIER", query).json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert tokens["expires_in"] == 36000 and tokens["token_type"] == "Bearer"
    me = env["ZAPIER_API_URL"] + "/v1/profiles/me"
    assert call("GET", me, bearer=tokens["access_token"]).json()["full_name"] == "Demo Automator"
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    new = call("POST", env["ZAPIER_TOKEN_URL"], form=refresh, auth=(p.client_id, p.client_secret)).json()
    assert new["refresh_token"] != tokens["refresh_token"]
    old = call("POST", env["ZAPIER_TOKEN_URL"], form=refresh, auth=(p.client_id, p.client_secret))
    assert (old.status, old.json()) == (400, {"error": "invalid_grant"})
    p.revoke_grants()
    assert call("GET", me, bearer=new["access_token"]).status == 401
    assert "ZAPIER_REVOKE_URL" not in env


def test_zapier_codes_live_two_minutes(fresh_emulators):
    emu = fresh_emulators
    query, _ = start(emu, "ZAPIER")
    emu.advance_clock(119)
    assert exchange(emu, "ZAPIER", query).status == 200
    query, _ = start(emu, "ZAPIER")
    emu.advance_clock(121)
    assert exchange(emu, "ZAPIER", query).json() == {"error": "invalid_grant"}


# --- Slack ----------------------------------------------------------------------------


def test_slack_flow_with_rotation(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SLACK"]
    env = emu.env()
    query, _ = start(emu, "SLACK")
    body = exchange(emu, "SLACK", query).json()
    assert body["ok"] is True and body["token_type"] == "bot" and body["access_token"].startswith("xoxe.xoxb-1-")
    assert body["refresh_token"].startswith("xoxe-1-") and body["expires_in"] == 43200
    assert body["team"] == {"id": "T0DEMO1234", "name": "Demo Team"} and body["enterprise"] is None
    assert body["authed_user"] == {"id": "U0DEMO1234"} and body["scope"] == "chat:write,channels:read"
    test = call("POST", env["SLACK_API_URL"] + "/auth.test", bearer=body["access_token"]).json()
    assert test["ok"] and test["user_id"] == "U0BOT12345" and test["bot_id"] == "B0DEMO1234"
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": p.client_id,
        "client_secret": p.client_secret,
    }
    new = call("POST", env["SLACK_TOKEN_URL"], form=refresh).json()
    assert new["ok"] and new["refresh_token"] != body["refresh_token"] and new["expires_in"] == 43200
    old = call("POST", env["SLACK_TOKEN_URL"], form=refresh)
    assert (old.status, old.json()) == (200, {"ok": False, "error": "invalid_refresh_token"})
    emu.advance_clock(43201)
    expired = call("POST", env["SLACK_API_URL"] + "/auth.test", bearer=body["access_token"]).json()
    assert expired == {"ok": False, "error": "token_expired"}
    newer = call("POST", env["SLACK_TOKEN_URL"], form={**refresh, "refresh_token": new["refresh_token"]}).json()
    revoke = call("POST", env["SLACK_REVOKE_URL"], bearer=newer["access_token"])
    assert revoke.json() == {"ok": True, "revoked": True}
    dead = call("POST", env["SLACK_API_URL"] + "/auth.test", bearer=newer["access_token"])
    assert (dead.status, dead.json()) == (200, {"ok": False, "error": "token_revoked"})


def test_slack_without_rotation_and_with_user_scope(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SLACK"]
    p.rotation = False
    url, params = authorize_request(emu, "SLACK")
    query = consent(url, {**params, "user_scope": "search:read,users:read"})
    body = exchange(emu, "SLACK", query).json()
    assert body["access_token"].startswith("xoxb-") and "refresh_token" not in body and "expires_in" not in body
    user = body["authed_user"]
    assert user["token_type"] == "user" and user["access_token"].startswith("xoxp-")
    assert user["scope"] == "search:read,users:read"
    test = call("POST", emu.env()["SLACK_API_URL"] + "/auth.test", form={"token": user["access_token"]}).json()
    assert test["user_id"] == "U0DEMO1234" and "bot_id" not in test
    emu.advance_clock(10 * 365 * 86400)
    assert p.valid_access(body["access_token"])


def test_slack_errors_are_http_200(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SLACK"]
    url = token_url(emu, "SLACK")
    query, _ = start(emu, "SLACK")
    form = {"code": query["code"], "client_id": p.client_id, "client_secret": p.client_secret, "redirect_uri": REDIRECT}
    for changes, error in [
        ({"client_secret": "x"}, "bad_client_secret"),
        ({"client_id": "1.2"}, "invalid_client_id"),
        ({"code": "nope"}, "invalid_code"),
        ({"redirect_uri": REDIRECT + "/x"}, "bad_redirect_uri"),
    ]:
        resp = call("POST", url, form={**form, **changes})
        assert (resp.status, resp.json()) == (200, {"ok": False, "error": error})
    assert call("POST", url, form=form).json()["ok"] is True
    assert call("POST", url, form=form).json() == {"ok": False, "error": "code_already_used"}
    assert call("POST", emu.env()["SLACK_API_URL"] + "/auth.test").json() == {"ok": False, "error": "not_authed"}


# --- Mailchimp ------------------------------------------------------------------------


def test_mailchimp_flow_and_datacenter_discovery(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["MAILCHIMP"]
    env = emu.env()
    query, _ = start(emu, "MAILCHIMP")
    tokens = exchange(emu, "MAILCHIMP", query).json()
    assert tokens == {"access_token": tokens["access_token"], "expires_in": 0, "scope": None}
    metadata_url = env["MAILCHIMP_API_URL"] + "/oauth2/metadata"
    assert call("GET", metadata_url, bearer=tokens["access_token"]).status == 401
    meta = call("GET", metadata_url, headers={"Authorization": f"OAuth {tokens['access_token']}"}).json()
    assert meta["dc"] == "us19" and meta["accountname"] == "Demo Newsletter" and p.calls["metadata"] == 2
    assert meta["api_endpoint"] == f"{emu.base_url}/mailchimp/us19.api.mailchimp.com"
    assert meta["login"]["login_email"] == "owner@demo.example"
    root = call("GET", meta["api_endpoint"] + "/3.0/", bearer=tokens["access_token"]).json()
    assert root["account_name"] == "Demo Newsletter" and root["account_id"] == p.account["account_id"]
    wrong_dc = call("GET", f"{emu.base_url}/mailchimp/us1.api.mailchimp.com/3.0/", bearer=tokens["access_token"])
    assert wrong_dc.status == 401 and wrong_dc.json()["title"] == "API Key Invalid"
    emu.advance_clock(5 * 365 * 86400)
    assert call("GET", meta["api_endpoint"] + "/3.0/", bearer=tokens["access_token"]).status == 200
    assert {f"MAILCHIMP_{k}_URL" for k in ("AUTH", "TOKEN", "API")} <= set(env) and "MAILCHIMP_REVOKE_URL" not in env


# --- SendGrid -------------------------------------------------------------------------


def test_sendgrid_api_keys(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SENDGRID"]
    api = emu.env()["SENDGRID_API_URL"]
    key = emu.sendgrid_key()
    assert call("GET", api + "/v3/user/username", bearer=key).json() == {"username": "demo_sender", "user_id": 1234567}
    profile = call("GET", api + "/v3/user/profile", bearer=key).json()
    assert profile["company"] == "Demo Co" and "username" not in profile
    for bad in ("SG.nope.nope", None):
        resp = call("GET", api + "/v3/user/username", bearer=bad)
        assert (resp.status, resp.json()) == (401, {"errors": [{"field": None, "message": "authorization required"}]})
    p.revoke_grants()
    assert call("GET", api + "/v3/user/username", bearer=key).status == 401
    fresh = emu.sendgrid_key()
    assert fresh != key and call("GET", api + "/v3/user/username", bearer=fresh).status == 200


def test_slack_tokens_act_in_their_own_workspace_only(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["SLACK"]
    api = emu.env()["SLACK_API_URL"]
    p.set_records(
        "channels",
        [
            {"id": "C0A", "name": "general", "context_team_id": "T0A"},
            {"id": "C0B", "name": "general", "context_team_id": "T0B"},
            {"id": "C0BPLANS", "name": "plans", "context_team_id": "T0B"},
        ],
    )
    p.sign_in_as(team_id="T0A", team="Team A")
    body = exchange(emu, "SLACK", *start(emu, "SLACK")).json()
    assert body["team"] == {"id": "T0A", "name": "Team A"}
    token = body["access_token"]
    assert call("POST", api + "/auth.test", bearer=token).json()["team_id"] == "T0A"
    listed = call("POST", api + "/conversations.list", bearer=token).json()
    assert [c["id"] for c in listed["channels"]] == ["C0A"]
    for other in ("C0BPLANS", "plans", "#plans"):  # another workspace's channel, by id or name
        refused = call("POST", api + "/chat.postMessage", bearer=token, json_body={"channel": other, "text": "x"})
        assert refused.json() == {"ok": False, "error": "channel_not_found"}
    sent = call("POST", api + "/chat.postMessage", bearer=token, json_body={"channel": "general", "text": "x"})
    assert sent.json()["channel"] == "C0A" and [m["channel"] for m in p.records_of("messages")] == ["C0A"]
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": p.client_id,
        "client_secret": p.client_secret,
    }
    assert call("POST", emu.env()["SLACK_TOKEN_URL"], form=refresh).json()["team"]["id"] == "T0A"
