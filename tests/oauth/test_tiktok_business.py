"""TikTok comments through a TikTok API for Business app, on a daemon whose default TikTok app is one
(TIKTOK_APP=business; test_tiktok_apps.py has both kinds side by side): a fresh connection made in the browser with
the scopes the service asks for, its code redeemed at business-api.tiktok.com's tt_user/oauth2/token/,
``fetch_comments`` syncing comment.created events from business/comment/list/, replies through the API and the CLI
landing at business/comment/reply/create/, the refresh rotating at tt_user/oauth2/refresh_token/; the emulator
refuses Login Kit tokens there, foreign business ids and missing scopes as TikTok does, and the daemon reads those
refusals as such. The same daemon's catalog says what TikTok comments need; Login Kit actions are refused on such a
connection."""

from __future__ import annotations

import json
import urllib.parse
import uuid

import pytest
from emulators.testkit import CallbackSink, call
from support.stack import launch_stack
from test_comments import _events, _reply, _tiktok, _wait
from test_sync_scopes import _connect, _sync

BUSINESS_SCOPES = {"user.info.basic", "video.list", "comment.list", "comment.list.manage"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, emulators, tmp_path_factory, pg_template):
    env = {"TIKTOK_APP": "business", "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"}  # the webhook sink is local
    with launch_stack(request.param, tmp_path_factory.mktemp("tiktok-business"), emulators, pg_template, env) as stack:
        yield stack


def test_a_business_connection_syncs_comments_and_replies_through_the_business_api(stack, fresh_emulators):
    emu = stack.emulators["TIKTOK"]
    ids, video = _tiktok(emu, 45)  # two pages of business/comment/list/ (30 at most)
    started = stack.initiate("TIKTOK", uuid.uuid4())
    assert started.status == 200, started.text
    consent = urllib.parse.urlsplit(started.json()["data"]["authorizationUrl"])
    asked = dict(urllib.parse.parse_qsl(consent.query))
    assert set(asked["scope"].split(",")) == BUSINESS_SCOPES and asked["client_key"], asked
    assert consent.path.endswith("www.tiktok.com/v2/auth/authorize/"), consent
    user, integration = _connect(stack, "TIKTOK")
    assert emu.calls["token"] == 1  # tt_user/oauth2/token/: only its grants pass the Business API below
    row = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert set(row["scope"]) == BUSINESS_SCOPES, row
    assert row["metadata"]["provider"]["tiktokApp"] == "business", row["metadata"]
    assert row["metadata"]["provider"]["accountType"] == "business"

    with CallbackSink(200) as sink:
        hook = stack.api(
            "POST",
            "/integrations/webhooks",
            user=user,
            body={"integrationId": integration, "url": sink.url, "events": ["comment.*"]},
        )
        assert hook.status == 201, hook.text
        log = _sync(stack, integration, user, "fetch_comments")
        assert (log["status"], log["itemsProcessed"], log["metadata"]["created"]) == ("COMPLETED", 45, 45), log
        assert emu.calls["business_videos"] == 1 and emu.calls["comment_list"] == 2
        created = _wait(
            lambda: len(_events(sink, "comment.created")) >= 45 and _events(sink, "comment.created"), 20, ""
        )
        assert {e["externalId"] for e in created} == set(ids)
        item = next(e["item"] for e in created if e["externalId"] == ids[1])
        assert (item["postId"], item["text"], item["likeCount"], item["author"]) == (video, "nice 1", 1, "Fan 1")

    answer = _reply(stack, integration, user, ids[1], {"text": "Thanks for watching!"})
    assert answer.status == 201, answer.text
    (made,) = emu.replies_to(ids[1])
    assert made["text"] == "Thanks for watching!" and answer.json()["data"]["replyId"] == made["comment_id"]
    by_cli = stack.cli("integrations", "reply", integration, ids[3], "Thanks from the CLI", "--json")
    assert by_cli.returncode == 0, (by_cli.stdout, by_cli.stderr)
    (made,) = emu.replies_to(ids[3])
    assert made["text"] == "Thanks from the CLI" and made["comment_id"] in by_cli.stdout
    assert emu.calls["comment_reply"] == 2

    too_long = _reply(stack, integration, user, ids[0], {"text": "y" * 151})
    assert (too_long.status, too_long.json()["error"]["code"]) == (400, "VALIDATION_ERROR") and "150" in too_long.text
    listed = emu.calls["comment_list"]
    assert listed > 2  # the two replies without videoId looked the comment's video up
    with_video = _reply(stack, integration, user, ids[0], {"text": "hi", "videoId": video})
    assert with_video.status == 201 and emu.calls["comment_list"] == listed  # no lookup needed
    unknown = _reply(stack, integration, user, "7400000000000099999", {"text": "hi", "videoId": video})
    assert (unknown.status, unknown.json()["error"]["code"]) == (404, "NOT_FOUND"), unknown.text

    # Login Kit actions are not this connection's: refused before any call, saying why
    for action in ("fetch_posts", "fetch_analytics"):
        refused = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": action})
        assert (refused.status, refused.json()["error"]["code"]) == (400, "VALIDATION_ERROR"), refused.text
        assert "tiktokApp=login_kit" in refused.json()["error"]["message"]
    assert emu.calls["videos"] == 0 and emu.calls["whoami"] == 1  # Login Kit's video/list never; business/get once
    health = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
    assert health["scopes"]["missing"] == [], health


def test_the_refresh_rotates_at_the_business_token_endpoint_and_the_new_token_reads_comments(stack, fresh_emulators):
    emu = stack.emulators["TIKTOK"]
    _tiktok(emu, 3)
    user, integration = _connect(stack, "TIKTOK")
    first = [t.value for t in emu.tokens.values() if t.kind == "refresh" and t.alive]
    refreshed = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert refreshed.status == 200, refreshed.text
    assert emu.calls["refresh"] == 1
    (old,) = [emu.tokens[v] for v in first]
    assert old.rotated  # TikTok's refresh tokens are single-use
    log = _sync(stack, integration, user, "fetch_comments")
    assert (log["status"], log["metadata"]["created"]) == ("COMPLETED", 3), log


def test_missing_comment_scopes_are_missing_scopes_before_and_at_tiktok(stack, fresh_emulators):
    emu = stack.emulators["TIKTOK"]
    ids, video = _tiktok(emu, 3)
    user, integration = _connect(stack, "TIKTOK", without=("comment.list", "comment.list.manage"))
    log = _sync(stack, integration, user, "fetch_comments")
    assert log["status"] == "FAILED" and log["error"].startswith("MISSING_SCOPES: ") and "comment.list" in log["error"]
    refused = _reply(stack, integration, user, ids[0], {"text": "hi", "videoId": video})
    assert (refused.status, refused.json()["error"]["code"]) == (403, "MISSING_SCOPES"), refused.text
    assert emu.calls["comment_list"] == 0 and emu.calls["comment_reply"] == 0  # refused before any call
    health = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
    assert "comment.list.manage" in health["scopes"]["missing"], health

    user, integration = _connect(stack, "TIKTOK")
    emu.revoke_scope("comment.list", "comment.list.manage")  # removed later in the account's settings: 40001
    refused = _reply(stack, integration, user, ids[0], {"text": "hi", "videoId": video})
    assert (refused.status, refused.json()["error"]["code"]) == (403, "MISSING_SCOPES"), refused.text
    assert emu.calls["comment_reply"] == 1 and "comment.list.manage" in refused.json()["error"]["message"]
    log = _sync(stack, integration, user, "fetch_comments")
    assert log["status"] == "FAILED" and log["error"].startswith("MISSING_SCOPES: "), log
    assert emu.calls["comment_list"] == 1


def test_a_login_kit_token_is_refused_by_the_business_api(stack, fresh_emulators):
    """What the emulator answers a Login Kit token on the comment endpoints: TikTok's 40105, so a service that
    sent the wrong token could not pass this suite."""
    emu, env = stack.emulators["TIKTOK"], fresh_emulators.env()
    ids, video = _tiktok(emu, 1)
    login_kit = emu.issue(emu.new_grant(["comment.list"], open_id=emu.account["open_id"]), "access", 3600).value
    url = env["TIKTOK_BUSINESS_URL"].rstrip("/") + "/open_api/v1.3/business/comment/list/"
    answer = call(
        "GET",
        url,
        params={"business_id": emu.account["open_id"], "video_id": video},
        headers={"Access-Token": login_kit},
    )
    assert answer.json()["code"] == 40105 and ids


def test_providers_show_says_what_tiktok_comments_need(stack):
    shown = stack.cli("providers", "show", "TIKTOK", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert set(data["scopes"]) == BUSINESS_SCOPES, data["scopes"]
    actions = {a["name"]: a for a in data["actions"]}
    assert actions["fetch_comments"]["scopes"] == ["video.list", "comment.list"]
    assert actions["reply_comment"]["scopes"] == ["comment.list.manage"]
    for name in ("fetch_comments", "reply_comment"):
        assert "TikTok API for Business" in actions[name]["how"] and "business account" in actions[name]["how"]
    assert data["endpoints"]["business"]["overridden"] is True


def test_content_published_skips_a_business_connection_which_does_not_publish(stack, fresh_emulators):
    """Publishing is Login Kit's Content Posting API: a video for a TikTok API for Business connection is skipped
    (CANCELLED with the reason, no call, no integration error), not failed."""
    user, integration = _connect(stack, "TIKTOK")
    _, data = stack.ingest_content(user, "A video", media=[{"type": "video", "url": "https://cdn.example.com/v.mp4"}])
    (queued,) = data["syncLogs"]
    assert queued["integrationId"] == integration and "TikTok API for Business" in queued["skipped"], queued
    assert stack.emulators["TIKTOK"].calls["creator_info"] == 0 and stack.emulators["TIKTOK"].calls["publish_init"] == 0


def test_the_api_proxy_reaches_the_business_api_with_the_access_token_header(stack, fresh_emulators):
    user, integration = _connect(stack, "TIKTOK")
    open_id = stack.emulators["TIKTOK"].account["open_id"]
    query = urllib.parse.urlencode({"business_id": open_id, "fields": '["display_name"]'})
    answer = stack.api("GET", f"/integrations/{integration}/proxy/open_api/v1.3/business/get/?{query}", user=user)
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["code"] == 0 and body["data"]["display_name"] == stack.emulators["TIKTOK"].account["display_name"]
