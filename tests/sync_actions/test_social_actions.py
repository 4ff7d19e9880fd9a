"""fetch_posts of TikTok, Instagram, Facebook, YouTube, X and LinkedIn against their emulators."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from support import clock
from synckit import mint, read_all

from nexusctl.errors import ProviderError, RateLimited, TokenExpired

PACIFIC = zoneinfo.ZoneInfo("America/Los_Angeles")

# --- TikTok -------------------------------------------------------------------------------------

T0 = 1_760_000_000  # epoch seconds of the newest video


def _videos(n):
    return [
        {
            "id": f"73{i:017d}",
            "title": f"video {i}",
            "create_time": T0 - i * 60,
            "share_url": f"https://www.tiktok.com/@demo/video/73{i:017d}",
            "view_count": 1000 + i,
        }
        for i in range(n)
    ]


def test_tiktok_reads_every_video_across_cursor_pages(fresh_emulators):
    fresh_emulators["TIKTOK"].set_records("videos", _videos(45))
    token = mint(fresh_emulators, "TIKTOK", ["user.info.basic", "video.list"])
    pages, calls = read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    assert calls == 3 == fresh_emulators["TIKTOK"].calls["videos"]
    assert [len(p.items) for p in pages] == [20, 20, 5]
    assert [i.external_id for p in pages for i in p.items] == [v["id"] for v in _videos(45)]
    assert pages[0].resume == {"cursor": (T0 - 19 * 60) * 1000} and pages[-1].resume is None
    first = pages[0].items[3].data
    assert first == {
        "id": "7300000000000000003",
        "title": "video 3",
        "createTime": T0 - 180,
        "shareUrl": "https://www.tiktok.com/@demo/video/7300000000000000003",
    }


def test_tiktok_resumes_from_a_stored_cursor(fresh_emulators):
    fresh_emulators["TIKTOK"].set_records("videos", _videos(45))
    token = mint(fresh_emulators, "TIKTOK", ["video.list"])
    first, _ = read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token, max_pages=2)
    rest, calls = read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token, resume=first[1].resume)
    assert calls == 1 and [i.external_id for i in rest[0].items] == [v["id"] for v in _videos(45)[40:]]
    assert rest[0].resume is None


def test_tiktok_last_page_exactly_full_ends_on_has_more(fresh_emulators):
    fresh_emulators["TIKTOK"].set_records("videos", _videos(40))
    token = mint(fresh_emulators, "TIKTOK", ["video.list"])
    pages, calls = read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    assert calls == 2 and pages[-1].resume is None and sum(len(p.items) for p in pages) == 40


def test_tiktok_errors(fresh_emulators):
    emu = fresh_emulators["TIKTOK"]
    emu.set_records("videos", _videos(3))
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token="act.not-a-token")
    with pytest.raises(ProviderError, match="video.list") as caught:
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=mint(fresh_emulators, "TIKTOK", ["user.info.basic"]))
    assert not isinstance(caught.value, TokenExpired)
    token = mint(fresh_emulators, "TIKTOK", ["video.list"])
    emu.rate_limit_next("videos", retry_after=40)
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    assert limited.value.retry_after in (39, 40)
    emu.fail_next(
        "videos",
        400,
        {"data": {}, "error": {"code": "invalid_params", "message": "cursor is invalid", "log_id": "2026"}},
    )
    with pytest.raises(ProviderError, match="cursor is invalid"):
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    emu.fail_next(
        "videos", 200, {"data": {}, "error": {"code": "internal_error", "message": "try later", "log_id": "2026"}}
    )
    with pytest.raises(ProviderError, match="internal_error"):
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    assert token not in str(caught.value)


# --- Instagram ----------------------------------------------------------------------------------


def _media(n):
    return [
        {
            "id": f"1789{i:012d}",
            "caption": f"caption {i}",
            "media_type": "IMAGE" if i % 3 else "VIDEO",
            "media_url": f"https://scontent.cdninstagram.com/{i}.jpg?oh=sig{i}",
            "permalink": f"https://ig/p/{i}",
            "timestamp": f"2026-10-{1 + i % 28:02d}T10:00:00+0000",
            "like_count": i,
        }
        for i in range(n)
    ]


def test_instagram_reads_every_media_across_cursor_pages(fresh_emulators):
    fresh_emulators["INSTAGRAM"].set_records("media", _media(230))
    token = mint(fresh_emulators, "INSTAGRAM", ["instagram_business_basic"])
    pages, calls = read_all(fresh_emulators, "INSTAGRAM", "fetch_posts", token=token)
    assert calls == 3 == fresh_emulators["INSTAGRAM"].calls["media"]
    assert [len(p.items) for p in pages] == [100, 100, 30]
    assert [i.external_id for p in pages for i in p.items] == [m["id"] for m in _media(230)]
    assert pages[0].resume and pages[-1].resume is None
    assert pages[1].items[3].data == {
        "id": "1789000000000103",
        "caption": "caption 103",
        "mediaType": "IMAGE",
        "permalink": "https://ig/p/103",
        "timestamp": "2026-10-20T10:00:00+0000",
    }


def test_instagram_resumes_and_maps_graph_errors(fresh_emulators):
    emu = fresh_emulators["INSTAGRAM"]
    emu.set_records("media", _media(230))
    token = mint(fresh_emulators, "INSTAGRAM", ["instagram_business_basic"])
    first, _ = read_all(fresh_emulators, "INSTAGRAM", "fetch_posts", token=token, max_pages=1)
    rest, calls = read_all(fresh_emulators, "INSTAGRAM", "fetch_posts", token=token, resume=first[0].resume)
    assert calls == 2 and rest[0].items[0].external_id == "1789000000000100" and len(rest[1].items) == 30
    with pytest.raises(TokenExpired):  # Graph code 190 on HTTP 400
        read_all(fresh_emulators, "INSTAGRAM", "fetch_posts", token="IGAAnot-a-token")
    emu.rate_limit_next("media")  # Graph code 4 on HTTP 403
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "INSTAGRAM", "fetch_posts", token=token)
    emu.fail_next(
        "media",
        400,
        {
            "error": {
                "message": "(#100) Tried accessing nonexisting field (media_url)",
                "type": "OAuthException",
                "code": 100,
                "fbtrace_id": "x",
            }
        },
    )
    with pytest.raises(ProviderError, match="nonexisting field") as caught:
        read_all(fresh_emulators, "INSTAGRAM", "fetch_posts", token=token)
    assert not isinstance(caught.value, TokenExpired) and token not in str(caught.value)


# --- Facebook -----------------------------------------------------------------------------------

FB_PAGES = [{"id": "101", "name": "Page A"}, {"id": "102", "name": "Page B"}, {"id": "103", "name": "Page C"}]


def _posts():
    rows = [
        {"id": f"101_{i}", "page_id": "101", "message": f"a{i}", "created_time": f"2026-11-01T00:{i % 60:02d}:00+0000"}
        for i in range(150)
    ]
    rows += [
        {"id": f"103_{i}", "page_id": "103", "message": f"c{i}", "created_time": "2026-10-01T00:00:00+0000"}
        for i in range(20)
    ]
    return rows  # Page B has no posts


def test_facebook_reads_the_posts_of_every_page(fresh_emulators):
    emu = fresh_emulators["FACEBOOK"]
    emu.set_records("pages", FB_PAGES)
    emu.set_records("posts", _posts())
    token = mint(fresh_emulators, "FACEBOOK", ["pages_show_list", "pages_read_engagement"])
    pages, calls = read_all(fresh_emulators, "FACEBOOK", "fetch_posts", token=token)
    assert emu.calls["accounts"] == 1 and emu.calls["posts"] == 4 and calls == 5
    assert [len(p.items) for p in pages] == [100, 50, 0, 20]
    assert [i.external_id for p in pages for i in p.items] == [p["id"] for p in _posts()]
    assert [p.resume["container"] for p in pages[:3]] == ["101", "102", "103"] and pages[-1].resume is None
    assert pages[0].resume["after"] and pages[1].resume == {"container": "102", "index": 1, "after": None}
    assert pages[3].items[0].data == {
        "id": "103_0",
        "pageId": "103",
        "pageName": "Page C",
        "message": "c0",
        "createdTime": "2026-10-01T00:00:00+0000",
    }


def test_facebook_reads_each_page_with_its_own_token_and_keeps_none(fresh_emulators):
    import json

    emu = fresh_emulators["FACEBOOK"]
    emu.set_records("pages", FB_PAGES)
    emu.set_records("posts", _posts())
    token = mint(fresh_emulators, "FACEBOOK", ["pages_show_list", "pages_read_engagement"])
    pages, _ = read_all(fresh_emulators, "FACEBOOK", "fetch_posts", token=token)
    assert sum(len(p.items) for p in pages) == 170  # the emulator refuses a page's posts to the user token
    page_tokens = set(emu.page_tokens.values())
    assert len(page_tokens) == 3
    kept = json.dumps([[p.resume, [i.data for i in p.items]] for p in pages])
    assert not any(t in kept for t in page_tokens)  # neither in the resume state nor in the items


def test_facebook_resumes_inside_a_page_even_when_the_page_list_changed(fresh_emulators):
    emu = fresh_emulators["FACEBOOK"]
    emu.set_records("pages", FB_PAGES)
    emu.set_records("posts", _posts())
    token = mint(fresh_emulators, "FACEBOOK", ["pages_show_list"])
    first, _ = read_all(fresh_emulators, "FACEBOOK", "fetch_posts", token=token, max_pages=1)
    emu.set_records("pages", [FB_PAGES[2], FB_PAGES[0]])  # page C now first, B gone
    rest, calls = read_all(fresh_emulators, "FACEBOOK", "fetch_posts", token=token, resume=first[0].resume)
    assert calls == 2 and [i.external_id for p in rest for i in p.items] == [f"101_{i}" for i in range(100, 150)]
    assert rest[-1].resume is None


def test_facebook_errors(fresh_emulators):
    emu = fresh_emulators["FACEBOOK"]
    emu.set_records("pages", FB_PAGES)
    emu.set_records("posts", _posts())
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "FACEBOOK", "fetch_posts", token="EAABnope")
    token = mint(fresh_emulators, "FACEBOOK", ["pages_show_list"])
    emu.rate_limit_next("posts")
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "FACEBOOK", "fetch_posts", token=token)
    emu.fail_next(
        "posts",
        400,
        {
            "error": {
                "message": "(#10) This endpoint requires the 'pages_read_engagement' permission",
                "type": "OAuthException",
                "code": 10,
            }
        },
    )
    with pytest.raises(ProviderError, match="pages_read_engagement") as caught:
        read_all(fresh_emulators, "FACEBOOK", "fetch_posts", token=token)
    assert not isinstance(caught.value, (TokenExpired, RateLimited))


# --- YouTube ------------------------------------------------------------------------------------

YT_SCOPE = ["https://www.googleapis.com/auth/youtube.readonly"]
YT_SCOPE_UPLOAD = "https://www.googleapis.com/auth/youtube.upload"


def _uploads(n, playlist="UUdemo0000000000000000ch"):
    return [
        {
            "kind": "youtube#playlistItem",
            "etag": f"e{i}",
            "id": f"UExpi{i:05d}",
            "snippet": {
                "publishedAt": f"2026-11-{1 + i % 28:02d}T12:00:00Z",
                "channelId": "UCdemo0000000000000000ch",
                "title": f"upload {i}",
                "description": "d" * 3000 if i == 0 else f"about {i}",
                "playlistId": playlist,
                "position": i,
                "thumbnails": {"default": {"url": "https://i.ytimg"}},
                "resourceId": {"kind": "youtube#video", "videoId": f"vid{i:08d}"},
            },
        }
        for i in range(n)
    ]


def test_youtube_reads_the_uploads_playlist_page_by_page(fresh_emulators):
    emu = fresh_emulators["YOUTUBE"]
    emu.set_records("uploads", _uploads(120))
    pages, calls = read_all(fresh_emulators, "YOUTUBE", "fetch_posts", token=mint(fresh_emulators, "YOUTUBE", YT_SCOPE))
    assert calls == 4 and emu.calls["whoami"] == 1 and emu.calls["playlistItems"] == 3
    assert [len(p.items) for p in pages] == [50, 50, 20]
    assert [i.external_id for p in pages for i in p.items] == [f"vid{i:08d}" for i in range(120)]
    assert pages[0].resume == {"playlist": "UUdemo0000000000000000ch", "pageToken": "EA50QAA"}
    assert pages[-1].resume is None
    assert len(pages[0].items[0].data["description"]) == 2000  # no blobs
    assert pages[0].items[1].data == {
        "id": "vid00000001",
        "title": "upload 1",
        "description": "about 1",
        "publishedAt": "2026-11-02T12:00:00Z",
        "channelId": "UCdemo0000000000000000ch",
    }


def test_youtube_resumes_without_looking_the_playlist_up_again(fresh_emulators):
    emu = fresh_emulators["YOUTUBE"]
    emu.set_records("uploads", _uploads(120))
    token = mint(fresh_emulators, "YOUTUBE", YT_SCOPE)
    first, _ = read_all(fresh_emulators, "YOUTUBE", "fetch_posts", token=token, max_pages=2)
    emu.reset_faults()
    rest, calls = read_all(fresh_emulators, "YOUTUBE", "fetch_posts", token=token, resume=first[1].resume)
    assert calls == 1 and [i.external_id for i in rest[0].items] == [f"vid{i:08d}" for i in range(100, 120)]


def test_youtube_quota_and_rate_limits_are_rate_limited(fresh_emulators):
    emu = fresh_emulators["YOUTUBE"]
    emu.set_records("uploads", _uploads(3))
    token = mint(fresh_emulators, "YOUTUBE", YT_SCOPE)
    emu.rate_limit_next("playlistItems", retry_after=90)  # 403 rateLimitExceeded "Retry after <time>"
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "YOUTUBE", "fetch_posts", token=token)
    assert 85 <= limited.value.retry_after <= 91
    # The project's daily quota, spent (the emulator counts units: a list call costs 1): the wait is until the
    # reset at midnight Pacific, which the error names (quotaResetAt).
    emu.set_daily_quota(emu.quota_per_day - emu.quota_left())
    with pytest.raises(RateLimited, match="quota is spent") as limited:
        read_all(fresh_emulators, "YOUTUBE", "fetch_posts", token=token)
    now = clock.now(fresh_emulators)  # the shared clock, the product's and YouTube's
    reset = dt.datetime.combine(now.astimezone(PACIFIC).date() + dt.timedelta(days=1), dt.time(), PACIFIC)
    assert limited.value.details["quotaResetAt"] == reset.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert abs(limited.value.retry_after - (reset - now).total_seconds()) < 5


def test_youtube_errors(fresh_emulators):
    emu = fresh_emulators["YOUTUBE"]
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "YOUTUBE", "fetch_posts", token="ya29.nope")
    with pytest.raises(ProviderError, match="insufficient authentication scopes") as caught:
        read_all(fresh_emulators, "YOUTUBE", "fetch_posts", token=mint(fresh_emulators, "YOUTUBE", [YT_SCOPE_UPLOAD]))
    assert not isinstance(caught.value, (TokenExpired, RateLimited))
    emu.account["uploads"] = ""
    with pytest.raises(ProviderError, match="no channel"):
        read_all(fresh_emulators, "YOUTUBE", "fetch_posts", token=mint(fresh_emulators, "YOUTUBE", YT_SCOPE))


# --- X (Twitter) --------------------------------------------------------------------------------

X_SCOPE = ["tweet.read", "users.read", "offline.access"]


def _tweets(n):
    return [
        {
            "id": str(1860000000000000000 - i),
            "text": f"post {i}",
            "created_at": "2026-11-20T10:00:00.000Z",
            "edit_history_tweet_ids": [str(1860000000000000000 - i)],
        }
        for i in range(n)
    ]


def test_twitter_reads_every_tweet_with_next_token(fresh_emulators):
    emu = fresh_emulators["TWITTER"]
    emu.set_records("tweets", _tweets(250))
    pages, calls = read_all(fresh_emulators, "TWITTER", "fetch_posts", token=mint(fresh_emulators, "TWITTER", X_SCOPE))
    assert calls == 4 and emu.calls["whoami"] == 1 and emu.calls["tweets"] == 3
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert [i.external_id for p in pages for i in p.items] == [t["id"] for t in _tweets(250)]
    assert pages[0].resume["userId"] == "1460000000000000000" and pages[0].resume["token"]
    assert pages[-1].resume is None
    assert pages[2].items[0].data == {
        "id": str(1860000000000000000 - 200),
        "text": "post 200",
        "createdAt": "2026-11-20T10:00:00.000Z",
    }


def test_twitter_resumes_and_uses_a_stored_user_id(fresh_emulators):
    emu = fresh_emulators["TWITTER"]
    emu.set_records("tweets", _tweets(250))
    token = mint(fresh_emulators, "TWITTER", X_SCOPE)
    first, _ = read_all(fresh_emulators, "TWITTER", "fetch_posts", token=token, max_pages=1)
    emu.reset()  # counters
    emu.set_records("tweets", _tweets(250))
    token = mint(fresh_emulators, "TWITTER", X_SCOPE)
    rest, calls = read_all(fresh_emulators, "TWITTER", "fetch_posts", token=token, resume=first[0].resume)
    assert calls == 2 and emu.calls["whoami"] == 0 and rest[0].items[0].data["text"] == "post 100"
    whole, calls = read_all(
        fresh_emulators, "TWITTER", "fetch_posts", token=token, metadata={"userId": "1460000000000000000"}
    )
    assert calls == 3 and emu.calls["whoami"] == 0


def test_twitter_errors(fresh_emulators):
    emu = fresh_emulators["TWITTER"]
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "TWITTER", "fetch_posts", token="nope", metadata={"userId": "1"})
    token = mint(fresh_emulators, "TWITTER", X_SCOPE)
    emu.rate_limit_next("tweets", retry_after=600)
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "TWITTER", "fetch_posts", token=token)
    assert limited.value.retry_after in (599, 600)
    with pytest.raises(ProviderError, match="Missing scopes") as caught:
        read_all(
            fresh_emulators,
            "TWITTER",
            "fetch_posts",
            token=mint(fresh_emulators, "TWITTER", ["tweet.read"]),
            metadata={"userId": "1460000000000000000"},
        )
    assert not isinstance(caught.value, TokenExpired)


# --- LinkedIn -----------------------------------------------------------------------------------


def _partner_token(emulators):
    """A member's token for an app LinkedIn approved for its Community Management API (r_member_social)."""
    emulators["LINKEDIN"].approve_scopes("r_member_social")
    return mint(emulators, "LINKEDIN")


def _li_posts(n):
    return [
        {
            "id": f"urn:li:share:7{i:018d}",
            "author": "urn:li:person:782bbtaQ",
            "commentary": f"hello {i}",
            "visibility": "PUBLIC",
            "lifecycleState": "PUBLISHED",
            "createdAt": 1763000000000 - i,
            "publishedAt": 1763000000000 - i,
            "lastModifiedAt": 1763000000000 - i,
            "distribution": {"feedDistribution": "MAIN_FEED"},
        }
        for i in range(n)
    ]


def test_linkedin_reads_every_post_by_offset(fresh_emulators):
    emu = fresh_emulators["LINKEDIN"]
    emu.set_records("posts", _li_posts(210))
    pages, calls = read_all(fresh_emulators, "LINKEDIN", "fetch_posts", token=_partner_token(fresh_emulators))
    assert calls == 4 and emu.calls["whoami"] == 1 and emu.calls["posts"] == 3
    assert [len(p.items) for p in pages] == [100, 100, 10]
    assert [i.external_id for p in pages for i in p.items] == [p["id"] for p in _li_posts(210)]
    assert [p.resume for p in pages] == [
        {"author": "urn:li:person:782bbtaQ", "start": 100},
        {"author": "urn:li:person:782bbtaQ", "start": 200},
        None,
    ]
    assert pages[0].items[2].data == {
        "id": "urn:li:share:7000000000000000002",
        "commentary": "hello 2",
        "visibility": "PUBLIC",
        "lifecycleState": "PUBLISHED",
        "createdAt": 1762999999998,
        "publishedAt": 1762999999998,
        "lastModifiedAt": 1762999999998,
    }


def test_linkedin_resumes_at_the_stored_offset(fresh_emulators):
    emu = fresh_emulators["LINKEDIN"]
    emu.set_records("posts", _li_posts(200))
    rest, calls = read_all(
        fresh_emulators,
        "LINKEDIN",
        "fetch_posts",
        token=_partner_token(fresh_emulators),
        resume={"author": "urn:li:person:782bbtaQ", "start": 100},
    )
    assert calls == 1 and emu.calls["whoami"] == 0 and len(rest[0].items) == 100 and rest[0].resume is None


def test_linkedin_errors(fresh_emulators):
    emu = fresh_emulators["LINKEDIN"]
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "LINKEDIN", "fetch_posts", token="nope")
    token = _partner_token(fresh_emulators)
    emu.rate_limit_next("posts")
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "LINKEDIN", "fetch_posts", token=token)
    with pytest.raises(ProviderError, match="Not enough permissions") as caught:
        read_all(fresh_emulators, "LINKEDIN", "fetch_posts", token=mint(fresh_emulators, "LINKEDIN", ["openid"]))
    assert not isinstance(caught.value, TokenExpired)
    emu.fail_next(
        "posts",
        426,
        {"status": 426, "code": "NONEXISTENT_VERSION", "message": "Requested version 202510 is not active"},
    )
    with pytest.raises(ProviderError, match="426.*not active"):
        read_all(fresh_emulators, "LINKEDIN", "fetch_posts", token=token)
