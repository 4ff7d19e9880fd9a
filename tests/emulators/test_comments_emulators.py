"""The comment endpoints of the TikTok, YouTube, Instagram and Facebook emulators (tests/emulators/comments.py):
paging, bad input and refusals as each provider answers them. The daemon's use of them: tests/oauth/test_comments.py."""

from __future__ import annotations

from .seed import seed
from .testkit import call

SSL = "https://www.googleapis.com/auth/youtube.force-ssl"


def _token(p, *scopes: str, **data) -> str:
    return p.issue(p.new_grant(list(scopes)), "access", 3600, **data).value


def _business(p, *scopes: str) -> tuple[str, str]:
    """A TikTok API for Business token of the default account, and its business_id."""
    open_id = p.account["open_id"]
    return p.issue(p.new_grant(list(scopes), open_id=open_id, api="business"), "access", 3600).value, open_id


def test_tiktok_comments_are_on_the_business_api_only(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TIKTOK"]
    seed(emu)
    base = emu.env()["TIKTOK_BUSINESS_URL"].rstrip("/") + "/open_api/v1.3/business"
    video = p.records_of("comments")[0]["video_id"]
    token, business_id = _business(p, "video.list", "comment.list")
    ask = {"business_id": business_id, "video_id": video, "max_count": 2}
    first = call("GET", base + "/comment/list/", params=ask, headers={"Access-Token": token}).json()
    assert first["code"] == 0 and len(first["data"]["comments"]) == 2 and first["data"]["has_more"], first
    rest = call(
        "GET",
        base + "/comment/list/",
        params={**ask, "cursor": first["data"]["cursor"]},
        headers={"Access-Token": token},
    ).json()
    assert len(rest["data"]["comments"]) == 1 and rest["data"]["has_more"] is False
    assert {"comment_id", "video_id", "text", "likes", "replies", "create_time"} <= set(first["data"]["comments"][0])
    videos = call(
        "GET",
        base + "/video/list/",
        params={"business_id": business_id, "fields": '["item_id","create_time"]'},
        headers={"Access-Token": token},
    ).json()
    assert video in [v["item_id"] for v in videos["data"]["videos"]], videos

    def code(params, access=token):
        return call("GET", base + "/comment/list/", params=params, headers={"Access-Token": access} if access else {})

    assert code({**ask, "max_count": 31}).json()["code"] == 40002  # 30 at most
    assert code({**ask, "video_id": "1"}).json()["code"] == 40002  # not the account's video
    assert code({**ask, "business_id": "-000another"}).json()["code"] == 40001  # another account's id
    assert code(ask, access=None).json()["code"] == 40104  # no Access-Token
    assert code(ask, access="act.forged").json()["code"] == 40105
    login_kit = p.issue(p.new_grant(["video.list", "comment.list"], open_id=business_id), "access", 3600).value
    assert code(ask, access=login_kit).json()["code"] == 40105  # a Login Kit token is not a Business API one
    no_scope, _ = _business(p, "video.list")
    refused = code(ask, access=no_scope).json()
    assert refused["code"] == 40001 and "comment.list" in refused["message"], refused
    # ... and Login Kit's host has no comment endpoint, and takes no Business API token
    assert call("POST", emu.env()["TIKTOK_API_URL"] + "/v2/comment/list/", json_body={}, bearer=token).status == 404
    listed = call(
        "POST", emu.env()["TIKTOK_API_URL"] + "/v2/video/list/", params={"fields": "id"}, json_body={}, bearer=token
    )
    assert listed.status == 401 and listed.json()["error"]["code"] == "access_token_invalid"


def test_tiktok_reply_needs_the_manage_scope_the_comments_video_and_short_text(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["TIKTOK"]
    seed(emu)
    url = emu.env()["TIKTOK_BUSINESS_URL"].rstrip("/") + "/open_api/v1.3/business/comment/reply/create/"
    comment = p.records_of("comments")[0]
    reader, business_id = _business(p, "comment.list")
    body = {"business_id": business_id, "video_id": comment["video_id"], "comment_id": comment["comment_id"]}
    body["text"] = "thanks"
    assert call("POST", url, json_body=body, headers={"Access-Token": reader}).json()["code"] == 40001
    token, _ = _business(p, "comment.list.manage")
    assert (
        call("POST", url, json_body={**body, "video_id": "1"}, headers={"Access-Token": token}).json()["code"] == 40002
    )
    assert (
        call("POST", url, json_body={**body, "text": "x" * 151}, headers={"Access-Token": token}).json()["code"]
        == 40002
    )
    made = call("POST", url, json_body=body, headers={"Access-Token": token}).json()
    assert made["code"] == 0, made
    assert [r["comment_id"] for r in p.replies_to(comment["comment_id"])] == [made["data"]["comment_id"]]


def test_youtube_comment_threads_page_and_insert_needs_force_ssl(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["YOUTUBE"]
    seed(emu)
    api = emu.env()["YOUTUBE_API_URL"] + "/youtube/v3"
    video = p.records_of("comments")[0]["videoId"]
    readonly = _token(p, "https://www.googleapis.com/auth/youtube.readonly")
    refused = call("GET", f"{api}/commentThreads", params={"part": "snippet", "videoId": video}, bearer=readonly)
    assert refused.status == 403 and refused.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
    token = _token(p, SSL)
    page = call(
        "GET", f"{api}/commentThreads", params={"part": "snippet", "videoId": video, "maxResults": 2}, bearer=token
    ).json()
    assert len(page["items"]) == 2 and page["nextPageToken"]
    assert page["items"][0]["snippet"]["topLevelComment"]["snippet"]["videoId"] == video
    rest = call(
        "GET",
        f"{api}/commentThreads",
        params={"part": "snippet", "videoId": video, "maxResults": 2, "pageToken": page["nextPageToken"]},
        bearer=token,
    ).json()
    assert len(rest["items"]) == 1 and "nextPageToken" not in rest
    bad = call(
        "GET", f"{api}/commentThreads", params={"part": "snippet", "videoId": video, "pageToken": "zz"}, bearer=token
    )
    assert bad.status == 400 and bad.json()["error"]["errors"][0]["reason"] == "invalidPageToken"
    gone = call("GET", f"{api}/commentThreads", params={"part": "snippet", "videoId": "nope"}, bearer=token)
    assert gone.status == 404 and gone.json()["error"]["errors"][0]["reason"] == "videoNotFound"
    parent = page["items"][0]["id"]
    insert = {"snippet": {"parentId": parent, "textOriginal": "thanks"}}
    assert call("POST", f"{api}/comments", params={"part": "snippet"}, json_body=insert, bearer=readonly).status == 403
    missing = call(
        "POST",
        f"{api}/comments",
        params={"part": "snippet"},
        bearer=token,
        json_body={"snippet": {"parentId": "nope", "textOriginal": "hi"}},
    )
    assert missing.status == 404 and missing.json()["error"]["errors"][0]["reason"] == "commentNotFound"
    made = call("POST", f"{api}/comments", params={"part": "snippet"}, json_body=insert, bearer=token).json()
    assert made["snippet"]["parentId"] == parent and [r["id"] for r in p.replies_to(parent)] == [made["id"]]
    again = call("GET", f"{api}/commentThreads", params={"part": "snippet", "videoId": video}, bearer=token).json()
    assert [t["snippet"]["totalReplyCount"] for t in again["items"] if t["id"] == parent] == [1]


def test_instagram_comments_and_replies_need_manage_comments(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["INSTAGRAM"]
    seed(emu)
    api = emu.env()["INSTAGRAM_API_URL"]
    comment = p.records_of("comments")[0]
    basic = _token(p, "instagram_business_basic")
    refused = call("GET", f"{api}/{comment['media_id']}/comments", bearer=basic)
    assert refused.status == 403 and refused.json()["error"]["code"] == 10
    token = _token(p, "instagram_business_basic", "instagram_business_manage_comments")
    listed = call(
        "GET", f"{api}/{comment['media_id']}/comments", params={"fields": "id,text", "limit": 2}, bearer=token
    ).json()
    assert len(listed["data"]) == 2 and listed["paging"]["next"]
    assert call("POST", f"{api}/{comment['id']}/replies", params={"message": "hi"}, bearer=basic).status == 403
    made = call("POST", f"{api}/{comment['id']}/replies", params={"message": "thanks"}, bearer=token).json()["id"]
    nested = call("POST", f"{api}/{made}/replies", params={"message": "deeper"}, bearer=token)
    assert nested.status == 400 and nested.json()["error"]["code"] == 100  # replies go to top-level comments only
    assert [r["text"] for r in p.replies_to(comment["id"])] == ["thanks"]


def test_facebook_comments_want_the_posts_page_token_and_the_scopes(fresh_emulators):
    emu, p = fresh_emulators, fresh_emulators["FACEBOOK"]
    seed(emu)
    api = emu.env()["FACEBOOK_API_URL"]
    comment = p.records_of("comments")[0]
    user = p.issue(p.new_grant(["pages_show_list", "pages_read_engagement"]), "access", 3600)
    as_user = call("GET", f"{api}/{comment['post_id']}/comments", bearer=user.value)
    assert as_user.status == 400 and as_user.json()["error"]["code"] == 100  # a user token: not this page's
    page_token = p.page_token(user, "101")
    refused = call("GET", f"{api}/{comment['post_id']}/comments", bearer=page_token)
    assert refused.status == 403 and refused.json()["error"]["code"] == 10
    reply = call("POST", f"{api}/{comment['id']}/comments", form={"message": "hi"}, bearer=page_token)
    assert reply.status == 403 and reply.json()["error"]["code"] == 200
    full = p.issue(
        p.new_grant(["pages_show_list", "pages_read_user_content", "pages_manage_engagement"]), "access", 3600
    )
    token = p.page_token(full, "101")
    listed = call(
        "GET", f"{api}/{comment['post_id']}/comments", params={"fields": "id,message,from"}, bearer=token
    ).json()
    assert len(listed["data"]) == 3 and listed["data"][0]["from"]["name"]
    made = call("POST", f"{api}/{comment['id']}/comments", form={"message": "thanks"}, bearer=token).json()["id"]
    assert [r["id"] for r in p.replies_to(comment["id"])] == [made]
