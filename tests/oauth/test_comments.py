"""Comments on YouTube, Instagram and Facebook (TikTok's: test_tiktok_business.py), through the daemon on a
fresh connection made with the scopes the service requests: ``fetch_comments`` syncs them (comment.created /
.updated / .deleted delivered to a webhook, the provider's paging followed), a reply goes through the API (201
with the provider's reply id) and the CLI and is seen at the emulator; bad input, unknown comments, providers
without comments and grants without the comment scopes are clear 4xx answers (MISSING_SCOPES naming the scope).
A Login Kit TikTok connection has no comments (VALIDATION_ERROR naming TikTok API for Business)"""

from __future__ import annotations

import json
import time
import uuid

from emulators.testkit import CallbackSink
from test_sync_scopes import _connect, _sync

SSL = "https://www.googleapis.com/auth/youtube.force-ssl"


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling what the daemon delivers on its own
    return found


def _tiktok(emu, n):
    now = int(time.time())
    video = "7300000000000000001"
    emu.set_records(
        "videos",
        [
            {
                "id": video,
                "title": "launch",
                "create_time": now - 3600,
                "share_url": f"https://www.tiktok.com/@demo/video/{video}",
            }
        ],
    )
    emu.set_records(
        "comments",
        [
            {
                "comment_id": f"74{i:017d}",
                "video_id": video,
                "text": f"nice {i}",
                "likes": i,
                "replies": 0,
                "create_time": now - i,
                "username": f"fan{i}",
                "display_name": f"Fan {i}",
                "parent_comment_id": None,
            }
            for i in range(n)
        ],
    )
    return [f"74{i:017d}" for i in range(n)], video


def _youtube(emu, n):
    uploads, channel = emu.account["uploads"], emu.account["id"]
    emu.set_records(
        "uploads",
        [
            {
                "kind": "youtube#playlistItem",
                "etag": "e",
                "id": "UExpi00001",
                "snippet": {
                    "publishedAt": "2026-11-01T00:00:00Z",
                    "channelId": channel,
                    "title": "launch",
                    "description": "",
                    "playlistId": uploads,
                    "position": 0,
                    "resourceId": {"kind": "youtube#video", "videoId": "vidLaunch01"},
                },
            }
        ],
    )
    emu.set_records(
        "comments",
        [
            {
                "id": f"UgzC{i:06d}",
                "videoId": "vidLaunch01",
                "textOriginal": f"first {i}",
                "authorDisplayName": f"Viewer {i}",
                "authorChannelId": f"UCv{i:06d}",
                "likeCount": i,
                "publishedAt": "2026-11-02T00:00:00Z",
                "updatedAt": "2026-11-02T00:00:00Z",
                "totalReplyCount": 0,
            }
            for i in range(n)
        ],
    )
    return [f"UgzC{i:06d}" for i in range(n)], "vidLaunch01"


def _instagram(emu, n):
    emu.set_records(
        "media",
        [
            {
                "id": "17890000000000001",
                "caption": "launch",
                "media_type": "IMAGE",
                "permalink": "https://www.instagram.com/p/launch/",
                "timestamp": "2026-11-01T00:00:00+0000",
            }
        ],
    )
    emu.set_records(
        "comments",
        [
            {
                "id": f"1790{i:012d}",
                "media_id": "17890000000000001",
                "text": f"love {i}",
                "timestamp": "2026-11-02T00:00:00+0000",
                "username": f"fan{i}",
                "like_count": i,
            }
            for i in range(n)
        ],
    )
    return [f"1790{i:012d}" for i in range(n)], "17890000000000001"


def _facebook(emu, n):
    emu.set_records("pages", [{"id": "101", "name": "Demo Page"}, {"id": "202", "name": "Other Page"}])
    emu.set_records(
        "posts",
        [
            {"id": "202_1", "page_id": "202", "message": "other", "created_time": "2026-11-01T00:00:00+0000"},
            {"id": "101_1", "page_id": "101", "message": "launch", "created_time": "2026-11-01T00:00:00+0000"},
        ],
    )
    emu.set_records(
        "comments",
        [
            {
                "id": f"1_{500 + i}",
                "post_id": "101_1",
                "message": f"great {i}",
                "created_time": "2026-11-02T00:00:00+0000",
                "from": {"id": str(700 + i), "name": f"Fan {i}"},
                "like_count": i,
                "comment_count": 0,
            }
            for i in range(n)
        ],
    )
    return [f"1_{500 + i}" for i in range(n)], "101_1"


# provider -> (seed, comments (paging: over one page where the page size allows), list endpoint, reply endpoint,
#              the text field an edit changes, the scopes a user may untick for reading / replying)
CASES = {
    "YOUTUBE": (_youtube, 120, "commentThreads", "comment_insert", "textOriginal", SSL, SSL),
    "INSTAGRAM": (
        _instagram,
        105,
        "comments",
        "comment_reply",
        "text",
        "instagram_business_manage_comments",
        "instagram_business_manage_comments",
    ),
    "FACEBOOK": (
        _facebook,
        4,
        "comments",
        "comment_reply",
        "message",
        "pages_read_user_content",
        "pages_manage_engagement",
    ),
}


def _events(sink, kind: str) -> list[dict]:
    bodies = [json.loads(body) for _headers, body in sink.received]
    return [b["data"] for b in bodies if b["type"] == kind]


def _reply(stack, integration, user, comment, body):
    return stack.api("POST", f"/integrations/{integration}/comments/{comment}/replies", user=user, body=body)


def test_comments_sync_with_events_and_replies_go_out_through_the_api_and_the_cli(stack, fresh_emulators):
    for provider, (seed, n, listed, replied, text_field, _read, _write) in CASES.items():
        emu = stack.emulators[provider]
        ids, post = seed(emu, n)
        user, integration = _connect(stack, provider)
        with CallbackSink(200) as sink:
            hook = stack.api(
                "POST",
                "/integrations/webhooks",
                user=user,
                body={"integrationId": integration, "url": sink.url, "events": ["comment.*"]},
            )
            assert hook.status == 201, hook.text

            log = _sync(stack, integration, user, "fetch_comments")
            assert (log["status"], log["itemsProcessed"], log["metadata"]["created"]) == ("COMPLETED", n, n), (
                provider,
                log,
            )
            assert log["resourceType"] == "comment", log
            assert emu.calls[listed] >= (2 if n > 50 else 1), provider  # every page of the video's comments
            created = _wait(
                lambda: len(_events(sink, "comment.created")) >= n and _events(sink, "comment.created"),
                20,
                f"{provider} comment.created",
            )
            assert {e["externalId"] for e in created} == set(ids), provider
            item = next(e["item"] for e in created if e["externalId"] == ids[1])
            assert item["postId"] == post and item["author"] and item["text"] and item["createdAt"], item
            assert item["likeCount"] == 1, item

            emu.edit_comment(ids[0], **{text_field: "edited by its author"})
            emu.delete_comment(ids[2])
            log = _sync(stack, integration, user, "fetch_comments")  # incremental: sees the edit
            assert (log["status"], log["metadata"]["updated"], log["metadata"]["created"]) == ("COMPLETED", 1, 0), log
            full = stack.api(
                "POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_comments", "full": True}
            )
            assert full.status == 202, full.text
            updated = _wait(lambda: _events(sink, "comment.updated"), 20, f"{provider} comment.updated")
            assert [(e["externalId"], e["item"]["text"]) for e in updated] == [(ids[0], "edited by its author")]
            deleted = _wait(lambda: _events(sink, "comment.deleted"), 20, f"{provider} comment.deleted")
            assert [e["externalId"] for e in deleted] == [ids[2]], provider

        answer = _reply(stack, integration, user, ids[1], {"text": "Thanks for watching!"})
        assert answer.status == 201, (provider, answer.text)
        data = answer.json()["data"]
        assert (data["provider"], data["commentId"]) == (provider, ids[1]) and data["replyId"], data
        at_provider = emu.replies_to(ids[1])
        assert len(at_provider) == 1 and text_field in at_provider[0], (provider, at_provider)
        assert at_provider[0][text_field] == "Thanks for watching!" and emu.calls[replied] == 1
        assert data["replyId"] == str(at_provider[0]["comment_id" if provider == "TIKTOK" else "id"])

        by_cli = stack.cli("integrations", "reply", integration, ids[3], "Thanks from the CLI")
        assert by_cli.returncode == 0, (provider, by_cli.stdout, by_cli.stderr)
        (made,) = emu.replies_to(ids[3])
        assert made[text_field] == "Thanks from the CLI"
        assert str(made["comment_id" if provider == "TIKTOK" else "id"]) in by_cli.stdout

        calls = emu.calls[replied]
        for body, status, code in (
            ({"text": ""}, 400, "VALIDATION_ERROR"),
            ({"text": "x" * 10001}, 400, "VALIDATION_ERROR"),
            ({}, 400, "VALIDATION_ERROR"),
            ({"text": "hi", "extra": 1}, 400, "VALIDATION_ERROR"),
        ):
            refused = _reply(stack, integration, user, ids[1], body)
            assert (refused.status, refused.json()["error"]["code"]) == (status, code), (provider, refused.text)
        assert emu.calls[replied] == calls  # refused before asking the provider
        unknown = _reply(stack, integration, user, ids[2], {"text": "hello?"})  # deleted at the provider
        assert (unknown.status, unknown.json()["error"]["code"]) == (404, "NOT_FOUND"), (provider, unknown.text)
        stranger = _reply(stack, integration, uuid.uuid4(), ids[1], {"text": "not mine"})
        assert (stranger.status, stranger.json()["error"]["code"]) == (404, "INTEGRATION_NOT_FOUND")
        service = stack.api(
            "POST",
            f"/integrations/{integration}/comments/{ids[1]}/replies",
            user="content-service",
            roles=("service",),
            body={"text": "From the service"},
        )
        assert service.status == 201, service.text


def test_a_reply_too_long_for_the_provider_is_refused_before_the_call(stack, fresh_emulators):
    ids, _post = _instagram(stack.emulators["INSTAGRAM"], 2)
    user, integration = _connect(stack, "INSTAGRAM")
    refused = _reply(stack, integration, user, ids[0], {"text": "y" * 2201})
    assert (refused.status, refused.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
    assert "2200" in refused.json()["error"]["message"]
    assert stack.emulators["INSTAGRAM"].calls["comment_reply"] == 0
    bad_id = _reply(stack, integration, user, "a%20b", {"text": "hi"})
    assert (bad_id.status, bad_id.json()["error"]["code"]) == (400, "VALIDATION_ERROR"), bad_id.text
    by_cli = stack.cli("integrations", "reply", integration, ids[0], "")
    assert by_cli.returncode == 2 and "text" in by_cli.stdout + by_cli.stderr, (by_cli.stdout, by_cli.stderr)


def test_a_login_kit_tiktok_connection_has_no_comments_and_says_what_they_need(stack, fresh_emulators):
    """TikTok's Login Kit / Display API has no comment endpoints: a connection made with a Login Kit app (the
    default TIKTOK_APP, no tiktokApp asked) is neither asked for nor offered comments; the refusal names TikTok
    API for Business."""
    emu = stack.emulators["TIKTOK"]
    ids, video = _tiktok(emu, 2)
    user, integration = _connect(stack, "TIKTOK")
    granted = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]["scope"]
    assert not {"comment.list", "comment.list.manage"} & set(granted), granted  # never asked at the consent
    for answer in (
        stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_comments"}),
        _reply(stack, integration, user, ids[0], {"text": "hi", "videoId": video}),
    ):
        assert (answer.status, answer.json()["error"]["code"]) == (400, "VALIDATION_ERROR"), answer.text
        assert "TikTok API for Business" in answer.json()["error"]["message"]
        assert "metadata.provider.tiktokApp=business" in answer.json()["error"]["message"]
    everything = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={})
    assert everything.status == 202, everything.text
    assert "fetch_comments" not in [log["action"] for log in everything.json()["data"]["syncLogs"]]
    assert emu.calls["comment_list"] == 0 and emu.calls["comment_reply"] == 0
    health = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
    assert health["scopes"]["missing"] == [], health
    shown = json.loads(stack.cli("providers", "show", "TIKTOK", "--json").stdout)
    assert not {"comment.list", "comment.list.manage"} & set(shown["scopes"]), shown["scopes"]
    (reply,) = [a for a in shown["actions"] if a["name"] == "reply_comment"]
    assert "TikTok API for Business" in reply["how"] and reply["scopes"] == ["comment.list.manage"]


def test_a_provider_without_comments_is_a_validation_error(stack, fresh_emulators):
    user, integration = _connect(stack, "DISCORD")
    refused = _reply(stack, integration, user, "123", {"text": "hi"})
    assert (refused.status, refused.json()["error"]["code"]) == (400, "VALIDATION_ERROR"), refused.text
    assert "DISCORD has no comments" in refused.json()["error"]["message"]
    log = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_comments"})
    assert log.status == 400 and log.json()["error"]["code"] == "VALIDATION_ERROR"


def test_a_grant_without_the_comment_scopes_fails_with_missing_scopes(stack, fresh_emulators):
    for provider, (seed, _n, listed, replied, _field, read, write) in CASES.items():
        emu = stack.emulators[provider]
        ids, _post = seed(emu, 3)
        user, integration = _connect(stack, provider, without=tuple({read, write}))
        log = _sync(stack, integration, user, "fetch_comments")
        assert log["status"] == "FAILED" and log["error"].startswith("MISSING_SCOPES: ") and read in log["error"], (
            provider,
            log,
        )
        refused = _reply(stack, integration, user, ids[0], {"text": "hi"})
        assert (refused.status, refused.json()["error"]["code"]) == (403, "MISSING_SCOPES"), refused.text
        assert write in refused.json()["error"]["message"]
        by_cli = stack.cli("integrations", "reply", integration, ids[0], "hi")
        assert by_cli.returncode == 28 and write in by_cli.stdout + by_cli.stderr, (by_cli.stdout, by_cli.stderr)
        health = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
        if provider == "FACEBOOK":  # its token answer lists no scopes: Graph's own refusal (#10 / #200) tells
            assert emu.calls[listed] == 1 and emu.calls[replied] >= 2, provider
            continue
        assert emu.calls[listed] == 0 and emu.calls[replied] == 0, provider  # refused before any call
        assert write in health["scopes"]["missing"], health


def test_a_scope_removed_at_the_provider_later_is_its_refusal_as_missing_scopes(stack, fresh_emulators):
    for provider, (seed, _n, listed, replied, _field, read, write) in CASES.items():
        emu = stack.emulators[provider]
        ids, post = seed(emu, 3)
        user, integration = _connect(stack, provider)
        emu.revoke_scope(read, write)  # the user removes the permission in the provider's settings
        hint = {"videoId": post} if provider == "TIKTOK" else {}  # else its lookup (comment.list) is refused first
        refused = _reply(stack, integration, user, ids[0], {"text": "hi", **hint})
        assert (refused.status, refused.json()["error"]["code"]) == (403, "MISSING_SCOPES"), (provider, refused.text)
        assert emu.calls[replied] >= 1 and "connect it again" in refused.json()["error"]["message"]
        log = _sync(stack, integration, user, "fetch_comments")
        assert log["status"] == "FAILED" and log["error"].startswith("MISSING_SCOPES: "), (provider, log)
        assert emu.calls[listed] >= 1  # the provider's own refusal, read as such


def test_providers_show_lists_the_comment_actions_with_their_scopes(stack):
    for provider in CASES:
        shown = stack.cli("providers", "show", provider, "--json")
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        (reply,) = [a for a in data["actions"] if a["name"] == "reply_comment"]
        assert reply["capability"] == "comments" and "comments" in data["capabilities"], data
        assert " ".join(reply["scopes"]) == data["actionScopes"]["reply_comment"], data["actionScopes"]
        assert "fetch_comments" in data["actionScopes"] and set(reply["scopes"]) <= set(data["scopes"]), data
